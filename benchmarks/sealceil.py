"""Ceilings of a sealed full-year read on the machine at hand, measured in the same run as
the read (benchmarks/compare.py scenario 9), cases interleaved round by round so a noisy
minute hits all of them alike.

On the symbol-year's own sealed file: zstd's decompression of the chunks a full read
decompresses (those stored compressed), and of every chunk as if each were a zstd frame (the
codec before plain chunks); numpy writing the decoded columns into the fields of a result of
the read's dtype (the stores no decoder can avoid); numpy's copy of the result's bytes; and
the disk's read of the file's bytes after its pages are dropped (the cold read's floor).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zstandard

from benchmarks.ceilings import timed_rounds

__all__ = ["sealed_read_ceilings"]


def _chunks(path: str) -> tuple[list[tuple[int, bytes]], int]:
    """(codec, stored bytes) of every chunk of the sealed file, and the file's size."""
    from mkts.engine.sealfile import SealedReader

    with open(path, "rb") as fh:
        blob = fh.read()
    r = SealedReader(lambda off, n: blob[off : off + n], len(blob), path)
    out = [(int(c), blob[int(o) : int(o) + int(n)]) for o, n, c in
           zip(r.chunks["offset"].ravel(), r.chunks["length"].ravel(),
               r.chunks["codec"].ravel(), strict=True)]
    return out, len(blob)


def _cold_read(path: str, size: int) -> Callable[[], Any]:
    def run() -> Any:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    return run


def sealed_read_ceilings(path: str, result: np.ndarray, read: Callable[[], Any],
                         rounds: int = 15, burst: int = 5,
                         more: dict[str, Callable[[], Any]] | None = None
                         ) -> dict[str, tuple[float, float]]:
    """(median seconds per call, minor page faults per call) of the read and of each
    ceiling: `path` is the sealed file the read decodes whole, `result` one result of it (a
    structured array). The faults show memory the allocator handed back to the system
    between calls and took again (each a trap into the kernel and a zeroed page). `more`:
    other reads measured in the same rounds (the read without the block cache)."""
    from mkts.engine.sealcodec import PLAIN

    chunks, size = _chunks(path)
    z = [data for codec, data in chunks if not codec & PLAIN]
    comp = zstandard.ZstdCompressor(level=1)
    dec = zstandard.ZstdDecompressor()
    every = [data if not codec & PLAIN else comp.compress(data) for codec, data in chunks]
    names = list(result.dtype.names or ())
    cols = {n: np.ascontiguousarray(result[n]) for n in names}
    out = np.empty_like(result)
    src = np.ascontiguousarray(result).view(np.uint8).ravel()
    dst = np.empty_like(src)

    def stores() -> None:
        for n in names:
            out[n] = cols[n]

    cases: dict[str, Callable[[], Any]] = {
        "the read (db.read)": read,
        **(more or {}),
        "zstd: the chunks stored compressed": lambda: [dec.decompress(c) for c in z],
        "zstd: every chunk as a zstd frame (before plain chunks)":
            lambda: [dec.decompress(c) for c in every],
        "numpy: decoded columns written into the result's fields": stores,
        "numpy: copy of the result's bytes": lambda: np.copyto(dst, src),
        "disk: the file's bytes read cold": _cold_read(path, size),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    faults = dict.fromkeys(cases, 0)
    for _ in range(rounds):
        for name, fn in cases.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(burst):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {k: (statistics.median(v), faults[k] / len(v)) for k, v in times.items()}


def sealing_ceilings(encode: Callable[[], Any], columns: dict[str, np.ndarray], group: int,
                     rounds: int = 7) -> dict[str, float]:
    """Median seconds per call of the encoding of one symbol-year (`encode`) and of parts of
    it on the same columns, interleaved: the exactness check of each float chunk alone
    (`scale_floats`, which every float chunk needs), numpy's copy of the columns' bytes, and
    zstd (level 1) over every chunk's raw bytes (what compressing all of them would cost)."""
    from mkts.engine.sealcodec import scale_floats

    floats = [(c[a : a + group], c.dtype) for c in columns.values() if c.dtype.kind == "f"
              for a in range(0, len(c), group)]
    raw = [np.ascontiguousarray(c[a : a + group]).tobytes() for c in columns.values()
           for a in range(0, len(c), group)]
    src = np.concatenate([np.ascontiguousarray(c).view(np.uint8) for c in columns.values()])
    dst = np.empty_like(src)
    comp = zstandard.ZstdCompressor(level=1)
    cases: dict[str, Callable[[], Any]] = {
        "the encoding (encode_sealed)": encode,
        "exactness check of the float chunks (scale_floats)":
            lambda: [scale_floats(c, dt) for c, dt in floats],
        "zstd level 1 over every chunk's raw bytes": lambda: [comp.compress(b) for b in raw],
        "numpy: copy of the columns' bytes": lambda: np.copyto(dst, src),
    }
    return timed_rounds(cases, rounds, 1)
