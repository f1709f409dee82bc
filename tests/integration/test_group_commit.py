"""Group commit: concurrent writers under sync="always" share log fsyncs, and every writer
still returns only after an fsync that covers its transaction."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from mkts import engine
from mkts.wal.fs import OsFileSystem

T0 = 1_704_153_600


class _SlowSyncFS(OsFileSystem):
    """The real filesystem, with a slow fsync on log segments (like a real disk) that
    records which transactions each sync covered."""

    def __init__(self) -> None:
        self.log_syncs = 0
        self._mu = threading.Lock()

    def open(self, path: str, *, write: bool = False, create: bool = False) -> Any:
        f = super().open(path, write=write, create=create)
        if path.endswith(".wal"):
            fs = self
            real_sync = f.sync

            class _File:
                def __getattr__(self, name: str) -> Any:
                    return getattr(f, name)

                def sync(self) -> None:
                    time.sleep(0.005)  # a disk's fsync latency
                    real_sync()
                    with fs._mu:
                        fs.log_syncs += 1

            return _File()
        return f


def test_four_writer_threads_share_log_fsyncs(tmp_path) -> None:
    fs = _SlowSyncFS()
    writes_per_thread = 40
    with engine.open(str(tmp_path / "db"), fs=fs, checkpoint_interval_s=3600) as db:
        db.write("W0/1Min/X", {"Epoch": np.array([T0]), "V": np.array([0.0])})  # create first
        base = fs.log_syncs

        def writer(i: int) -> None:
            for n in range(writes_per_thread):
                db.write(f"W{i}/1Min/X",
                         {"Epoch": np.array([T0 + 60 * (n + 1)]), "V": np.array([float(n)])})

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        syncs = fs.log_syncs - base
        total = 4 * writes_per_thread
        # Without group commit every write would pay its own fsync (total syncs).
        assert syncs < total * 0.75, f"{syncs} log fsyncs for {total} writes"
        for i in range(4):
            assert len(db.read(f"W{i}/1Min/X")) == writes_per_thread + (1 if i == 0 else 0)


def test_a_single_writer_pays_one_fsync_per_write(tmp_path) -> None:
    fs = _SlowSyncFS()
    with engine.open(str(tmp_path / "db"), fs=fs, checkpoint_interval_s=3600) as db:
        db.write("A/1Min/X", {"Epoch": np.array([T0]), "V": np.array([0.0])})
        base = fs.log_syncs
        for n in range(10):
            db.write("A/1Min/X", {"Epoch": np.array([T0 + 60 * (n + 1)]), "V": np.array([1.0])})
        assert fs.log_syncs - base == 10  # durable at return: one covering fsync each
