"""Bulk loads (docs/format.md "Bulk loads"): a write of many rows into a closed year its bucket
does not hold is written as a sealed `<YYYY>.sealed.<id>.ingest` file first and logged as WAL
op 7. This module owns those files: writing them, adopting them (applying and replaying op 7),
the rows replayed triggers get back from them, and removing the ones no record names.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mkts.engine.errors import CorruptFileError
from mkts.engine.ingest import Batch
from mkts.engine.keys import BucketKey
from mkts.engine.plan import IngestWrite, RowWrite, SlotWrite
from mkts.engine.rootmeta import use_format_3
from mkts.engine.schema import SLOT_FIELD, TICK_SLOT_DTYPE, VARIABLE, Schema
from mkts.engine.sealfile import SealedReader, SealMeta
from mkts.engine.sealing import open_sealed, sealed_name, write_sealed
from mkts.engine.ticks import TickPlanner, TickWrite
from mkts.engine.timeutil import NS, Calendar
from mkts.wal.fs import BackupFileSystem, FileSystem

if TYPE_CHECKING:
    from mkts.engine.catalog import Bucket, Catalog

__all__ = ["BulkLoads", "TickIngestWrite", "TickBulk", "ingest_name", "write_ingest",
           "remove_ingests", "ingest_sources", "INGEST_SUFFIX"]

INGEST_SUFFIX = ".ingest"


def ingest_name(year: int, ingest_id: int) -> str:
    """`<YYYY>.sealed.<id>.ingest`: a bulk load's sealed file before WAL op 7 adopts it."""
    return f"{year}.sealed.{ingest_id:016x}{INGEST_SUFFIX}"


def ingest_sources(fs: BackupFileSystem, root: str, key: str, year: int) -> list[str]:
    """The files (relative to `root`) an op 7 of bucket `key`'s `year` may name: its
    `.ingest` files and `<YYYY>.sealed` (a backup copies them with the records)."""
    d = os.path.join(root, key)
    names = fs.listdir(d) if fs.isdir(d) else []
    return [f"{key}/{n}" for n in names if n == sealed_name(year)
            or (n.startswith(f"{year}.sealed.") and n.endswith(INGEST_SUFFIX))]


@dataclass
class TickIngestWrite(TickWrite):
    """WAL op 7 of a tick bucket: the year's rows are in `<YYYY>.sealed.<id>.ingest`; the log
    carries no region and no slots. `new_*` hold the rows for triggers (as a TickWrite's)."""

    ingest_id: int = 0
    size: int = 0
    footer_crc: int = 0
    generation: int = 1

    def __repr__(self) -> str:
        return f"TickIngestWrite({self.key}, {self.year}, id {self.ingest_id:016x})"


Ingest = IngestWrite | TickIngestWrite


@dataclass
class TickBulk:
    """A tick bulk load written before commit: the record to log if the year is still
    absent when the commit leader builds the transaction, else its rows as ordinary ticks."""

    bucket: Bucket
    schema: Schema  # the bucket's when the rows were validated
    write: TickIngestWrite
    batch: Batch  # the year's rows, for the fallback


