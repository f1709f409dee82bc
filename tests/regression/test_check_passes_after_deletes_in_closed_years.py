"""Regression: a delete in a closed year (one before the current year) left the file
record's checksum of that year file as it was, so `mkts check` then called the file
damaged; so did a year file that a delete migrated to new columns without deleting from it,
and, after a crash before the next checkpoint, any migrated year (no log record says it was
rewritten). Clearing slots and migrating a year now count as writing it, and a migration
records the new bytes at once. Found when the `mkts check`
step was added to tests/property/test_model_corrections.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harness.sparse import copy_root

from mkts import engine
from mkts.check import check_root

NS = 1_000_000_000
T2024 = 1_704_153_600  # 2024-01-02 00:00 UTC: a closed year
T2023 = T2024 - 30 * 86_400


def errors(root: Path) -> list[str]:
    return [str(e) for e in check_root(str(root)).errors]


def test_delete_of_some_bars_of_a_closed_year_keeps_check_clean(tmp_path: Path) -> None:
    root = tmp_path / "db"
    with engine.open(root) as db:
        db.write("A/1Min/X", {"Epoch": T2024 + 60 * np.arange(10), "V": np.arange(10.0)})
    with engine.open(root) as db:
        assert db.delete("A/1Min/X", T2024, T2024 + 60) == 2
    assert errors(root) == []


def test_delete_of_some_ticks_of_a_closed_year_keeps_check_clean(tmp_path: Path) -> None:
    root = tmp_path / "db"
    t = T2024 * NS + NS * np.arange(10)
    with engine.open(root) as db:
        db.write("T/1Sec/TRADE", {"Epoch": t // NS, "Nanoseconds": np.zeros(10, "i4"),
                                  "Price": np.arange(10.0)}, variable=True)
    with engine.open(root) as db:
        assert db.delete("T/1Sec/TRADE", np.datetime64(int(t[0]), "ns"),
                         np.datetime64(int(t[2]), "ns")) == 3
    assert errors(root) == []


def test_delete_that_migrates_another_closed_year_keeps_check_clean(tmp_path: Path) -> None:
    root = tmp_path / "db"
    epochs = np.r_[T2023 + 60 * np.arange(10), T2024 + 60 * np.arange(10)]
    with engine.open(root) as db:
        db.write("A/1Min/X", {"Epoch": epochs, "V": np.arange(20.0)})
        db.add_column("A/1Min/X", "W", "i8", fill=3)
    with engine.open(root) as db:
        db.delete("A/1Min/X", T2024, T2024 + 60)  # rewrites 2023 in the new columns too
        assert db.read("A/1Min/X", end=T2023 + 600)["W"].tolist() == [3] * 10
    assert errors(root) == []


def test_crash_right_after_a_migration_keeps_check_clean(tmp_path: Path) -> None:
    root, copy = tmp_path / "db", tmp_path / "copy"
    epochs = np.r_[T2023 + 60 * np.arange(10), T2024 + 60 * np.arange(10)]
    with engine.open(root) as db:
        db.write("A/1Min/X", {"Epoch": epochs, "V": np.arange(20.0)})
        db.add_column("A/1Min/X", "W", "i8", fill=3)
    with engine.open(root, sync="always") as db:
        db.delete("A/1Min/X", T2024, T2024 + 60)  # migrates 2023 and 2024
        copy_root(str(root), str(copy))  # as a crash leaves it: no checkpoint since
    with engine.open(copy) as db:
        assert len(db.read("A/1Min/X")) == 18
    assert errors(copy) == []
