"""The decoded block cache of sealed year files: column chunks (one column of one row group)
decoded once and kept, read-only, in a least-recently-used map bounded in bytes, so that a
repeated read of a sealed range copies values instead of decompressing and decoding them.
How reads use it: docs/format.md "The decoded block cache".
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from mkts.engine.sealfile import SealedReader
from mkts.wal.fs import FileSystem

__all__ = ["BlockCache", "BlockCacheStats", "ENTRY_OVERHEAD"]

# Bytes counted per entry besides its values (key tuple, map slot, array header): the bound
# holds for what the cache really keeps, not only for the values.
ENTRY_OVERHEAD = 256
_tokens = itertools.count(1)  # identities of files that cannot be stat'ed (never shared)


@dataclass(frozen=True)
class BlockCacheStats:
    """What the cache holds and did: chunks found (`hits`), decoded for it (`misses`),
    dropped to stay within `capacity` bytes (`evictions`); `bytes` counts values plus
    ENTRY_OVERHEAD per entry."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    capacity: int


class BlockCache:
    """Decoded chunks by (file, row group, column), least recently used first out once
    their bytes would exceed `capacity`. Thread-safe: every map operation holds one lock;
    the arrays handed out are read-only and only ever copied from.

    A file is named by what cannot be confused after a re-seal, a drop or a replace: the
    device, inode, modification time and size of the file at its path, with the generation
    and footer checksum its reader read (stat'ed once per reader). Two readers of the same
    file share entries; a re-sealed year (a new file, a new generation) never meets the old
    one's. A file system without `stat` gives each reader an identity of its own."""

    def __init__(self, capacity: int, fs: FileSystem) -> None:
        self.capacity = int(capacity)
        self._fs = fs
        self._lock = threading.Lock()
        self._map: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = self.evictions = 0
        self._files: dict[tuple[int, ...], int] = {}  # file identity -> its number here
        self._readers: weakref.WeakKeyDictionary[SealedReader, int] = \
            weakref.WeakKeyDictionary()

    def file_id(self, reader: SealedReader) -> int:
        """This cache's number for the file `reader` reads (see the class docstring)."""
        with self._lock:
            fid = self._readers.get(reader)
        if fid is not None:
            return fid
        ident = self._identity(reader)  # a stat: outside the lock
        with self._lock:
            fid = self._files.setdefault(ident, len(self._files) + 1)
            self._readers[reader] = fid
        return fid

    def _identity(self, reader: SealedReader) -> tuple[int, ...]:
        m = reader.meta
        stat = getattr(self._fs, "stat", None)
        try:
            st = stat(reader.path) if stat is not None else None
        except OSError:
            st = None
        if st is None or st.st_size != reader.file_size:  # replaced since, or no stat
            return (0, next(_tokens))
        return (1, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, m.generation,
                reader.footer_crc)

    def lookup(self, fid: int, groups: range, cols: list[int]
               ) -> dict[tuple[int, int], np.ndarray]:
        """The cached chunks among `groups` x `cols`, by (group, column), each made the most
        recently used (the others are the caller's to decode and `add`)."""
        got: dict[tuple[int, int], np.ndarray] = {}
        m = self._map
        with self._lock:
            for g in groups:
                for c in cols:
                    a = m.get((fid, g, c))
                    if a is not None:
                        m.move_to_end((fid, g, c))
                        got[(g, c)] = a
            self.hits += len(got)
        return got

    def add(self, fid: int, g: int, c: int, values: np.ndarray) -> np.ndarray:
        """Keep `values` (an array of its own, made read-only here) as chunk (g, c) of file
        `fid`, dropping the least recently used chunks to stay within the capacity; a chunk
        larger than the whole capacity is not kept. Returns `values`. Counts a miss."""
        values.flags.writeable = False
        size = values.nbytes + ENTRY_OVERHEAD
        key = (fid, g, c)
        m = self._map
        with self._lock:
            self.misses += 1
            if size > self.capacity:
                return values
            old = m.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes + ENTRY_OVERHEAD
            m[key] = values
            self._bytes += size
            while self._bytes > self.capacity:
                _, dropped = m.popitem(last=False)
                self._bytes -= dropped.nbytes + ENTRY_OVERHEAD
                self.evictions += 1
        return values

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        with self._lock:
            self._map.clear()
            self._bytes = 0

    def stats(self) -> BlockCacheStats:
        with self._lock:
            return BlockCacheStats(self.hits, self.misses, self.evictions, len(self._map),
                                   self._bytes, self.capacity)
