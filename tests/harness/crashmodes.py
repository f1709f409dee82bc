"""What survives a simulated crash: the CrashMode enum and pure functions over one file or dir.

FaultFS (faultfs.py) owns the live state and the post-crash walk; this module only decides,
from a file's durable bytes, volatile bytes and unsynced ops (or a directory's durable entries,
volatile entries and unsynced changes), what the disk holds after the machine dies.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "SECTOR",
    "CrashMode",
    "Write",
    "Truncate",
    "FileOp",
    "Link",
    "Unlink",
    "Rename",
    "Exchange",
    "DirOp",
    "apply_file_op",
    "apply_dir_op",
    "touched_sectors",
    "surviving_content",
    "surviving_entries",
]

SECTOR = 512  # the unit SECTOR_SUBSET and UNSAFE_APPEND corrupt independently (SQLite crash VFS)

N = TypeVar("N")  # a directory entry's target (an inode); compared by identity only


class CrashMode(enum.Enum):
    """How much unsynced state a crash keeps. See surviving_content/surviving_entries."""

    PROCESS_CRASH = "process_crash"  # kill -9: the page cache survives, nothing is lost
    DROP_ALL_UNSYNCED = "drop_all_unsynced"  # only synced data and fsynced dir entries
    RANDOM_PREFIX = "random_prefix"  # per file a prefix of its unsynced writes (last one torn)
    DROP_UNSYNCED_DIRENTS = "drop_unsynced_dirents"  # data survives, unsynced dir changes revert
    SECTOR_SUBSET = "sector_subset"  # each unsynced sector old, new or garbage
    UNSAFE_APPEND = "unsafe_append"  # metadata survives, unsynced data is zeros or garbage


# --- unsynced operations, recorded in order since the last sync / fsync_dir -----------------


@dataclass(frozen=True, slots=True)
class Write:
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Truncate:
    size: int
    old_size: int


FileOp = Write | Truncate


@dataclass(frozen=True, slots=True)
class Link(Generic[N]):
    """`name` now refers to `node` (create, mkdir, or the target half of a cross-dir rename)."""

    name: str
    node: N


@dataclass(frozen=True, slots=True)
class Unlink:
    name: str


@dataclass(frozen=True, slots=True)
class Rename(Generic[N]):
    """A rename inside one directory: atomic, so a crash keeps it whole or not at all."""

    src: str
    dst: str
    node: N


@dataclass(frozen=True, slots=True)
class Exchange(Generic[N]):
    """Two names of one directory swap their inodes (renameat2 RENAME_EXCHANGE): atomic, so a
    crash keeps it whole or not at all; across directories it is a Link in each."""

    a: str
    b: str
    node_a: N  # what `a` referred to before the swap (now `b`'s)
    node_b: N


DirOp = Link[N] | Unlink | Rename[N] | Exchange[N]


def apply_file_op(buf: bytearray, op: FileOp) -> None:
    """Apply one write or truncate to `buf` (which is resized as a file would be)."""
    if isinstance(op, Truncate):
        if op.size < len(buf):
            del buf[op.size :]
        else:
            buf.extend(bytes(op.size - len(buf)))
        return
    if op.offset > len(buf):
        buf.extend(bytes(op.offset - len(buf)))
    buf[op.offset : op.offset + len(op.data)] = op.data


def apply_dir_op(entries: dict[str, N], op: DirOp[N]) -> None:
    if isinstance(op, Link):
        entries[op.name] = op.node
    elif isinstance(op, Unlink):
        entries.pop(op.name, None)
    elif isinstance(op, Exchange):
        entries[op.a], entries[op.b] = op.node_b, op.node_a
    else:
        if entries.get(op.src) is op.node:
            del entries[op.src]
        entries[op.dst] = op.node


def touched_sectors(ops: Sequence[FileOp]) -> list[tuple[int, int]]:
    """Merged half-open sector ranges that the unsynced ops wrote to.

    A truncate that shrinks touches the cut-off tail; one that extends only changes the size
    (the new range is a hole, so it reads as zeros whether or not the size survives)."""
    ranges: list[tuple[int, int]] = []
    for op in ops:
        if isinstance(op, Write):
            if op.data:
                ranges.append((op.offset // SECTOR, -(-(op.offset + len(op.data)) // SECTOR)))
        elif op.size < op.old_size:
            ranges.append((op.size // SECTOR, -(-op.old_size // SECTOR)))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _padded(data: bytes | bytearray | memoryview, lo: int, hi: int) -> bytes:
    chunk = bytes(data[lo:hi])
    return chunk + bytes(hi - lo - len(chunk))


def surviving_content(
    mode: CrashMode,
    durable: bytes | bytearray,
    volatile: bytes | bytearray | memoryview,
    ops: Sequence[FileOp],
    rng: random.Random,
) -> bytearray:
    """The bytes a file holds after a crash in `mode`.

    `durable` is the content at the last sync, `volatile` the content now, and `ops` the
    writes and truncates since that sync, in order (applying them to `durable` gives
    `volatile`)."""
    if not ops or mode in (CrashMode.PROCESS_CRASH, CrashMode.DROP_UNSYNCED_DIRENTS):
        return bytearray(volatile)
    if mode is CrashMode.DROP_ALL_UNSYNCED:
        return bytearray(durable)
    if mode is CrashMode.RANDOM_PREFIX:
        return _random_prefix(durable, ops, rng)
    if mode is CrashMode.SECTOR_SUBSET:
        return _sector_subset(durable, volatile, ops, rng)
    return _unsafe_append(durable, len(volatile), ops, rng)


def _random_prefix(
    durable: bytes | bytearray, ops: Sequence[FileOp], rng: random.Random
) -> bytearray:
    """The first k ops (k uniform in 0..n), then a random byte prefix of op k if it is a write
    (RocksDB DropRandomUnsyncedData keeps a random prefix of the unsynced bytes)."""
    out = bytearray(durable)
    k = rng.randint(0, len(ops))
    for op in ops[:k]:
        apply_file_op(out, op)
    if k < len(ops):
        torn = ops[k]
        if isinstance(torn, Write) and len(torn.data) > 1:
            keep = rng.randrange(len(torn.data))
            if keep:
                apply_file_op(out, Write(torn.offset, torn.data[:keep]))
    return out


def _sector_subset(
    durable: bytes | bytearray,
    volatile: bytes | bytearray | memoryview,
    ops: Sequence[FileOp],
    rng: random.Random,
) -> bytearray:
    """Size old or new (a coin); then each touched sector old, new or garbage (1/3 each)."""
    size = len(volatile)
    if len(durable) != size:
        size = rng.choice((len(durable), size))
    out = bytearray(durable[:size])
    out.extend(bytes(size - len(out)))
    for lo_s, hi_s in touched_sectors(ops):
        for s in range(lo_s, hi_s):
            lo = s * SECTOR
            if lo >= size:
                break
            hi = min(lo + SECTOR, size)
            pick = rng.randrange(3)
            if pick == 1:
                out[lo:hi] = _padded(volatile, lo, hi)
            elif pick == 2:
                out[lo:hi] = rng.randbytes(hi - lo)
            # pick == 0: the old sector, already in `out`
    return out


def _unsafe_append(
    durable: bytes | bytearray, size: int, ops: Sequence[FileOp], rng: random.Random
) -> bytearray:
    """The new size with the old data: unsynced overwrites revert, and each written sector past
    the durable end is zeros or garbage (ext3 data=writeback after a power cut)."""
    out = bytearray(durable[:size])
    out.extend(bytes(size - len(out)))
    end = len(durable)
    for lo_s, hi_s in touched_sectors(ops):
        for s in range(max(lo_s, end // SECTOR), hi_s):
            lo = max(s * SECTOR, end)
            hi = min((s + 1) * SECTOR, size)
            if lo >= size:
                break
            if rng.randrange(2):
                out[lo:hi] = rng.randbytes(hi - lo)
    return out


def surviving_entries(
    mode: CrashMode,
    durable: dict[str, N],
    volatile: dict[str, N],
    ops: Sequence[DirOp[N]],
    rng: random.Random,
) -> dict[str, N]:
    """A directory's entries after a crash in `mode`.

    `durable` is the entry set at the last fsync_dir, `volatile` the set now, and `ops` the
    changes since, in order. RANDOM_PREFIX and SECTOR_SUBSET keep each change with
    probability 1/2 and apply the kept ones in order (a same-directory rename or exchange is
    one change, so it is never half done; a cross-directory one is two changes in two
    directories)."""
    if not ops or mode in (CrashMode.PROCESS_CRASH, CrashMode.UNSAFE_APPEND):
        return dict(volatile)
    if mode in (CrashMode.DROP_ALL_UNSYNCED, CrashMode.DROP_UNSYNCED_DIRENTS):
        return dict(durable)
    out = dict(durable)
    for op in ops:
        if rng.random() < 0.5:
            apply_dir_op(out, op)
    return out
