"""What `db.checkpoint()` promises and `db.wait_for_triggers()` does not: once checkpoint()
returns, every write made before it, the triggers' own writes included, survives a power
failure in every sync mode (docs/plugins.md "Triggers")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from crash.crashrun import fresh_fs, open_db
from harness.crashmodes import CrashMode

from mkts import engine

BASE, COPY = "A/1Min/OHLCV", "A/1Min/COPY"
T0 = 1_704_204_000  # 2024-01-02 14:00 UTC


class Copier:
    """Writes every base row it is given into a second bucket."""

    def start(self, db: Any) -> None:
        self.db = db

    def fire(self, key_path: str, records: Any) -> None:
        c = records.columns()
        self.db.write(COPY, {"Epoch": c["Epoch"], "V": c["Close"]})


def _rows(n: int) -> dict[str, np.ndarray]:
    return {"Epoch": T0 + 60 * np.arange(n, dtype=np.int64), "Close": np.arange(n, dtype="f8")}


def _count(db: Any, key: str) -> int:
    try:
        return len(db.read(key))
    except engine.BucketNotFoundError:
        return 0


@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_checkpoint_makes_trigger_writes_survive_power_loss(sync: str) -> None:
    fs = fresh_fs()
    with open_db(fs, sync, triggers=[("*/1Min/OHLCV", Copier())]) as db:
        db.write(BASE, _rows(4))
        db.checkpoint()
        after = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)  # power fails right after it
    with open_db(after, sync) as again:
        assert (_count(again, BASE), _count(again, COPY)) == (4, 4)


def test_wait_for_triggers_is_not_durability() -> None:
    """sync="off": the triggers' writes are readable when wait_for_triggers() returns, and a
    power failure right then loses them (and the write that caused them)."""
    fs = fresh_fs()
    with open_db(fs, "off", triggers=[("*/1Min/OHLCV", Copier())]) as db:
        db.write(BASE, _rows(4))
        assert db.wait_for_triggers(timeout=10)
        assert _count(db, COPY) == 4
        after = fs.peek_crash(CrashMode.DROP_ALL_UNSYNCED)
    with open_db(after, "off") as again:
        assert (_count(again, BASE), _count(again, COPY)) == (0, 0)
