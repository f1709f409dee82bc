"""Embedded side of two MarketStore edges: a `Nanoseconds` column in a fixed bucket is
ordinary data (reads, times, the CLI), and a bucket created with no columns holds `Epoch`
alone, across a reopen too (docs/design.md §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mkts

T0 = 1_704_067_200
QUOTE = [("Epoch", "i8"), ("Ask", "f4"), ("Nanoseconds", "i4")]


def quotes() -> np.ndarray:
    a = np.zeros(3, dtype=QUOTE)
    a["Epoch"] = T0 + 60 * np.arange(3)
    a["Ask"] = [1.5, 2.5, 3.5]
    a["Nanoseconds"] = [7, 8, 9]
    return a


def test_nanoseconds_in_a_fixed_bucket_is_data_not_time(tmp_path: Path, capsys: Any) -> None:
    root = tmp_path / "db"
    with mkts.open(root) as db:
        with pytest.raises(mkts.SchemaError, match="variable=False keeps Nanoseconds"):
            db.write("Q/1Min/QUOTE", quotes())  # unset: a tick time by mistake? refused
        db.write("Q/1Min/QUOTE", quotes(), variable=False)
        assert db.info("Q/1Min/QUOTE")["kind"] == "fixed"
        r = db.read("Q/1Min/QUOTE")
        assert not r.ticks
        assert np.array_equal(r.array, quotes())
        assert r.timestamps.astype("datetime64[s]").astype(np.int64).tolist() == \
            quotes()["Epoch"].tolist()
        assert r.to_pandas()["Nanoseconds"].tolist() == [7, 8, 9]
        assert db.read("Q/1Min/QUOTE", columns=["Nanoseconds"]).columns == ["Epoch",
                                                                            "Nanoseconds"]
        db.write("Q/1Min/QUOTE", quotes()[:1])  # later writes follow the bucket
    with mkts.open(root) as db:  # the schema survives a reopen
        assert db.info("Q/1Min/QUOTE")["columns"] == {"Epoch": "i8", "Ask": "f4",
                                                      "Nanoseconds": "i4"}
    from mkts.cli import main

    assert main(["query", "--root", str(root), "Q/1Min/QUOTE", "--limit", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Epoch                 Ask  Nanoseconds", "2024-01-01T00:02:00Z  3.5            9"]


def test_a_bucket_created_with_no_columns_holds_epoch_alone(tmp_path: Path) -> None:
    root = tmp_path / "db"
    only = np.array([(T0,), (T0 + 60,)], dtype=[("Epoch", "i8")])
    with mkts.open(root) as db:
        db.create("BARE/1Min/OHLCV", {})
        db.create("BARE/1Min/OHLCV", {})  # the same definition again: a no-op
        assert db.read("BARE/1Min/OHLCV").columns == ["Epoch"]
        db.write("BARE/1Min/OHLCV", only)
        with pytest.raises(mkts.SchemaError, match="destroy it and write again"):
            db.write("BARE/1Min/OHLCV", {"Epoch": [T0], "Close": [1.0]})
        with pytest.raises(mkts.SchemaError, match="tick bucket needs at least one column"):
            db.create("BARE/1Sec/TICK", {}, variable=True)
    with mkts.open(root) as db:
        assert db.read("BARE/1Min/OHLCV")["Epoch"].tolist() == [T0, T0 + 60]
        assert db.info("BARE/1Min/OHLCV")["rows"] == 2


def test_dask_and_parquet_keep_an_ordinary_nanoseconds_column_as_data(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("dask")
    root = tmp_path / "db"
    with mkts.open(root) as db:
        db.write("Q/1Min/QUOTE", quotes(), variable=False)
    frame = mkts.read_dask(root, "Q/1Min/QUOTE").compute(scheduler="sync")
    assert list(frame.columns) == ["Symbol", "Ask", "Nanoseconds"]
    assert frame.index.equals(pd.DatetimeIndex(pd.to_datetime(quotes()["Epoch"], unit="s",
                                                             utc=True), name="Epoch"))
    assert frame["Nanoseconds"].tolist() == [7, 8, 9]
    mkts.export_parquet(root, tmp_path / "out", progress=False)
    (path,) = (tmp_path / "out").rglob("*.parquet")
    table = pq.read_table(path)
    assert table.column("Epoch").to_pylist()[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert table.column("Nanoseconds").to_pylist() == [7, 8, 9]
