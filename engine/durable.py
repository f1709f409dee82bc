"""Durable filesystem steps built on the I/O seam: atomic file replace, directory creation,
and reading back a small file written that way.

Every create or rename is followed by an fsync of its directory (docs/format.md "Durability").
"""

from __future__ import annotations

import os

from mkts.wal.fs import FileSystem

__all__ = ["atomic_write", "makedirs_durable", "read_small", "remove_tree_durable"]


def atomic_write(fs: FileSystem, path: str, data: bytes, *, size: int | None = None) -> None:
    """Write `data` (then extend to `size` with a hole) as `path`, all or nothing, durably."""
    tmp = path + ".tmp"
    if fs.exists(tmp):
        fs.unlink(tmp)
    f = fs.open(tmp, create=True)
    try:
        f.pwrite(data, 0)
        if size is not None and size > len(data):
            f.truncate(size)
        f.sync()
    finally:
        f.close()
    fs.replace(tmp, path)
    fs.fsync_dir(os.path.dirname(path))


def read_small(fs: FileSystem, path: str) -> bytes | None:
    """The whole content of the small file `path` (a record or manifest written by
    `atomic_write`), or None when there is none."""
    if not fs.exists(path):
        return None
    f = fs.open(path)
    try:
        return f.pread(f.size(), 0)
    finally:
        f.close()


def makedirs_durable(fs: FileSystem, path: str, stop: str) -> None:
    """Create `path` and any missing parents below `stop`, fsyncing each new entry's parent."""
    missing: list[str] = []
    p = path
    while p != stop and not fs.exists(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        fs.mkdir(d)
        fs.fsync_dir(os.path.dirname(d))


def remove_tree_durable(fs: FileSystem, path: str) -> None:
    """Remove a directory tree bottom-up, fsyncing each directory after its entries go."""
    for name in fs.listdir(path):
        child = os.path.join(path, name)
        if fs.isdir(child):
            remove_tree_durable(fs, child)
        else:
            fs.unlink(child)
    fs.fsync_dir(path)
    fs.rmdir(path)
    fs.fsync_dir(os.path.dirname(path))
