"""A read-only handle beside a writer (another process, or another handle of this one): each
read first brings the handle's view of the bucket's year files up to date with its directory,
and a read that meets a sealed file replaced under it (a re-seal, a drop) reads again from the
files now there (docs/format.md "Read-only handles beside a seal").
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from mkts.engine.catalog import YEAR_FILE, Bucket, Catalog
from mkts.engine.errors import CorruptFileError
from mkts.engine.sealfile import SealedReader
from mkts.engine.sealing import open_sealed, sealed_name, tidy_year_files
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import FileSystem

__all__ = ["read_following", "refresh", "ATTEMPTS"]

T = TypeVar("T")
ATTEMPTS = 16  # reads of one call: a file replaced again between each is a writer sealing
# the same year over and over, which a read-only handle does not wait for forever
_lock = threading.Lock()  # one refresh at a time per process (they replace a bucket's sets)
_detached: list[YearFile] = []  # files taken out of a cache while pinned: closed when free
# A bucket directory whose modification time has not moved since a listing taken more than
# this long after that time is not listed again: file times have a coarse clock, so two
# changes within one tick leave the same time, and a listing between them must not be
# trusted until the tick is long past (a stat per read instead of a listing).
RACY_NS = 2_000_000_000
# sealed reader -> (inode, size, time) of the file it was last found to read
_idents: weakref.WeakKeyDictionary[SealedReader, tuple[int, int, int]] = \
    weakref.WeakKeyDictionary()
# catalog -> bucket path -> (directory stamp, time of the listing)
_stamps: weakref.WeakKeyDictionary[Catalog, dict[str, tuple[tuple[int, int], int]]] = \
    weakref.WeakKeyDictionary()


def read_following(catalog: Catalog, bucket: Bucket, read: Callable[[], T]) -> T:
    """`read()` against the files on disk now: the bucket's view is refreshed first; a
    CorruptFileError or a missing file met while another process replaced the year's files
    refreshes again and repeats the read. Damage (nothing was replaced) is raised as is."""
    refresh(catalog, bucket)
    for attempt in range(ATTEMPTS):
        try:
            return read()
        except (CorruptFileError, FileNotFoundError):
            if attempt == ATTEMPTS - 1 or not refresh(catalog, bucket, recheck=True):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def refresh(catalog: Catalog, bucket: Bucket, *, recheck: bool = False) -> bool:
    """Make `bucket.years`, `.sealed` and `.overlays` say what its directory holds now, by the
    open-time rules (engine/sealing.py `tidy_year_files`, read-only: nothing is removed). A
    year whose file names changed since the last listing, or whose cached sealed reader no
    longer reads the file at its path (a stat; with `recheck`, or the first time, its
    generation, size and footer checksum), loses its cached reader and open files. A stat of the directory per call, a listing when
    it changed (or recently); True if a year changed."""
    fs = catalog.fs
    seen = _stamps.setdefault(catalog, {})
    now = time.time_ns()
    stamp = _dir_stamp(fs, bucket.path)
    last = seen.get(bucket.path)
    if not recheck and stamp is not None and last is not None and last[0] == stamp \
            and last[1] - stamp[1] > RACY_NS:
        return False  # the directory did not change since a listing taken well after
    try:
        names = fs.listdir(bucket.path)
    except FileNotFoundError:  # the bucket was destroyed: it has no year any more
        names = []
    if stamp is not None:
        seen[bucket.path] = (stamp, now)
    listing = frozenset(n for n in names if YEAR_FILE.match(n))
    changed = {int(n[:4]) for n in listing ^ bucket.listing}
    # a re-seal keeps the names: the directory changed, so each cached sealed reader is
    # compared with the file at its path (a stat; the first time, its header and footer)
    changed.update(y for y, r in list(bucket.sealed.items())
                   if y not in changed and r is not None
                   and not _still_there(catalog, bucket, y, r, recheck))
    if not changed:
        return False
    with _lock:
        _close_detached()
        years, sealed, overlays = set(bucket.years), dict(bucket.sealed), set(bucket.overlays)
        for y in changed:
            f = catalog.cache.detach(bucket.files, y)
            if f is not None:
                _detached.append(f)
            mine = [n for n in listing if n.startswith(f"{y}.")]
            try:
                kept = tidy_year_files(fs, bucket.path, mine, True)
            except FileNotFoundError:  # changed again while read: the next refresh retries
                listing = listing - set(mine)
                continue
            years.discard(y)
            sealed.pop(y, None)
            overlays.discard(y)
            for name in kept:
                kind = name.rsplit(".", 1)[1]
                if kind == "overlay":
                    overlays.add(y)
                    continue
                years.add(y)
                if kind == "sealed":
                    sealed[y] = None  # opened (and checked) by the read that needs it
        overlays &= set(sealed)  # an overlay without its sealed file is not read
        # new objects, not changes in place: a read in another thread iterates the old ones
        bucket.years, bucket.sealed, bucket.overlays = years, sealed, overlays
        bucket.listing = listing
    return True


def _dir_stamp(fs: FileSystem, path: str) -> tuple[int, int] | None:
    """(inode, modification time in ns) of a directory; None if the file system cannot say
    (the directory is then listed at every read)."""
    stat = getattr(fs, "stat", None)
    if stat is None:
        return None
    try:
        st = stat(path)
    except FileNotFoundError:
        return None
    return int(st.st_ino), int(st.st_mtime_ns)


def _still_there(catalog: Catalog, bucket: Bucket, year: int, r: SealedReader,
                 recheck: bool) -> bool:
    """Whether the sealed file at the year's path is still the one `r` reads: the same
    inode, size and time as when it was last found to be (`recheck`, or the first time:
    the same generation, size and footer checksum, read from the file)."""
    path = os.path.join(bucket.path, sealed_name(year))
    stat = getattr(catalog.fs, "stat", None)
    try:
        st = stat(path) if stat is not None else None
    except FileNotFoundError:
        return False
    ident = None if st is None else (int(st.st_ino), int(st.st_size), int(st.st_mtime_ns))
    known = _idents.get(r)
    if known is not None and ident is not None and not recheck:
        return known == ident
    if not _same_file(catalog, bucket, year, r):  # read after the stat: see below
        return False
    if ident is not None:
        # stat'ed before the file was read: if it was replaced in between, the comparison
        # above failed; if after, the next stat differs from this one
        _idents[r] = ident
    return True


def _same_file(catalog: Catalog, bucket: Bucket, year: int, r: SealedReader) -> bool:
    """Whether the sealed file at the year's path is the one `r` read its footer from."""
    try:
        now = open_sealed(catalog.fs, os.path.join(bucket.path, sealed_name(year)))
    except (CorruptFileError, FileNotFoundError):
        return False
    return (now.meta.generation, now.file_size, now.footer_crc) == \
        (r.meta.generation, r.file_size, r.footer_crc)


def _close_detached() -> None:
    """Close the detached files no read pins any more (under `_lock`)."""
    for f in [f for f in _detached if not f.pins]:
        _detached.remove(f)
        f.close()
