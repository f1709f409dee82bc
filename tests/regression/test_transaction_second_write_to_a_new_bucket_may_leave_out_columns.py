"""Regression: with allow_missing_columns=True, a transaction that created a bucket with a
write and then wrote it again leaving out a column failed with "transaction writes bucket
... twice with other columns": the second write was planned as another creation instead of
a write into the bucket the first step makes. Found by
tests/property/test_model_corrections.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkts import engine

T0 = 1_704_153_600  # 2024-01-02 00:00 UTC


def test_second_write_to_a_bucket_the_transaction_creates_takes_fills(tmp_path: Path) -> None:
    with engine.open(tmp_path / "db", allow_missing_columns=True) as db:
        with db.transaction() as tx:
            tx.write("A/1Min/X", {"Epoch": [T0], "P": [1.5], "V": [3]})
            tx.write("A/1Min/X", {"Epoch": [T0 + 60], "P": [2.5]})  # V left out: 0
        r = db.read("A/1Min/X")
        assert r["P"].tolist() == [1.5, 2.5]
        assert r["V"].tolist() == [3, 0]


def test_second_tick_write_follows_the_kind_the_first_step_created(tmp_path: Path) -> None:
    with engine.open(tmp_path / "db") as db:
        with db.transaction() as tx:
            tx.write("T/1Sec/TRADE", {"Epoch": [T0], "Nanoseconds": [5], "Price": [1.0]},
                     variable=True)
            tx.write("T/1Sec/TRADE", {"Epoch": [T0], "Nanoseconds": [1], "Price": [2.0]})
        r = db.read("T/1Sec/TRADE")
        assert r["Nanoseconds"].tolist() == [1, 5]
        assert r["Price"].tolist() == [2.0, 1.0]


def test_second_write_without_allow_missing_columns_still_needs_every_column(
        tmp_path: Path) -> None:
    with engine.open(tmp_path / "db") as db:
        with pytest.raises(engine.SchemaError, match="V"), db.transaction() as tx:
            tx.write("A/1Min/X", {"Epoch": [T0], "P": [1.5], "V": [3]})
            tx.write("A/1Min/X", {"Epoch": [T0 + 60], "P": [2.5]})
        assert "A/1Min/X" not in db.list_keys()
