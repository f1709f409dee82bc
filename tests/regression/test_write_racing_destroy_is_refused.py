"""A write planned before its bucket is destroyed (another thread's destroy() runs between
planning and commit) must be refused, not logged: a logged record for a missing bucket made
the next open fail, and one for a bucket recreated with other columns wrote records of the
wrong size. The handle keeps working and the database reopens."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine.commit import CommitPipeline

T0 = 1_704_153_600  # 2024-01-02 00:00 UTC
KEY = "AAPL/1Min/OHLCV"
BARS = np.dtype([("Epoch", "<i8"), ("Close", "<f8")])


def _rows(epoch: int, value: float, dtype: np.dtype = BARS) -> np.ndarray:
    out = np.zeros(1, dtype=dtype)
    out["Epoch"] = epoch
    out["Close"] = value
    return out


def _destroy_before_commit(monkeypatch: pytest.MonkeyPatch, db: Any, then: Any = None
                           ) -> None:
    """The next commit first lets destroy() (and `then`) run, as another thread could."""
    real_commit, real_built = CommitPipeline.commit, CommitPipeline.commit_built

    def race() -> None:
        monkeypatch.setattr(CommitPipeline, "commit", real_commit)
        monkeypatch.setattr(CommitPipeline, "commit_built", real_built)
        db.destroy(KEY)
        if then is not None:
            then()

    monkeypatch.setattr(CommitPipeline, "commit",
                        lambda self, build: (race(), real_commit(self, build))[1])
    monkeypatch.setattr(CommitPipeline, "commit_built",
                        lambda self, p, w: (race(), real_built(self, p, w))[1])


@pytest.mark.parametrize("path", ["fast", "general"])
def test_write_to_a_bucket_destroyed_meanwhile_is_refused(
        root: str, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    with engine.open(root) as db:
        db.write(KEY, _rows(T0, 1.0))
        db.write(KEY, _rows(T0 + 60, 2.0))  # the fast path's plan exists
        _destroy_before_commit(monkeypatch, db)
        data = _rows(T0 + 120, 3.0)
        with pytest.raises(engine.BucketNotFoundError, match="destroyed"):
            db.write(KEY, data if path == "fast" else {n: data[n] for n in BARS.names})
        assert KEY not in db.list_keys()
        db.write("MSFT/1Min/OHLCV", _rows(T0, 4.0))  # the handle still accepts writes
    with engine.open(root) as db:  # and the log replays
        assert db.list_keys() == ["MSFT/1Min/OHLCV"]


def test_write_to_a_bucket_recreated_with_other_columns_is_refused(
        root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wide = np.dtype([("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])
    with engine.open(root) as db:
        db.write(KEY, _rows(T0, 1.0))
        db.write(KEY, _rows(T0 + 60, 2.0))
        _destroy_before_commit(monkeypatch, db, lambda: db.write(KEY, _rows(T0, 9.0, wide)))
        with pytest.raises(engine.SchemaError, match="created again"):
            db.write(KEY, _rows(T0 + 120, 3.0))
        assert db.read(KEY)["Close"].tolist() == [9.0]
    with engine.open(root) as db:
        r = db.read(KEY)
        assert r["Close"].tolist() == [9.0] and r["Volume"].tolist() == [0]
