"""Copying a database root the way a crash leaves it, cheaply: year files are mostly empty
slots (holes), so a copy keeps the holes and writes only the data extents."""

from __future__ import annotations

import os
import shutil


def sparse_copy(src: str, dst: str) -> None:
    """Copy a file's data extents only, keeping holes (year files are mostly empty slots)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: nothing but a hole up to the end
                break
            pos = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            fout.write(fin.read(pos - start))
        fout.truncate(size)


def copy_root(src: str, dst: str) -> None:
    """Copy the root directory `src` (open or not) to `dst`, every file sparsely."""
    shutil.copytree(src, dst, copy_function=sparse_copy)
