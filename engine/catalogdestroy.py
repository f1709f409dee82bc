"""Destroying buckets durably, all or nothing across crashes: one bucket by renaming its
directory aside, several through the `<root>/.destroy` intent, and finishing at open what a
crash cut short (docs/format.md "Durability"). The buckets are engine/catalog.py's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mkts.engine.bucket import Bucket
from mkts.engine.durable import atomic_write, remove_tree_durable
from mkts.engine.errors import InvalidKeyError
from mkts.engine.filecache import FileCache
from mkts.engine.keys import MAX_ATTR, MAX_PART, BucketKey, parse_key
from mkts.engine.yearfile import pread_file
from mkts.wal.fs import FileSystem

__all__ = ["Destroyer", "DESTROYING", "DESTROY_INTENT"]

# docs/format.md "Durability": a bucket being destroyed is renamed `SYM/TF/.ATTR.destroying`
# in one step (no key part starts with "."), then removed; open finishes what a crash cut.
DESTROYING = ".destroying"
assert MAX_ATTR + len(f".{DESTROYING}") <= MAX_PART  # the aside name fits (engine/keys.py)
# docs/format.md "Durability": a destroy of several buckets at once (a base and the buckets
# a trigger maintains from it) first writes their keys, one a line, to `<root>/.destroy`;
# open finishes the destroy of every key listed there, then removes the file.
DESTROY_INTENT = ".destroy"


class Destroyer:
    """The destroy half of `Catalog` (engine/catalog.py mixes it in)."""

    fs: FileSystem
    root: str
    readonly: bool
    buckets: dict[BucketKey, Bucket]
    cache: FileCache

    if TYPE_CHECKING:
        def get(self, key: BucketKey) -> Bucket: ...

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