def write_ingest(fs: FileSystem, directory: str, meta: SealMeta, keys: np.ndarray,
                 columns: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """Write a bulk load's rows (`keys`: fixed slots or tick times in ns, ascending) as a new
    `.ingest` file of `directory`, durable (file and directory fsynced) before the caller logs
    it; (ingest id, size, footer CRC-32C)."""
    ingest_id = int.from_bytes(os.urandom(8), "little")
    path = os.path.join(directory, ingest_name(meta.year, ingest_id))
    size = write_sealed(fs, path, meta, keys, columns)
    fs.fsync_dir(directory)
    return ingest_id, size, open_sealed(fs, path).footer_crc


def remove_ingests(catalog: Catalog) -> int:
    """Remove every `.ingest` file left (after replay: no log record still needs one);
    how many (docs/format.md "Bulk loads")."""
    total = 0
    for bucket in catalog.buckets.values():
        gone = [n for n in catalog.fs.listdir(bucket.path) if n.endswith(INGEST_SUFFIX)]
        for name in gone:
            catalog.fs.unlink(os.path.join(bucket.path, name))
        if gone:
            catalog.fs.fsync_dir(bucket.path)
        total += len(gone)
    return total


class BulkLoads:
    """Which writes are bulk loads, their `.ingest` files, and op 7's apply and replay."""

    def __init__(self, catalog: Catalog, calendar: Calendar, rows: int) -> None:
        self.catalog = catalog
        self.calendar = calendar
        self.rows = rows  # the threshold (`bulk_load_rows`); 0: never
        # (key, year) of tick op 7 records built but not applied yet: the year is taken
        self._pending: set[tuple[BucketKey, int]] = set()
        # replay: op 7 records whose file is gone, until a later op 5 of the year explains it
        self._missing: dict[tuple[BucketKey, int], str] = {}
        self.replaying = False
        # bucket directories whose rename of an `.ingest` file is not fsynced yet (`sync`)
        self._renamed: set[str] = set()
        self._format_3 = False  # mkts.root is known to say database format 2

    def _root_format(self) -> None:
        """`mkts.root` records database format 2 before the first sealed file is written."""
        if not self._format_3:
            use_format_3(self.catalog.fs, self.catalog.root, self.calendar.tz)
            self._format_3 = True

    def _meta(self, bucket: Bucket, year: int) -> SealMeta:
        h = self.catalog.year_header(bucket, year)
        self._root_format()
        return SealMeta(bucket.schema, year, h.nslots, h.year_start, self.calendar.tz,
                        schema_version=bucket.schema_version, ids=bucket.columns.ids)

    def _eligible(self, key: BucketKey, year: int, n: int) -> Bucket | None:
        if not self.rows or n < self.rows or year >= self.calendar.year_of_one(int(time.time())):
            return None
        bucket = self.catalog.buckets.get(key)
        return None if bucket is None or year in bucket.years else bucket

    # -- fixed buckets: decided by the writer, merged at apply if the year got a file ----
    def fixed(self, writes: list[SlotWrite | RowWrite]) -> list[SlotWrite | RowWrite]:
        """`writes` with every bulk load of a closed, absent year turned into an IngestWrite:
        its sealed file written and made durable now, by the writer's thread, so the log
        carries a small record instead of the rows (which triggers still get from memory)."""
        out = list(writes)
        todo: list[tuple[int, SlotWrite, SealMeta, str]] = []
        for i, w in enumerate(out):
            if type(w) is not SlotWrite:
                continue
            bucket = self._eligible(w.key, w.year, len(w.slots))
            if bucket is not None:
                todo.append((i, w, self._meta(bucket, w.year), bucket.path))

        def one(item: tuple[int, SlotWrite, SealMeta, str]) -> tuple[int, int, int, int]:
            i, w, meta, path = item
            return i, *write_ingest(self.catalog.fs, path, meta, w.slots,
                                    {n: w.records[n] for n in meta.schema.names})

        # One after the other: the sealed encoder's zstd context is one per process
        # (engine/sealcodec.py), so two encodings must not run at once.
        for i, iid, size, crc in map(one, todo):
            w = out[i]
            out[i] = IngestWrite(w.key, w.year, w.slots, w.records, iid, size, crc)
        return out

    # -- tick buckets: decided by the commit leader (docs/format.md "Bulk loads") -------
    def split_ticks(self, batches: list[tuple[BucketKey, Schema, Batch]], with_rows: bool
                    ) -> tuple[list[TickBulk], list[tuple[BucketKey, Schema, Batch]]]:
        """`ticks` for each (key, schema, batch) of a transaction: (its bulk loads, the
        batches left for ordinary tick writes)."""
        found: list[TickBulk] = []
        rest: list[tuple[BucketKey, Schema, Batch]] = []
        for key, schema, batch in batches:
            bulk, left = self.ticks(key, schema, batch, with_rows)
            found.extend(bulk)
            if left is not None:
                rest.append((key, schema, left))
        return found, rest

    def ticks(self, key: BucketKey, schema: Schema, batch: Batch, with_rows: bool
              ) -> tuple[list[TickBulk], Batch | None]:
        """Write the `.ingest` file of each closed, absent year `batch` brings at least
        `rows` ticks to; (those bulk loads, the rest of the batch or None). `with_rows`:
        keep the rows for triggers and subscribers."""
        if not self.rows or len(batch) < self.rows or schema.kind != VARIABLE:
            return [], batch
        assert batch.nanos is not None
        years, slots = self.calendar.slots(batch.epochs, schema.timeframe)
        found: list[TickBulk] = []
        rest = np.ones(len(batch), dtype=bool)
        for y in np.unique(years).tolist():
            sel = np.flatnonzero(years == y)
            bucket = self._eligible(key, y, len(sel))
            if bucket is None or bucket.schema is not schema:
                continue
            sub = Batch(batch.epochs[sel], batch.nanos[sel],
                        {n: c[sel] for n, c in batch.columns.items()})
            found.append(self._tick_ingest(bucket, y, slots[sel], sub, with_rows))
            rest[sel] = False
        if not found:
            return [], batch
        if not rest.any():
            return found, None
        keep = np.flatnonzero(rest)
        assert batch.nanos is not None
        return found, Batch(batch.epochs[keep], batch.nanos[keep],
                            {n: c[keep] for n, c in batch.columns.items()})

    def _tick_ingest(self, bucket: Bucket, year: int, slots: np.ndarray, sub: Batch,
                     with_rows: bool) -> TickBulk:
        assert sub.nanos is not None
        t = sub.epochs * NS + sub.nanos.astype(np.int64)
        order = None
        if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
            order = np.argsort(t, kind="stable")  # ties keep write order
            t, slots = t[order], slots[order]
        cols = {n: c if order is None else c[order] for n, c in sub.columns.items()}
        iid, size, crc = write_ingest(self.catalog.fs, bucket.path, self._meta(bucket, year),
                                      t, cols)
        schema = bucket.schema
        w = TickIngestWrite(bucket.key, year, 0, b"", np.zeros(0, np.int64),
                            np.zeros(0, TICK_SLOT_DTYPE), ingest_id=iid, size=size,
                            footer_crc=crc)
        if with_rows:
            self._tick_rows(w, schema, slots, t, cols)
        return TickBulk(bucket, schema, w, sub)

    def _tick_rows(self, w: TickIngestWrite, schema: Schema, slots: np.ndarray,
                   t: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        labels = self.calendar.labels(w.year, slots, schema.timeframe)
        rows = np.empty(len(t), dtype=schema.row_dtype)
        for n in schema.names:
            rows[n] = cols[n]
        w.new_slots, w.new_ns, w.new_rows = slots, t - labels * NS, rows

    def accept(self, bulk: TickBulk, planner: TickPlanner) -> bool:
        """On the commit leader, in commit order: log `bulk` as op 7 if its year is still
        absent — no file, no earlier tick plan or op 7 of it waiting to be applied — else
        the caller plans its rows as ordinary ticks (and its file is removed)."""
        w = bulk.write
        at = (w.key, w.year)
        if self.catalog.buckets.get(w.key) is bulk.bucket and w.year not in bulk.bucket.years \
                and at not in self._pending and not planner.waiting(w.key, w.year):
            self._pending.add(at)
            return True
        self.catalog.fs.unlink(os.path.join(bulk.bucket.path, ingest_name(w.year, w.ingest_id)))
        return False

    def discard(self, w: TickIngestWrite) -> None:
        """Undo `accept` of a record that will not be logged."""
        self._pending.discard((w.key, w.year))

    # -- applying and replaying op 7 ------------------------------------------------------
    def install(self, bucket: Bucket, w: Ingest) -> None:
        """Apply WAL op 7: the `.ingest` file becomes `<YYYY>.sealed` (a rename, made durable
        by the next checkpoint's `sync`, before it retires the record: until then a replay
        redoes a rename a crash lost). A fixed year that got a
        file meanwhile (a write logged before this one) gets the rows written into that file
        instead, as any slot write, and the `.ingest` file stays until the next open.
        Replaying the record again finds the sealed file it made (same size and footer
        checksum) and does nothing."""
        catalog, year = self.catalog, w.year
        self._pending.discard((w.key, year))
        path = os.path.join(bucket.path, ingest_name(year, w.ingest_id))
        if catalog.fs.exists(path):
            if year not in bucket.years:
                catalog.fs.replace(path, os.path.join(bucket.path, sealed_name(year)))
                self._renamed.add(bucket.path)
                bucket.years.add(year)
                bucket.sealed[year] = None
                return
            if type(w) is TickIngestWrite:
                raise CorruptFileError(f"{path}: a tick bulk load was logged for a year that "
                                       "holds a file; the log or the bucket is damaged")
            keys, cols = open_sealed(catalog.fs, path).read(-(2**63), 2**63 - 1)
            recs = np.zeros(len(keys), dtype=bucket.schema.record_dtype)
            recs[SLOT_FIELD] = keys + 1
            for n in bucket.schema.names:
                recs[n] = cols[n]
            with catalog.pinned(bucket, year, create=True) as f:
                assert f is not None
                if len(keys):
                    f.write_slots(keys, recs.data.cast("B"))
            return
        if self._adopted(bucket, w) is not None:
            # applied before (the rename survived, the log was not retired); the file
            # record may still name the year's files of before (a drop, an older seal)
            bucket.touched.add(year)
            return
        msg = (f"{path}: the bulk load a log record names is missing; its rows are lost "
               "(the file was removed by hand?)")
        if not self.replaying:
            raise CorruptFileError(msg)
        # A later record of the log may have dropped the year (op 5) since: decided there.
        self._missing[(w.key, year)] = msg

    def sync(self) -> None:
        """fsync each bucket directory an install renamed in since the last call: at a
        checkpoint, before the log records that would redo the renames are retired (one
        directory fsync per bucket, not one per op 7). A directory gone since (its bucket
        destroyed) has nothing left to make durable."""
        for path in sorted(self._renamed):
            if self.catalog.fs.exists(path):
                self.catalog.fs.fsync_dir(path)
        self._renamed.clear()

    def _adopted(self, bucket: Bucket, w: Ingest) -> SealedReader | None:
        """The reader of `<YYYY>.sealed` if it is the file `w` installed."""
        if w.year not in bucket.sealed:
            return None
        try:
            r = self.catalog.sealed_reader(bucket, w.year)
        except CorruptFileError:
            return None
        return r if r.file_size == w.size and r.footer_crc == w.footer_crc else None

    def dropped(self, key: BucketKey, year: int) -> None:
        """A replayed op 5 removed the year: an op 7 before it may miss its file."""
        self._missing.pop((key, year), None)

    def end_replay(self) -> None:
        if self._missing:
            raise CorruptFileError(next(iter(self._missing.values())))

    def replayed_rows(self, w: Any) -> Any:
        """A replayed op 7 with its rows read back from the file it installed (or the
        `.ingest` file kept beside a year that had a file), for triggers; None when neither
        holds them any more (a later record dropped the year and tells triggers so). Any
        other write is returned as it is."""
        if type(w) is not IngestWrite and type(w) is not TickIngestWrite:
            return w
        bucket = self.catalog.get(w.key)
        r = self._adopted(bucket, w)
        path = os.path.join(bucket.path, ingest_name(w.year, w.ingest_id))
        if r is None and self.catalog.fs.exists(path):
            r = open_sealed(self.catalog.fs, path)
        if r is None:
            return None
        keys, cols = r.read(-(2**63), 2**63 - 1)
        if not len(keys):
            return None
        schema = bucket.schema
        if type(w) is IngestWrite:
            recs = np.zeros(len(keys), dtype=schema.record_dtype)
            recs[SLOT_FIELD] = keys + 1
            for n in schema.names:
                recs[n] = cols[n]
            return IngestWrite(w.key, w.year, keys, recs, w.ingest_id, w.size, w.footer_crc,
                               w.generation)
        assert type(w) is TickIngestWrite
        out = TickIngestWrite(w.key, w.year, 0, b"", w.slots, w.records,
                              ingest_id=w.ingest_id, size=w.size, footer_crc=w.footer_crc,
                              generation=w.generation)
        _, slots = self.calendar.slots(keys // NS, schema.timeframe)
        self._tick_rows(out, schema, slots, keys, cols)
        return out
