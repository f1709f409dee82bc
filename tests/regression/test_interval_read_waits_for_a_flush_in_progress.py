"""sync="interval": a read must see every write that returned before it, also while the
background thread has taken those writes off the queue and is still fsyncing the log before
applying them (make_visible used to return at once, and the read missed the rows)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from mkts import engine
from mkts.wal.fs import OsFileSystem

T0 = 1_704_153_600  # 2024-01-02 00:00 UTC
KEY = "AAPL/1Min/OHLCV"


class _SlowLogSync(OsFileSystem):
    """Log fsyncs announce themselves, then wait until released."""

    def __init__(self) -> None:
        self.in_sync = threading.Event()
        self.release = threading.Event()
        self.armed = False

    def open(self, path: str, *, write: bool = False, create: bool = False) -> Any:
        f = super().open(path, write=write, create=create)
        if not path.endswith(".wal"):
            return f
        fs = self

        class _File:
            def __getattr__(self, name: str) -> Any:
                return getattr(f, name)

            def sync(self) -> None:
                if fs.armed:
                    fs.in_sync.set()
                    fs.release.wait(10)
                f.sync()

        return _File()


def test_read_during_a_background_flush_sees_the_write(tmp_path: Any) -> None:
    fs = _SlowLogSync()
    with engine.open(str(tmp_path / "db"), fs=fs, sync="interval", sync_interval_ms=5) as db:
        db.write(KEY, {"Epoch": np.array([T0]), "Close": np.array([1.0])})
        db.read(KEY)  # applied
        fs.armed = True
        db.write(KEY, {"Epoch": np.array([T0 + 60]), "Close": np.array([2.0])})
        assert fs.in_sync.wait(10)  # the background thread holds the write, mid-fsync
        got: list[list[int]] = []
        reader = threading.Thread(target=lambda: got.append(db.read(KEY)["Epoch"].tolist()))
        reader.start()
        reader.join(0.3)  # time for the reader to finish or to block on the flush
        fs.armed = False
        fs.release.set()
        reader.join(10)
        assert got == [[T0, T0 + 60]]
