"""The state a `Database` handle holds, and the checks each of its calls makes first (open,
writable, own writes visible, triggered work settled). The handle's API is built on it:
engine/dbread.py reads, engine/dbwrite.py writes, engine/database.py opens and closes.
"""

from __future__ import annotations

import logging
import threading

from mkts.engine.catalog import Catalog
from mkts.engine.commit import CommitPipeline
from mkts.engine.dispatch import Dispatcher
from mkts.engine.errors import ClosedError, ReadOnlyError
from mkts.engine.keys import BucketKey
from mkts.engine.rwlock import RWLock
from mkts.engine.timeutil import Calendar
from mkts.engine.writepath import WritePath
from mkts.wal.fs import FileSystem

__all__ = ["HandleBase", "READ_SETTLE_S"]

log = logging.getLogger("mkts.engine")

# How long a read of a bucket a trigger maintains waits, at most, for the trigger's work on
# the writes acknowledged before it (a stuck trigger must not hang readers for ever).
READ_SETTLE_S = 60


class HandleBase:
    """What `Database.__init__` sets up (engine/database.py) and the checks shared by its
    read and write calls."""

    root: str
    readonly: bool
    timezone: str
    calendar: Calendar
    catalog: Catalog
    _fs: FileSystem
    _closed: bool
    _pipeline: CommitPipeline | None
    _dispatcher: Dispatcher
    _writes: WritePath
    _rw: RWLock
    _meta_lock: threading.RLock

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.root} is closed")

    def _check_writable(self) -> CommitPipeline:
        self._check_open()
        if self.readonly or self._pipeline is None:
            raise ReadOnlyError(f"database {self.root} was opened readonly; writes are refused")
        self._pipeline.check()
        return self._pipeline

    def _visible(self) -> None:
        if self._pipeline is not None:
            self._pipeline.make_visible()

    def _settle(self, key: BucketKey) -> None:
        """A read of a bucket a trigger maintains sees the trigger's work for every write
        acknowledged before it (README.md "Python API"; engine.dispatch `settle`)."""
        if not self._dispatcher.settle(key, READ_SETTLE_S):
            log.warning("reading %s: its trigger is still busy with earlier writes after %d s; "
                        "reading what is there", key, READ_SETTLE_S)

