"""The catalog's year files: opening them pinned (`acquire`/`pinned`, checked against the
bucket), creating live files and overlays durably, the readers of sealed years and removing a
year's files. Which stay open is engine/filecache.py's; the buckets, engine/catalog.py's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import TracebackType

from mkts.engine.bucket import Bucket
from mkts.engine.clears import FILE_BIN, FILE_OVERLAY, FILE_SEALED
from mkts.engine.durable import atomic_write
from mkts.engine.errors import CorruptFileError
from mkts.engine.filecache import FileCache
from mkts.engine.header import Header, encode_header
from mkts.engine.sealfile import SealedReader
from mkts.engine.sealing import live_name, open_sealed, overlay_name, sealed_name
from mkts.engine.timeutil import Calendar
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import FileSystem

__all__ = ["YearFiles", "PREFETCH_BYTES"]

PREFETCH_BYTES = 1 << 17  # a read of up to this many slot bytes is prefetched with the header


class _Pin:
    """`with catalog.pinned(bucket, year) as f:` - f stays open inside the block."""

    __slots__ = ("_cache", "_f")

    def __init__(self, cache: FileCache, f: YearFile | None) -> None:
        self._cache = cache
        self._f = f

    def __enter__(self) -> YearFile | None:
        return self._f

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._f is not None:
            self._cache.release(self._f)


class YearFiles:
    """The year-file half of `Catalog` (engine/catalog.py mixes it in)."""

    fs: FileSystem
    calendar: Calendar
    readonly: bool
    cache: FileCache
    release: Callable[[YearFile], None]

    def acquire(self, bucket: Bucket, year: int, *, create: bool = False,
                reads: tuple[int, int] | None = None) -> YearFile | None:
        """The year file, open and pinned (None if absent and not `create`): it is not
        closed until `release(f)`. `reads` (lo, hi): the slots the caller reads next (hi =
        -1: to the end); when the file is opened now and they are few, their bytes are
        requested together with the header (YearFile.open's prefetch), so a cold short read
        waits for one I/O, not two in a row. Pin for one use (a read, an apply, a plan),
        not for the life of an object. For a sealed year the file is its overlay (None if
        it has none; `create` creates it, docs/format.md "The three states of a year")."""
        if create:
            if year not in bucket.years:
                self._create_year(bucket, year)  # its fsyncs outside the cache's lock
            bucket.written[year] = bucket.written.get(year, 0) + 1
            bucket.last_write[year] = time.monotonic()
        if create and bucket.sealed and year in bucket.sealed and year not in bucket.overlays:
            self._create_overlay(bucket, year)
        return self.cache.acquire(bucket.files, year, self._open_year, bucket, year, reads)

    def pinned(self, bucket: Bucket, year: int, *, create: bool = False,
               reads: tuple[int, int] | None = None) -> _Pin:
        """`acquire` as a context manager: `with catalog.pinned(b, y) as f:`."""
        return _Pin(self.cache, self.acquire(bucket, year, create=create, reads=reads))

    def year_file(self, bucket: Bucket, year: int) -> YearFile | None:
        """The year file, unpinned: for single-threaded tools and tests only, as the next
        open by anyone may close it."""
        f = self.acquire(bucket, year)
        if f is not None:
            self.release(f)
        return f

    def _open_year(self, bucket: Bucket, year: int, reads: tuple[int, int] | None
                   ) -> YearFile | None:
        sealed = year in bucket.sealed
        path = os.path.join(bucket.path, overlay_name(year) if sealed else live_name(year))
        if year in bucket.years and (not sealed or year in bucket.overlays):
            prefetch = None
            if reads is not None:  # where the header the file should have puts those slots
                h = self.year_header(bucket, year)
                lo, hi = reads
                size = ((h.nslots if hi < 0 else hi) - lo) * h.record_size
                if 0 < size <= PREFETCH_BYTES:
                    prefetch = (h.header_size + lo * h.record_size, size)
            f = YearFile.open(self.fs, path, writable=not self.readonly, prefetch=prefetch)
            h = f.header
            v, want = h.schema_version, bucket.schema_version
            if h.year != year or (h.schema != bucket.schema if v == want else (
                    v > want or h.schema.kind != bucket.schema.kind
                    or h.schema.timeframe != bucket.schema.timeframe)):
                f.close()
                raise CorruptFileError(
                    f"{path}: header says year {h.year} / a different schema than the bucket"
                )
            if sealed and h.base_generation != self.sealed_reader(bucket, year).meta.generation:
                f.close()
                raise CorruptFileError(f"{path}: overlay of generation {h.base_generation} "
                                       "beside a sealed file of another generation")
            return f
        return None

    # -- sealed years (engine/sealing.py) -------------------------------------------------
    def sealed_reader(self, bucket: Bucket, year: int) -> SealedReader:
        """The reader of a sealed year (header and footer read and checked once)."""
        r = bucket.sealed.get(year)
        if r is None:
            r = self._checked_reader(
                bucket, year, open_sealed(self.fs, os.path.join(bucket.path, sealed_name(year))))
        return r

    @staticmethod
    def _checked_reader(bucket: Bucket, year: int, r: SealedReader) -> SealedReader:
        m = r.meta
        v, want = m.schema_version, bucket.schema_version
        # a file of an older schema version is read through engine/columns.py translation
        if m.year != year or (m.schema != bucket.schema if v == want else (
                v > want or m.schema.kind != bucket.schema.kind
                or m.schema.timeframe != bucket.schema.timeframe)):
            raise CorruptFileError(
                f"{r.path}: header says year {m.year} / a different schema than the bucket")
        bucket.sealed[year] = r
        return r

    def _create_overlay(self, bucket: Bucket, year: int) -> None:
        """Create the overlay of a sealed year durably, empty, as a live file is created; its
        header names the sealed file's generation."""
        gen = self.sealed_reader(bucket, year).meta.generation
        h = self.year_header(bucket, year)
        data = encode_header(h.schema, year, h.nslots, h.year_start, self.calendar.tz, bucket.table,
                             base_generation=gen)
        atomic_write(self.fs, os.path.join(bucket.path, overlay_name(year)), data,
                     size=h.file_size)
        bucket.overlays.add(year)
        bucket.touched.add(year)

    def _create_year(self, bucket: Bucket, year: int) -> None:
        """Create a year file durably (by the writer, which alone creates files)."""
        header = self.year_header(bucket, year)
        data = encode_header(header.schema, year, header.nslots, header.year_start,
                             self.calendar.tz, bucket.table)
        atomic_write(self.fs, os.path.join(bucket.path, live_name(year)), data,
                     size=header.file_size)
        bucket.years.add(year)
        bucket.touched.add(year)

    def year_header(self, bucket: Bucket, year: int) -> Header:
        from mkts.engine.header import header_size_for

        schema = bucket.schema
        return Header(schema, year, self.calendar.nslots(year, schema.timeframe),
                      self.calendar.year_start(year), self.calendar.tz,
                      header_size_for(len(schema.columns), bucket.table, schema),
                      table=bucket.table)

    def drop_year(self, bucket: Bucket, year: int, files: int = FILE_BIN) -> bool:
        """Remove the files `files` (FILE_* bits: `<YYYY>.bin`, `.sealed`, `.overlay`) of
        the bucket's year durably (WAL op 5, docs/wal.md §10: a year a delete left empty);
        False when none was there. The caller holds the write lock."""
        self.cache.drop(bucket.files, year)
        bucket.touched.add(year)  # the file record stops listing it (engine/filerecord.py)
        names = [n for bit, n in ((FILE_OVERLAY, overlay_name(year)),
                                  (FILE_SEALED, sealed_name(year)), (FILE_BIN, live_name(year)))
                 if files & bit]
        if files & FILE_SEALED:
            bucket.sealed.pop(year, None)
        if files & FILE_OVERLAY:
            bucket.overlays.discard(year)
        if year not in bucket.sealed:
            bucket.years.discard(year)
        gone = False
        for name in names:  # the overlay first: a crash between leaves no orphan overlay
            path = os.path.join(bucket.path, name)
            if self.fs.exists(path):
                self.fs.unlink(path)
                gone = True
        if gone:
            self.fs.fsync_dir(bucket.path)
        return gone
