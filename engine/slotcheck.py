"""The checksum of a tick slot record (docs/format.md "Tick buckets", format version 2):
computed and verified for many slots at once with numpy, no I/O."""

from __future__ import annotations

import numpy as np

from mkts.engine.schema import TICK_SLOT_DTYPE

__all__ = ["CHECK_FIELD", "slot_checks", "with_checks", "bad_checks"]

CHECK_FIELD = "_check"  # u32 at offset 28 of the 48-byte slot
_WORDS = TICK_SLOT_DTYPE.itemsize // 4  # 12 u32 words; word 7 is the check itself
_CHECK_WORD = TICK_SLOT_DTYPE.fields[CHECK_FIELD][1] // 4  # type: ignore[index]
# docs/format.md: one odd multiplier per word (word 7, the check, has none): a change confined
# to one word always changes the sum modulo 2^32 (odd numbers are invertible modulo 2^32).
_K = np.array([0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646D,
               0xFD7046C5, 0, 0xB55A4F09, 0x7FEB352D, 0x846CA68B, 0xE6546B65], dtype=np.uint64)
_SEED = 0x6D6B7473  # "mkts": an all-zero record other than the check does not check as 0


def slot_checks(recs: np.ndarray) -> np.ndarray:
    """The u32 checksum of each tick slot record in `recs` (TICK_SLOT_DTYPE)."""
    words = np.ascontiguousarray(recs).view("<u4").reshape(len(recs), _WORDS)
    total = (words.astype(np.uint64) * _K).sum(axis=1, dtype=np.uint64)  # wraps mod 2^64
    out: np.ndarray = ((total + np.uint64(_SEED)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return out


def with_checks(records: bytes | memoryview) -> np.ndarray:
    """A copy of raw tick slot records with their checksums filled in."""
    recs = np.frombuffer(records, dtype=TICK_SLOT_DTYPE).copy()
    recs[CHECK_FIELD] = slot_checks(recs)
    return recs


def bad_checks(recs: np.ndarray) -> np.ndarray:
    """Positions in `recs` whose stored checksum does not match their bytes."""
    return np.flatnonzero(recs[CHECK_FIELD] != slot_checks(recs))
