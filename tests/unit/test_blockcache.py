"""engine/blockcache.py on its own: least recently used out first within the byte bound,
read-only entries, a chunk larger than the bound not kept, and file identities that tell a
replaced file from the one it replaced."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mkts.engine.blockcache import ENTRY_OVERHEAD, BlockCache
from mkts.engine.schema import FIXED, Schema
from mkts.engine.sealfile import SealMeta, encode_sealed
from mkts.engine.sealing import open_sealed
from mkts.engine.timeframes import parse_timeframe
from mkts.wal.fs import OsFileSystem


def _chunk(n: int, v: int = 0) -> np.ndarray:
    return np.full(n, v, dtype=np.int64)


def test_least_recently_used_chunks_go_first_and_the_bound_holds() -> None:
    size = 100 * 8 + ENTRY_OVERHEAD
    cache = BlockCache(3 * size, OsFileSystem())
    for g in range(3):
        cache.add(1, g, 0, _chunk(100, g))
    assert set(cache.lookup(1, range(1), [0])) == {(0, 0)}  # group 0 used last now
    cache.add(1, 3, 0, _chunk(100, 3))
    got = cache.lookup(1, range(4), [0])
    assert set(got) == {(0, 0), (2, 0), (3, 0)}  # group 1 was the least recently used
    s = cache.stats()
    assert s.bytes == 3 * size <= s.capacity and s.entries == 3 and s.evictions == 1
    assert s.misses == 4 and s.hits == 4
    assert all(not a.flags.writeable for a in got.values())
    assert int(got[(3, 0)][0]) == 3


def test_a_chunk_larger_than_the_bound_is_returned_but_not_kept() -> None:
    cache = BlockCache(1000, OsFileSystem())
    big = cache.add(1, 0, 0, _chunk(1000))
    assert len(big) == 1000 and not big.flags.writeable
    assert cache.lookup(1, range(1), [0]) == {}
    assert cache.stats().bytes == 0


def _seal(path: str, value: int, generation: int = 1) -> None:
    schema = Schema(parse_timeframe("1Min"), FIXED, (("Close", np.dtype("<f8")),))
    meta = SealMeta(schema, 2023, 525_600, 1_672_531_200, "UTC", generation)
    parts = encode_sealed(meta, np.arange(10, dtype=np.int64),
                          {"Close": np.full(10, float(value))})
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(b"".join(parts))
    os.replace(tmp, path)


def test_a_file_replaced_at_the_same_path_gets_another_identity(tmp_path: Path) -> None:
    fs = OsFileSystem()
    cache = BlockCache(1 << 20, fs)
    path = os.fspath(tmp_path / "2023.sealed")
    _seal(path, 1)
    old = open_sealed(fs, path)
    again = open_sealed(fs, path)  # another reader of the same file shares its entries
    assert cache.file_id(old) == cache.file_id(again)
    _seal(path, 2)  # same size, same generation: a new inode and another footer
    new = open_sealed(fs, path)
    assert cache.file_id(new) != cache.file_id(old)
    _seal(path, 2, generation=2)
    assert cache.file_id(open_sealed(fs, path)) not in (cache.file_id(new), cache.file_id(old))
