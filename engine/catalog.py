"""The catalog: which buckets exist under the root, their schemas, and their open year files.

A bucket is a directory `<root>/SYM/TF/ATTR/` holding `bucket.hdr` (its schema, durable
before any data refers to it) and one `<YYYY>.bin` per year (docs/format.md "Directory").
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field

from mkts.engine.durable import atomic_write, makedirs_durable, remove_tree_durable
from mkts.engine.errors import BucketNotFoundError, CorruptFileError, InvalidKeyError
from mkts.engine.header import PAGE, Header, decode_header, encode_header
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.schema import Schema
from mkts.engine.timeutil import Calendar
from mkts.engine.yearfile import YearFile, decode_size
from mkts.wal.fs import FileSystem

__all__ = ["Bucket", "Catalog", "TEMPLATE_NAME", "DESTROYING", "any_bucket"]

TEMPLATE_NAME = "bucket.hdr"
# docs/format.md "Durability": a bucket being destroyed is renamed `SYM/TF/.ATTR.destroying`
# in one step (no key part starts with "."), then removed; open finishes what a crash cut.
DESTROYING = ".destroying"
_YEAR_FILE = re.compile(r"^(\d{4})\.bin$")


@dataclass
class Bucket:
    key: BucketKey
    schema: Schema
    path: str
    years: set[int] = field(default_factory=set)
    files: dict[int, YearFile] = field(default_factory=dict)
    timezone: str = ""  # the zone its bucket.hdr records (must be the root's)

    def sorted_years(self) -> list[int]:
        return sorted(self.years)


class Catalog:
    """Buckets by key. Callers hold the database's locks; this class does not lock."""

    def __init__(self, fs: FileSystem, root: str, calendar: Calendar, *, readonly: bool) -> None:
        self.fs = fs
        self.root = root
        self.calendar = calendar
        self.readonly = readonly
        self.buckets: dict[BucketKey, Bucket] = {}
        self._open_lock = threading.Lock()

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

    def _load_bucket(self, key_text: str, path: str) -> None:
        try:
            key = parse_key(key_text)
        except InvalidKeyError:
            return  # not ours (a stray directory); never touched
        header = read_header(self.fs, os.path.join(path, TEMPLATE_NAME))
        bucket = Bucket(key, header.schema, path, timezone=header.timezone)
        for name in self.fs.listdir(path):
            m = _YEAR_FILE.match(name)
            if m:
                bucket.years.add(int(m.group(1)))
            elif name.endswith(".tmp") and not self.readonly:
                self.fs.unlink(os.path.join(path, name))  # an interrupted atomic write
        self.buckets[key] = bucket

    # -- lookups -------------------------------------------------------------------------
    def get(self, key: BucketKey) -> Bucket:
        b = self.buckets.get(key)
        if b is None:
            raise BucketNotFoundError(f"bucket {key} does not exist")
        return b

    def bucket_path(self, key: BucketKey) -> str:
        return os.path.join(self.root, key.symbol, key.timeframe, key.attrgroup)

    def year_file(self, bucket: Bucket, year: int, *, create: bool = False,
                  prefetch: tuple[int, int] | None = None) -> YearFile | None:
        """The open year file (None if absent and not `create`); `prefetch`: see
        YearFile.open (used only when the file is opened now)."""
        f = bucket.files.get(year)
        if f is not None:
            return f
        with self._open_lock:
            return self._year_file(bucket, year, create, prefetch)

    def _year_file(self, bucket: Bucket, year: int, create: bool,
                   prefetch: tuple[int, int] | None = None) -> YearFile | None:
        f = bucket.files.get(year)
        if f is not None:
            return f
        path = os.path.join(bucket.path, f"{year}.bin")
        if year in bucket.years:
            f = YearFile.open(self.fs, path, writable=not self.readonly, prefetch=prefetch)
            h = f.header
            if h.year != year or h.schema != bucket.schema:
                f.close()
                raise CorruptFileError(
                    f"{path}: header says year {h.year} / a different schema than the bucket"
                )
        elif create:
            header = self.year_header(bucket, year)
            data = encode_header(header.schema, year, header.nslots, header.year_start,
                                 self.calendar.tz)
            f = YearFile.create(self.fs, path, data, header)
            bucket.years.add(year)
        else:
            return None
        bucket.files[year] = f
        return f

    def year_header(self, bucket: Bucket, year: int) -> Header:
        from mkts.engine.header import header_size_for

        schema = bucket.schema
        return Header(schema, year, self.calendar.nslots(year, schema.timeframe),
                      self.calendar.year_start(year), self.calendar.tz,
                      header_size_for(len(schema.columns)))

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
        for f in bucket.files.values():
            f.close()
        bucket.files.clear()
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

    def dirty_files(self) -> list[YearFile]:
        return [f for b in self.buckets.values() for f in b.files.values() if f.dirty]

    def close(self) -> None:
        for b in self.buckets.values():
            for f in b.files.values():
                f.close()
            b.files.clear()


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
    f = fs.open(path)
    try:
        head = f.pread(PAGE, 0)
        want = decode_size(head, path)
        if PAGE < want <= 4 * PAGE:
            head = f.pread(want, 0)
        return decode_header(head, path)
    finally:
        f.close()
