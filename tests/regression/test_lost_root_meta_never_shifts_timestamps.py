"""`mkts.root` records the database time zone, on which every slot position depends. A lost
or edited `mkts.root` used to be recreated (or believed) as UTC while the bucket headers said
America/New_York: data read back 5 h off. Opening such a root is now an error naming both
zones; and a directory that is neither empty nor an mkts root is refused before anything is
written into it."""

from __future__ import annotations

import json
import os

import pytest

from mkts import engine
from mkts.check import check_root

KEY = "AAPL/1Min/OHLCV"
NY = "America/New_York"
T = 1_704_205_800  # 2024-01-02 14:30 UTC


def _make(root: str) -> str:
    with engine.open(root, timezone=NY) as db:
        db.write(KEY, {"Epoch": [T], "Close": [1.0]})
    return os.path.join(root, "mkts.root")


@pytest.mark.parametrize("readonly", [False, True])
def test_missing_root_meta_is_an_error_naming_both_zones(root: str, readonly: bool) -> None:
    meta = _make(root)
    os.unlink(meta)
    with pytest.raises(engine.CorruptFileError, match=f"'{NY}'.*'UTC'") as err:
        engine.open(root, readonly=readonly)
    assert "timezone='America/New_York'" in str(err.value)  # says how to repair it
    assert not os.path.exists(meta)  # nothing recreated with the wrong zone


def test_missing_root_meta_is_recreated_by_an_open_with_the_buckets_zone(root: str) -> None:
    meta = _make(root)
    os.unlink(meta)
    with engine.open(root, timezone=NY) as db:
        assert db.read(KEY)["Epoch"].tolist() == [T]
        db.write(KEY, {"Epoch": [T + 60], "Close": [2.0]})
    with open(meta) as f:
        assert json.load(f)["timezone"] == NY
    with engine.open(root) as db:
        assert db.read(KEY)["Epoch"].tolist() == [T, T + 60]


@pytest.mark.parametrize("readonly", [False, True])
def test_root_meta_edited_to_another_zone_is_an_error_naming_both(root: str,
                                                                  readonly: bool) -> None:
    meta = _make(root)
    with open(meta, "w") as f:
        json.dump({"format": 1, "timezone": "UTC"}, f)
    with pytest.raises(engine.CorruptFileError, match=f"'UTC'.*'{NY}'"):
        engine.open(root, readonly=readonly)
    with pytest.raises(engine.CorruptFileError):
        engine.open(root, timezone="UTC")


def test_check_reports_a_lost_root_meta_and_how_to_repair_it(root: str) -> None:
    os.unlink(_make(root))
    report = check_root(root)
    text = "\n".join(str(f) for f in report.errors)
    assert NY in text and "timezone" in text and "mkts.root" in text


@pytest.mark.parametrize("readonly", [False, True])
def test_a_directory_that_is_not_a_database_is_refused_and_left_alone(tmp_path,
                                                                       readonly: bool) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    (home / "photos").mkdir()
    with pytest.raises(engine.InvalidInputError, match="not an mkts database"):
        engine.open(str(home), readonly=readonly)
    assert sorted(os.listdir(home)) == ["notes.txt", "photos"]  # no LOCK, mkts.root, wal


def test_an_empty_directory_and_a_first_open_cut_short_still_open(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    engine.open(str(empty)).close()
    cut = tmp_path / "cut"  # a crash during the first open: LOCK and wal/, no mkts.root
    cut.mkdir()
    (cut / "LOCK").write_text("")
    (cut / "wal").mkdir()
    with engine.open(str(cut)) as db:
        db.write(KEY, {"Epoch": [T], "Close": [1.0]})
