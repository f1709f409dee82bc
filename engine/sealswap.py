"""The swap of a seal or re-seal and its log record, WAL op 6: the fsynced
`<YYYY>.sealed.tmp` becomes the year's sealed file (rename, directory fsync), the record
names it (generation, size, footer checksum), and applying the record, live or on replay,
removes the live file or the merged overlay beside that file (docs/format.md "Sealing,
re-sealing and the swap", docs/wal.md §10); and the replay floors of ops 5-7 (which writes
of the log a year's files on disk already account for).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.errors import CorruptFileError, InvalidKeyError
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.sealing import live_name, open_sealed, overlay_name, read_header, sealed_name

__all__ = ["SealYear", "rename_sealed", "apply_seal", "replay_floors", "superseded"]


@dataclass
class SealYear:
    """WAL op 6: `<YYYY>.sealed` of `generation`, `size` bytes and footer CRC-32C
    `footer_crc` is the year's; a `.bin` or an overlay of an older generation beside it
    is garbage."""

    key: BucketKey
    year: int
    generation: int
    size: int
    footer_crc: int

    @property
    def nbytes(self) -> int:
        return 32


def rename_sealed(catalog: Catalog, bucket: Bucket, year: int, tmp: str) -> SealYear:
    """The swap's first half: rename the fsynced sealed file `tmp` over the year's name and
    fsync the directory; from then on the catalog reads the year from it (its live file or
    old overlay is no longer read). Returns the op-6 record to log, whose apply removes
    those files. The caller holds writers and readers out and checkpointed first."""
    fs = catalog.fs
    path = os.path.join(bucket.path, sealed_name(year))
    fs.replace(tmp, path)
    fs.fsync_dir(bucket.path)
    catalog.cache.drop(bucket.files, year)
    r = open_sealed(fs, path)
    bucket.sealed[year] = r
    bucket.overlays.discard(year)
    return SealYear(bucket.key, year, r.meta.generation, r.file_size, r.footer_crc)


def apply_seal(catalog: Catalog, bucket: Bucket, w: SealYear) -> None:
    """Apply op 6: if the year's sealed file is the one the record names (generation,
    size, footer checksum), remove the `.bin` and an overlay of an older generation beside
    it and fsync the directory; if it is not (a later re-seal or a drop replaced it, or
    the rename never became durable and open kept the live year), do nothing. Applying it
    again finds nothing to remove."""
    fs = catalog.fs
    try:
        r = open_sealed(fs, os.path.join(bucket.path, sealed_name(w.year)))
    except (FileNotFoundError, CorruptFileError):
        return
    if (r.meta.generation, r.file_size, r.footer_crc) != (w.generation, w.size, w.footer_crc):
        return
    gone = []
    live = os.path.join(bucket.path, live_name(w.year))
    if fs.exists(live):
        gone.append(live)
    overlay = os.path.join(bucket.path, overlay_name(w.year))
    if fs.exists(overlay):
        try:
            stale = read_header(fs, overlay).base_generation < w.generation
        except CorruptFileError:
            stale = False  # reads and `mkts check` report it
        if stale:
            gone.append(overlay)
            bucket.overlays.discard(w.year)
    if not gone:
        return
    catalog.cache.drop(bucket.files, w.year)
    for path in gone:
        fs.unlink(path)
    fs.fsync_dir(bucket.path)
    bucket.years.add(w.year)
    bucket.sealed.setdefault(w.year, None)
    bucket.touched.add(w.year)  # the file record stops listing what went


def replay_floors(catalog: Catalog,
                  marks: Iterable[tuple[int, int, str, int, tuple[int, int, int] | None]]
                  ) -> dict[tuple[str, int], int]:
    """From the records of the log to replay that set a year's files (`journal.year_marks`
    with their transaction: (txn, op, bucket key, year, identity), in log order): for each
    year, the transaction before which no write of the log to it counts. That is its last
    op 5 (the delete left the year empty: what came before it is gone whatever it was), or
    a later op 6 or op 7 whose sealed file is on disk now (the seal built that file from the
    year as of the record, the bulk load filled an empty year with it: the file holds the
    year's state then). Replay skips those earlier writes: a year's files on disk are as the
    log's last records left them, so an earlier write would be applied to the wrong file (a
    write that went to an overlay to a `.bin` the drop does not name, a write to a `.bin`
    into the overlay of a later bulk load) or doubled (ticks in an overlay; a backup copies
    its files while the log runs on, docs/backup.md)."""
    found: dict[tuple[str, int], list[tuple[int, tuple[int, int, int] | None]]] = {}
    for txn, _op, key, year, ident in marks:
        if ident is None:
            found[(key, year)] = [(txn, None)]  # nothing before a drop counts
        else:
            found.setdefault((key, year), []).append((txn, ident))
    floors: dict[tuple[str, int], int] = {}
    for (key, year), seen in found.items():
        for txn, ident in reversed(seen):  # the newest first: one file open, mostly
            if ident is None or _installed(catalog, key, year, ident):
                floors[(key, year)] = txn
                break
    return floors


def _installed(catalog: Catalog, key: str, year: int, ident: tuple[int, int, int]) -> bool:
    """Whether the year's `<YYYY>.sealed` is the file an op 6 or op 7 record names
    (generation, size, footer checksum; a bulk load's file is of generation 1)."""
    try:
        bucket = catalog.buckets.get(parse_key(key))
    except InvalidKeyError:
        return False  # a damaged record: decoding it reports the damage
    if bucket is None:
        return False  # destroyed since: the log's later records say so
    try:
        r = open_sealed(catalog.fs, os.path.join(bucket.path, sealed_name(year)))
    except (FileNotFoundError, CorruptFileError):
        return False
    return (r.meta.generation, r.file_size, r.footer_crc) == ident


def superseded(txn: int, writes: Sequence[Any], floors: dict[tuple[str, int], int]
               ) -> list[Any]:
    """`writes` of transaction `txn` without those to a year a later drop, seal or bulk
    load set anew (`replay_floors`)."""
    if not floors:
        return list(writes)
    return [w for w in writes if (y := getattr(w, "year", None)) is None
            or floors.get((str(w.key), int(y)), -1) <= txn]
