"""The catalog: which buckets exist under the root, their schemas, and their open year files.

A bucket is a directory `<root>/SYM/TF/ATTR/` holding `bucket.hdr` (its schema, durable
before any data refers to it) and per year one `<YYYY>.bin`, or a `<YYYY>.sealed` with
perhaps a `<YYYY>.overlay` of corrections (docs/format.md "The three states of a year").
How many year files stay open, and when one is closed, belongs to engine/filecache.py.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from mkts.engine.blockcache import BlockCache
from mkts.engine.clears import FILE_BIN, FILE_OVERLAY, FILE_SEALED
from mkts.engine.columns import ColumnTable
from mkts.engine.durable import atomic_write, makedirs_durable, remove_tree_durable
from mkts.engine.errors import BucketNotFoundError, CorruptFileError, InvalidKeyError
from mkts.engine.filecache import FileCache, default_max_open_files
from mkts.engine.filerecord import current_year, is_closed, update_record
from mkts.engine.header import PAGE, Header, decode_header, encode_header
from mkts.engine.keys import MAX_ATTR, MAX_PART, BucketKey, parse_key
from mkts.engine.schema import Schema
from mkts.engine.sealfile import SealedReader
from mkts.engine.sealing import (
    live_name,
    open_sealed,
    overlay_name,
    sealed_name,
    tidy_year_files,
)
from mkts.engine.timeutil import Calendar
from mkts.engine.yearfile import YearFile, decode_size, not_a_file, pread_file
from mkts.wal.fs import FileSystem

__all__ = ["Bucket", "Catalog", "TEMPLATE_NAME", "DESTROYING", "DESTROY_INTENT", "any_bucket",
           "YEAR_FILE"]

TEMPLATE_NAME = "bucket.hdr"
# docs/format.md "Durability": a bucket being destroyed is renamed `SYM/TF/.ATTR.destroying`
# in one step (no key part starts with "."), then removed; open finishes what a crash cut.
DESTROYING = ".destroying"
assert MAX_ATTR + len(f".{DESTROYING}") <= MAX_PART  # the aside name fits (engine/keys.py)
# docs/format.md "Durability": a destroy of several buckets at once (a base and the buckets
# a trigger maintains from it) first writes their keys, one a line, to `<root>/.destroy`;
# open finishes the destroy of every key listed there, then removes the file.
DESTROY_INTENT = ".destroy"
YEAR_FILE = re.compile(r"^(\d{4})\.(bin|sealed|overlay)\Z")
PREFETCH_BYTES = 1 << 17  # a read of up to this many slot bytes is prefetched with the header


@dataclass
class Bucket:
    key: BucketKey
    schema: Schema
    path: str
    years: set[int] = field(default_factory=set)
    # Open year files by year: a view of the catalog's FileCache, changed only under its lock.
    files: dict[int, YearFile] = field(default_factory=dict)
    timezone: str = ""  # the zone its bucket.hdr records (must be the root's)
    # docs/format.md "Column changes": column ids, fills and the schema version; None until
    # the bucket's columns are first changed (its files are then format 1 or 2, version 1)
    table: ColumnTable | None = None
    # year -> schema version of year files written with an older schema than the bucket's
    # (read through engine.columns.translate, migrated before a write into them)
    stale: dict[int, int] = field(default_factory=dict)

    @property
    def columns(self) -> ColumnTable:
        return self.table or ColumnTable.initial(self.schema)

    @property
    def schema_version(self) -> int:
        return 1 if self.table is None else self.table.version
    # Years whose file was created or written since its file record was last written
    # (engine/filerecord.py): the next checkpoint records them.
    touched: set[int] = field(default_factory=set)
    # Closed years written at the last record, whose checksum waits until they settle.
    unsummed: set[int] = field(default_factory=set)
    # Sealed years (`<YYYY>.sealed`), each with its reader once opened; a subset of `years`.
    sealed: dict[int, SealedReader | None] = field(default_factory=dict)
    overlays: set[int] = field(default_factory=set)  # sealed years with a `<YYYY>.overlay`
    # Writes applied per year since open: a seal built from a snapshot is installed only if
    # the year's count did not move meanwhile (engine/sealjob.py).
    written: dict[int, int] = field(default_factory=dict)
    last_write: dict[int, float] = field(default_factory=dict)  # time.monotonic() per year
    listing: frozenset[str] = frozenset()  # year files last listed (readonly: engine/follow.py)

    def sorted_years(self) -> list[int]:
        return sorted(self.years)

    def data_files(self, years: set[int] | None = None) -> set[str]:
        """The names of the data files of `years` (default: all of the bucket's), as its
        file record lists them (docs/format.md "File record")."""
        out: set[str] = set()
        for y in self.years if years is None else years:
            if y in self.sealed:  # docs/format.md "The three states of a year"
                out.add(sealed_name(y))
                if y in self.overlays:
                    out.add(overlay_name(y))
            else:
                out.add(live_name(y))
        return out


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


class Catalog:
    """Buckets by key. Callers hold the database's locks for bucket changes; open year
    files are handed out pinned (`pinned`, `acquire`/`release`), which is thread-safe."""

    def __init__(self, fs: FileSystem, root: str, calendar: Calendar, *, readonly: bool,
                 max_open_files: int | None = None,
                 on_sync_error: Callable[[BaseException], None] | None = None) -> None:
        self.fs = fs
        self.root = root
        self.calendar = calendar
        self.readonly = readonly
        self.buckets: dict[BucketKey, Bucket] = {}
        self.cache = FileCache(max_open_files or default_max_open_files(), on_sync_error)
        # decoded chunks of sealed files (engine/blockcache.py; None: none kept), set by open
        self.block_cache: BlockCache | None = None
        # Unpin a file `acquire` returned (the cache's, called directly: a hot path).
        self.release: Callable[[YearFile], None] = self.cache.release

    # -- loading -------------------------------------------------------------------------
    def load(self) -> None:
        fs, root = self.fs, self.root
        for sym in fs.listdir(root):
            sp = os.path.join(root, sym)
            if not fs.isdir(sp) or sym in ("wal",):
                continue
            for tf in fs.listdir(sp):
                tp = os.path.join(sp, tf)
                if not fs.isdir(tp):
                    continue
                for attr in fs.listdir(tp):
                    ap = os.path.join(tp, attr)
                    if attr.startswith(".") and attr.endswith(DESTROYING):
                        if not self.readonly:  # a destroy that a crash interrupted
                            remove_tree_durable(fs, ap)
                    elif fs.isdir(ap) and fs.exists(os.path.join(ap, TEMPLATE_NAME)):
                        self._load_bucket(f"{sym}/{tf}/{attr}", ap)
        self._finish_destroy()

    def _finish_destroy(self) -> None:
        """A destroy of several buckets that a crash interrupted: finish it (a readonly
        catalog only hides those buckets)."""
        path = os.path.join(self.root, DESTROY_INTENT)
        if not self.readonly and self.fs.exists(path + ".tmp"):
            self.fs.unlink(path + ".tmp")  # the intent was never written: nothing began
        if not self.fs.exists(path):
            return
        f = self.fs.open(path)
        try:
            text = pread_file(f, f.size(), 0).decode("utf-8", "replace")
        finally:
            f.close()
        for line in text.splitlines():
            try:
                key = parse_key(line.strip())
            except InvalidKeyError:
                continue
            if key in self.buckets:
                if self.readonly:
                    del self.buckets[key]
                else:
                    self.destroy(key)
        if not self.readonly:
            self.fs.unlink(path)
            self.fs.fsync_dir(self.root)

    def _load_bucket(self, key_text: str, path: str) -> None:
        try:
            key = parse_key(key_text)
        except InvalidKeyError:
            return  # not ours (a stray directory); never touched
        header = read_header(self.fs, os.path.join(path, TEMPLATE_NAME))
        bucket = Bucket(key, header.schema, path, timezone=header.timezone, table=header.table)
        readers: dict[str, SealedReader] = {}
        names = self.fs.listdir(path)
        bucket.listing = frozenset(n for n in names if YEAR_FILE.match(n))
        for name in tidy_year_files(self.fs, path, names, self.readonly, readers):
            m = YEAR_FILE.match(name)
            if m:
                y = int(m.group(1))
                if m.group(2) == "overlay":
                    bucket.overlays.add(y)
                    continue
                bucket.years.add(y)
                if m.group(2) == "sealed":
                    bucket.sealed[y] = None
                    r = readers.get(name)
                    if r is not None:  # else a read opens it again and says why
                        try:
                            self._checked_reader(bucket, y, r)
                        except CorruptFileError:
                            bucket.sealed[y] = None
            elif name.endswith(".tmp") and not self.readonly:
                self.fs.unlink(os.path.join(path, name))  # an interrupted atomic write
        if header.table is not None and header.table.version > 1:
            self.find_stale(bucket)
        self.buckets[key] = bucket

    def find_stale(self, bucket: Bucket) -> None:
        """Note the year files written with an older schema than the bucket's (one header
        read each; only for buckets whose columns were changed)."""
        bucket.stale.clear()
        want = bucket.schema_version
        for y in bucket.years:
            if y in bucket.sealed and y not in bucket.overlays:
                continue  # sealed files are read translated, never migrated
            name = overlay_name(y) if y in bucket.sealed else live_name(y)
            try:
                v = read_header(self.fs, os.path.join(bucket.path, name)).schema_version
            except (CorruptFileError, OSError):
                continue  # a damaged file: reads of it raise, as for any bucket
            if v != want:
                bucket.stale[y] = v

    # -- lookups -------------------------------------------------------------------------
    def get(self, key: BucketKey) -> Bucket:
        b = self.buckets.get(key)
        if b is None:
            raise BucketNotFoundError(f"bucket {key} does not exist")
        return b

    def bucket_path(self, key: BucketKey) -> str:
        return os.path.join(self.root, key.symbol, key.timeframe, key.attrgroup)

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

    # -- changes -------------------------------------------------------------------------
    def create(self, key: BucketKey, schema: Schema) -> Bucket:
        path = self.bucket_path(key)
        makedirs_durable(self.fs, path, self.root)
        atomic_write(self.fs, os.path.join(path, TEMPLATE_NAME),
                     encode_header(schema, 0, 0, 0, self.calendar.tz))
        bucket = Bucket(key, schema, path, timezone=self.calendar.tz)
        self.buckets[key] = bucket
        return bucket

    def destroy(self, key: BucketKey) -> None:
        """Remove the bucket, all or nothing across crashes: its directory is renamed aside in
        one step (made durable by an fsync of its parent) before anything in it is removed."""
        bucket = self.get(key)
        self.cache.drop(bucket.files)
        parent = os.path.dirname(bucket.path)
        aside = os.path.join(parent, f".{key.attrgroup}{DESTROYING}")
        if self.fs.exists(aside):
            remove_tree_durable(self.fs, aside)
        self.fs.replace(bucket.path, aside)
        self.fs.fsync_dir(parent)
        del self.buckets[key]
        remove_tree_durable(self.fs, aside)
        # Remove the timeframe and symbol directories when they became empty.
        for d in (os.path.dirname(bucket.path), os.path.dirname(os.path.dirname(bucket.path))):
            if self.fs.exists(d) and not self.fs.listdir(d):
                self.fs.rmdir(d)
                self.fs.fsync_dir(os.path.dirname(d))

    def destroy_all(self, keys: list[BucketKey]) -> None:
        """Remove several buckets as one operation, all or nothing across crashes: their keys
        are written durably to `.destroy` first, so an open after a crash finishes what was
        started (`_finish_destroy`); the file goes once every bucket is gone."""
        for key in keys:
            self.get(key)
        if len(keys) == 1:
            self.destroy(keys[0])
            return
        path = os.path.join(self.root, DESTROY_INTENT)
        atomic_write(self.fs, path, "".join(f"{k}\n" for k in keys).encode())
        for key in keys:
            self.destroy(key)
        # durable before anything else happens: a re-created bucket must not be destroyed
        # by a stale intent after a crash
        self.fs.unlink(path)
        self.fs.fsync_dir(self.root)

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

    def sync_dirty(self) -> int:
        """fsync every open year file written since the last call (files closed meanwhile
        were fsynced when closed); returns how many."""
        return self.cache.sync_dirty()

    def record_files(self, buckets: list[Bucket] | None = None, *, settle: bool = False) -> int:
        """Write the file record (`bucket.files`, docs/format.md "File record") of every
        bucket touched since its last one (or of `buckets`), after the data files are
        durable: at a checkpoint. The checksum of a closed year written since is computed
        once it is no longer being written (a checkpoint that finds it untouched since the
        previous one), or now with `settle` (compaction, close). Returns how many records
        were written."""
        this_year = current_year(self.calendar.tz)
        written = 0
        for bucket in list(self.buckets.values()) if buckets is None else buckets:
            if buckets is None and not bucket.touched and not bucket.unsummed:
                continue
            touched = bucket.data_files(bucket.touched & bucket.years)
            defer = set() if settle else {n for n in touched if is_closed(n, this_year)}
            redo = (touched | bucket.data_files(bucket.unsummed & bucket.years)) - defer
            if update_record(self.fs, bucket.path, bucket.data_files(), redo, this_year,
                             defer=defer):
                written += 1
            bucket.unsummed = {y for y in bucket.touched & bucket.years
                               if bucket.data_files({y}) <= defer}
            bucket.touched.clear()
        return written

    def close(self) -> None:
        self.cache.close()


def any_bucket(fs: FileSystem, root: str) -> bool:
    """Whether `root` holds at least one bucket directory (`SYM/TF/ATTR/bucket.hdr`)."""
    for sym in fs.listdir(root):
        sp = os.path.join(root, sym)
        if sym == "wal" or not fs.isdir(sp):
            continue
        for tf in fs.listdir(sp):
            tp = os.path.join(sp, tf)
            if fs.isdir(tp) and any(fs.exists(os.path.join(tp, a, TEMPLATE_NAME))
                                    for a in fs.listdir(tp)):
                return True
    return False


def read_header(fs: FileSystem, path: str) -> Header:
    try:
        f = fs.open(path)
    except IsADirectoryError as exc:
        raise not_a_file(path) from exc
    try:
        head = pread_file(f, PAGE, 0)
        want = decode_size(head, path)
        if PAGE < want <= 4 * PAGE:
            head = pread_file(f, want, 0)
        return decode_header(head, path)
    finally:
        f.close()
