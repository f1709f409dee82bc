"""Online, incremental backup of a root (`db.backup`, `mkts backup`): a fuzzy copy of the data
files plus the log records written meanwhile, replayed in the copy, which then holds the
database as of one transaction (docs/backup.md). Safe to interrupt: the destination is
swapped in one step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mkts.engine.backuplog import (
    EVERY,
    HeldLog,
    copy_file,
    copy_log,
    copy_sealed,
    pin_segments,
    swapped,
)
from mkts.engine.bulkload import ingest_sources
from mkts.engine.catalog import DESTROY_INTENT, TEMPLATE_NAME
from mkts.engine.durable import atomic_write, read_small, remove_tree_durable
from mkts.engine.errors import InvalidInputError, MktsError
from mkts.engine.filerecord import DATA_FILE, RECORD_NAME
from mkts.engine.keys import BucketKey
from mkts.engine.rootmeta import ROOT_META
from mkts.wal.fs import BackupFileSystem, OsFileSystem

__all__ = ["BackupResult", "BackupConflictError", "backup_root", "MANIFEST", "STAGING"]

log = logging.getLogger("mkts.engine")

MANIFEST = "mkts.backup"  # in the destination: which source files its data files copy
MANIFEST_FORMAT = 1
STAGING = ".mkts-backup-new"  # suffix of the sibling directory a backup is built in
_OLD = ".mkts-backup-old"  # suffix of the previous backup while two renames swap them
ATTEMPTS = 5  # a compaction or destroy during the copy starts the copy again, this often
# Files only ever replaced whole (atomic_write) and whose copy taken during the copy is right
# for the copy whatever happens to the source's later (docs/backup.md step 5): a checkpoint
# rewriting a file record during the copy is no reason to start again.
_ASIDE_OF_LOG = frozenset({RECORD_NAME, ROOT_META, DESTROY_INTENT})
RACY_NS = 2_000_000_000  # a file modified this recently may change without a new mtime


class BackupConflictError(MktsError, RuntimeError):
    """Files were replaced or removed outside the log (compaction, destroy) during every
    attempt of a backup; nothing changed at the destination."""


@dataclass
class BackupResult:
    """What a backup made: the copy holds the database as of transaction `txn` (the source's
    state after it: every transaction up to it, none after)."""

    dest: str
    txn: int
    base_txn: int  # the checkpoint the data files were copied from (replayed: base_txn+1..txn)
    files_copied: int = 0
    files_linked: int = 0  # unchanged since the previous backup: linked, not copied
    bytes_copied: int = 0
    seconds: float = 0.0
    attempts: int = 1

    def summary(self) -> str:
        return (f"backup of the database as of transaction {self.txn} in {self.dest}: "
                f"{self.files_copied} file(s) copied ({self.bytes_copied / 1e6:.1f} MB), "
                f"{self.files_linked} unchanged, log replayed from transaction "
                f"{self.base_txn + 1} in {self.seconds:.2f} s")


@dataclass
class _Source:
    """A source file and its identity when it was copied or linked."""

    rel: str
    st: os.stat_result
    linked: bool = False


@dataclass
class _Attempt:
    files: dict[str, _Source] = field(default_factory=dict)
    log: HeldLog = field(default_factory=HeldLog)
    copied: int = 0
    linked: int = 0
    nbytes: int = 0
    captured_ns: int = 0  # wall time when the log was captured (the racy-mtime rule)


def backup_root(root: str, dest: str, *, fs: BackupFileSystem | None = None,
                before_swap: Callable[[str], None] | None = None) -> BackupResult:
    """Back up the database at `root` into `dest` (docs/backup.md). `root` may be open in
    this or another process, with writers writing. `before_swap(staging)` is a test hook."""
    fs = fs or OsFileSystem()
    root, dest = os.path.abspath(root), os.path.abspath(dest)
    _check_paths(fs, root, dest)
    started = time.monotonic()
    parent, name = os.path.split(dest)
    staging = os.path.join(parent, f".{name}{STAGING}")
    _recover_leftovers(fs, dest)
    manifest = _read_manifest(fs, dest)
    for attempt in range(1, ATTEMPTS + 1):
        if fs.exists(staging):
            remove_tree_durable(fs, staging)
        fs.mkdir(staging)
        fs.fsync_dir(parent)
        a = _Attempt()
        try:
            try:
                ok = _copy_once(fs, root, dest, staging, manifest, a)
            finally:
                a.log.close()
            if not ok:
                log.info("backup of %s: files were replaced during attempt %d; copying again",
                         root, attempt)
                continue
            txn = _finish(fs, staging)
            _write_manifest(fs, staging, a, txn)
        except BaseException:
            if fs.exists(staging):  # DEST was not touched; leave nothing else behind
                remove_tree_durable(fs, staging)
            raise
        if before_swap is not None:
            before_swap(staging)
        _swap(fs, staging, dest)
        return BackupResult(dest, txn, a.log.base_txn, a.copied, a.linked, a.nbytes,
                            time.monotonic() - started, attempt)
    remove_tree_durable(fs, staging)
    raise BackupConflictError(
        f"backup of {root}: buckets were compacted or destroyed during each of {ATTEMPTS} "
        f"attempts; {dest} is unchanged. Run the backup when no compaction is running")


# -- destination --------------------------------------------------------------------------
def _check_paths(fs: BackupFileSystem, root: str, dest: str) -> None:
    if not fs.exists(os.path.join(root, ROOT_META)):
        raise InvalidInputError(f"{root} is not an mkts database (it has no {ROOT_META}); "
                                "give the root of a database as the source")
    inside = dest == root or dest.startswith(root + os.sep) or root.startswith(dest + os.sep)
    if inside:
        raise InvalidInputError(f"backup destination {dest} and database {root} overlap; "
                                "give a destination outside the database")
    parent = os.path.dirname(dest)
    if not fs.isdir(parent):
        raise InvalidInputError(f"backup destination {dest}: its directory {parent} does "
                                "not exist")
    if fs.isdir(dest) and fs.listdir(dest) and not fs.exists(os.path.join(dest, MANIFEST)):
        raise InvalidInputError(f"backup destination {dest} is not empty and holds no mkts "
                                f"backup (no {MANIFEST}); give a new or empty directory, or "
                                "the destination of an earlier backup")
    if fs.exists(dest) and not fs.isdir(dest):
        raise InvalidInputError(f"backup destination {dest} is a file, not a directory")


def _recover_leftovers(fs: BackupFileSystem, dest: str) -> None:
    """Finish what an interrupted backup left: a swap by two renames cut between them
    (dest missing, the old backup aside: put it back), and the staging directory."""
    parent, name = os.path.split(dest)
    old = os.path.join(parent, f".{name}{_OLD}")
    if fs.exists(old):
        if not fs.exists(dest):
            fs.replace(old, dest)
        else:
            remove_tree_durable(fs, old)
        fs.fsync_dir(parent)


def _read_manifest(fs: BackupFileSystem, dest: str) -> dict[str, dict[str, int]]:
    path = os.path.join(dest, MANIFEST)
    raw = read_small(fs, path)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw.decode("utf-8"))
        return {str(k): {kk: int(vv) for kk, vv in v.items()} for k, v in doc["files"].items()
                if v}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s is damaged: every file is copied again", path)
        return {}


def _write_manifest(fs: BackupFileSystem, staging: str, a: _Attempt, txn: int) -> None:
    files: dict[str, dict[str, int]] = {}
    for rel, src in sorted(a.files.items()):
        st = src.st
        # A file modified shortly before the log was captured could be written again after
        # it without a new mtime (coarse clocks): not trusted, copied next time too.
        if a.captured_ns - st.st_mtime_ns < RACY_NS:
            continue
        files[rel] = {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                      "mtime_ns": st.st_mtime_ns}
    doc = {"format": MANIFEST_FORMAT, "txn": txn, "files": files}
    atomic_write(fs, os.path.join(staging, MANIFEST), (json.dumps(doc) + "\n").encode())


def _swap(fs: BackupFileSystem, staging: str, dest: str) -> None:
    """Make `staging` the destination in one step; then remove the previous backup."""
    parent, name = os.path.split(dest)
    if not fs.exists(dest):
        fs.replace(staging, dest)
        fs.fsync_dir(parent)
        return
    try:
        fs.exchange(staging, dest)
    except OSError:
        old = os.path.join(parent, f".{name}{_OLD}")
        fs.replace(dest, old)  # a crash here: _recover_leftovers puts it back
        fs.fsync_dir(parent)
        fs.replace(staging, dest)
        fs.fsync_dir(parent)
        remove_tree_durable(fs, old)
        return
    fs.fsync_dir(parent)
    remove_tree_durable(fs, staging)  # the previous backup, now under the staging name


# -- one attempt ----------------------------------------------------------------------------
def _copy_once(fs: BackupFileSystem, root: str, dest: str, staging: str,
               manifest: dict[str, dict[str, int]], a: _Attempt) -> bool:
    """Copy the data files (fuzzy), then the log records written since the checkpoint they
    start from. False when a file was replaced or removed meanwhile (start again)."""
    wal_dir = os.path.join(root, "wal")
    pin_segments(fs, wal_dir, a.log, first=True)
    for rel in _source_files(fs, root):
        _take(fs, root, dest, staging, rel, manifest, a)
    # Every transaction applied to a file above was logged before: the log now covers them.
    a.captured_ns = time.time_ns()
    if not pin_segments(fs, wal_dir, a.log, first=False):
        return False

    def need_header(key: BucketKey) -> str:
        """The copy's `bucket.hdr` of `key`; a bucket created during the copy gets it now
        (the replay needs its schema)."""
        rel = f"{key}/{TEMPLATE_NAME}"
        if rel not in a.files:
            _makedirs(fs, os.path.join(staging, str(key)), staging)
            copy_file(fs, os.path.join(root, rel), os.path.join(staging, rel))
            a.files[rel] = _Source(rel, fs.stat(os.path.join(root, rel)))
        return os.path.join(staging, rel)

    seals: dict[tuple[str, int], tuple[int, int, int]] = {}
    touched = copy_log(fs, staging, a.log, need_header, seals)
    if touched is None:
        return False
    for rel, src in list(a.files.items()):
        if os.path.basename(rel) in _ASIDE_OF_LOG:
            continue
        try:
            st = fs.stat(os.path.join(root, rel))
        except FileNotFoundError:
            if swapped(rel, seals):
                continue  # a seal removed it (op 6 in the copied log)
            return False
        if (st.st_dev, st.st_ino) != (src.st.st_dev, src.st.st_ino):
            if swapped(rel, seals):
                continue
            return False  # replaced outside the log (compaction) or destroyed and re-created
        if src.linked and (st.st_size, st.st_mtime_ns) != (src.st.st_size, src.st.st_mtime_ns):
            _unlink_copy(fs, root, staging, rel, a)
    taken = copy_sealed(fs, root, staging, seals)
    if taken is None:
        return False
    for rel, st, nbytes in taken:
        a.nbytes += nbytes
        if rel in a.files and a.files[rel].linked:
            a.linked -= 1
        else:
            a.copied += 1
        a.files[rel] = _Source(rel, st)
    for _ in range(2):  # the files of op 7 records made since the listing (a rename: again)
        for rel in [r for k, y in sorted(touched - {EVERY}) for r in ingest_sources(fs, root, k, y)]:
            if rel not in a.files:
                _take(fs, root, dest, staging, rel, manifest, a)
    # The replay writes the files of these years (whatever their kind: `.bin`, and a sealed
    # year's files): never into a file the previous backup shares.
    for rel, shared in list(a.files.items()):
        name = os.path.basename(rel)
        year = DATA_FILE.match(name)
        if shared.linked and year is not None and not swapped(rel, seals) and (
                EVERY in touched or (os.path.dirname(rel), int(year.group(1))) in touched):
            _unlink_copy(fs, root, staging, rel, a)
    _fsync_tree(fs, staging)
    return True


def _source_files(fs: BackupFileSystem, root: str) -> list[str]:
    """The root's files a copy needs, relative to it: `mkts.root`, a destroy intent, and
    per bucket its header, file record and data files (never LOCK, the log, leftovers)."""
    out = [n for n in (ROOT_META, DESTROY_INTENT) if fs.exists(os.path.join(root, n))]
    for sym in fs.listdir(root):
        sp = os.path.join(root, sym)
        if sym == "wal" or sym.startswith(".") or not fs.isdir(sp):
            continue
        for tf in fs.listdir(sp):
            tp = os.path.join(sp, tf)
            if tf.startswith(".") or not fs.isdir(tp):
                continue
            for attr in fs.listdir(tp):
                ap = os.path.join(tp, attr)
                if attr.startswith(".") or not fs.isdir(ap) \
                        or not fs.exists(os.path.join(ap, TEMPLATE_NAME)):
                    continue
                for n in fs.listdir(ap):
                    if n in (TEMPLATE_NAME, RECORD_NAME) or DATA_FILE.match(n):
                        out.append(f"{sym}/{tf}/{attr}/{n}")
    return out


def _take(fs: BackupFileSystem, root: str, dest: str, staging: str, rel: str,
          manifest: dict[str, dict[str, int]], a: _Attempt) -> None:
    src_path, dst_path = os.path.join(root, rel), os.path.join(staging, rel)
    _makedirs(fs, os.path.dirname(dst_path), staging)
    try:
        st = fs.stat(src_path)
    except FileNotFoundError:
        return  # gone since the listing: a destroy (the re-check starts again) or a .tmp
    old = manifest.get(rel)
    prev = os.path.join(dest, rel)
    same = old is not None and old == {"dev": st.st_dev, "ino": st.st_ino,
                                       "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if same and fs.exists(prev):
        fs.link(prev, dst_path)
        a.files[rel] = _Source(rel, st, linked=True)
        a.linked += 1
        return
    a.nbytes += copy_file(fs, src_path, dst_path)
    a.files[rel] = _Source(rel, st)
    a.copied += 1


def _unlink_copy(fs: BackupFileSystem, root: str, staging: str, rel: str, a: _Attempt) -> None:
    """Replace a linked file by a copy of its own (from the source: fuzzy, the replay
    finishes it)."""
    dst = os.path.join(staging, rel)
    fs.unlink(dst)
    src = a.files[rel]
    src.linked = False
    src.st = fs.stat(os.path.join(root, rel))  # before the copy: what the copy reflects
    a.nbytes += copy_file(fs, os.path.join(root, rel), dst)
    a.linked -= 1
    a.copied += 1


def _makedirs(fs: BackupFileSystem, path: str, stop: str) -> None:
    missing = []
    while path != stop and not fs.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for d in reversed(missing):
        fs.mkdir(d)


def _fsync_tree(fs: BackupFileSystem, path: str) -> None:
    """fsync every file and directory under `path` (after all were written, so the kernel
    has been writing them back meanwhile)."""
    for n in fs.listdir(path):
        p = os.path.join(path, n)
        if fs.isdir(p):
            _fsync_tree(fs, p)
        else:
            f = fs.open(p)
            try:
                f.sync()
            finally:
                f.close()
    fs.fsync_dir(path)


def _finish(fs: BackupFileSystem, staging: str) -> int:
    """Open the copy once (on the same file system): replay the copied records, checkpoint,
    close. Returns the transaction it now holds the database as of."""
    from mkts.engine.database import open_database

    db = open_database(staging, create=False, checkpoint_interval_s=3600, fs=fs)
    try:
        txn = int(db.stats()["last_txn"])
    finally:
        db.close()
    return txn
