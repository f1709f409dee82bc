"""The catalog: which buckets exist under the root, their schemas, and their open year files.

A bucket is a directory `<root>/SYM/TF/ATTR/` holding `bucket.hdr` (its schema, durable
before any data refers to it) and per year one `<YYYY>.bin`, or a `<YYYY>.sealed` with
perhaps a `<YYYY>.overlay` of corrections (docs/format.md "The three states of a year").
How many year files stay open, and when one is closed, belongs to engine/filecache.py;
opening them to engine/catalogyears.py, destroying buckets to engine/catalogdestroy.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from mkts.engine.blockcache import BlockCache
from mkts.engine.bucket import Bucket as Bucket
from mkts.engine.catalogdestroy import DESTROY_INTENT as DESTROY_INTENT
from mkts.engine.catalogdestroy import DESTROYING as DESTROYING
from mkts.engine.catalogdestroy import Destroyer
from mkts.engine.catalogyears import YearFiles
from mkts.engine.durable import atomic_write, makedirs_durable, remove_tree_durable
from mkts.engine.errors import BucketNotFoundError, CorruptFileError, InvalidKeyError
from mkts.engine.filecache import FileCache, default_max_open_files
from mkts.engine.filerecord import current_year, is_closed, update_record
from mkts.engine.header import PAGE, Header, decode_header, encode_header
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.schema import Schema
from mkts.engine.sealfile import SealedReader
from mkts.engine.sealing import live_name, overlay_name, tidy_year_files
from mkts.engine.timeutil import Calendar
from mkts.engine.yearfile import YearFile, decode_size, not_a_file, pread_file
from mkts.wal.fs import FileSystem

__all__ = ["Bucket", "Catalog", "TEMPLATE_NAME", "DESTROYING", "DESTROY_INTENT", "any_bucket",
           "YEAR_FILE"]

TEMPLATE_NAME = "bucket.hdr"
YEAR_FILE = re.compile(r"^(\d{4})\.(bin|sealed|overlay)\Z")


class Catalog(YearFiles, Destroyer):
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

    # -- changes -------------------------------------------------------------------------
    def create(self, key: BucketKey, schema: Schema) -> Bucket:
        path = self.bucket_path(key)
        makedirs_durable(self.fs, path, self.root)
        atomic_write(self.fs, os.path.join(path, TEMPLATE_NAME),
                     encode_header(schema, 0, 0, 0, self.calendar.tz))
        bucket = Bucket(key, schema, path, timezone=self.calendar.tz)
        self.buckets[key] = bucket
        return bucket

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
