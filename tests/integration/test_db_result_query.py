"""`engine.Result` (a small read-only table, not a Mapping) and multi-bucket `query()`."""

from __future__ import annotations

import collections.abc
import re
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
T10 = 1_704_189_600  # 2024-01-02 10:00:00 UTC


def ohlcv(epochs: list[int], base: float) -> dict[str, Any]:
    n = len(epochs)
    v = base + np.arange(n, dtype="f8")
    return {"Epoch": np.array(epochs, dtype=np.int64), "Open": v.astype("f4"),
            "Close": v + 0.5, "Volume": np.arange(n, dtype="i8") + int(base)}


# -- Result --------------------------------------------------------------------------------
def test_result_behaves_like_a_small_read_only_table(db: engine.Database) -> None:
    db.write(KEY, ohlcv([T10, T10 + 60, T10 + 120], 100))
    r = db.read(KEY)
    assert isinstance(r, engine.Result)
    assert r.key == KEY
    assert len(r) == 3
    assert r.columns == ["Epoch", "Open", "Close", "Volume"]
    assert list(r.keys()) == ["Epoch", "Open", "Close", "Volume"]
    close = r["Close"]
    assert isinstance(close, np.ndarray)
    assert close.dtype == np.dtype("f8")
    assert close.tolist() == [100.5, 101.5, 102.5]
    assert r["Open"].dtype == np.dtype("f4")
    assert r["Epoch"].tolist() == [T10, T10 + 60, T10 + 120]
    assert r["Volume"].tolist() == [100, 101, 102]
    assert "Close" in r and "Nope" not in r
    with pytest.raises(ValueError):
        close[0] = 0.0  # read-only
    with pytest.raises(engine.MktsError):
        r["Nope"]


def test_result_is_not_a_mapping(db: engine.Database) -> None:
    db.write(KEY, ohlcv([T10], 1))
    r = db.read(KEY)
    assert not isinstance(r, collections.abc.Mapping)
    assert not isinstance(r, dict)


def test_result_does_not_change_after_later_writes(db: engine.Database) -> None:
    db.write(KEY, ohlcv([T10, T10 + 60], 1))
    r = db.read(KEY)
    db.write(KEY, ohlcv([T10, T10 + 60], 50))
    assert r["Close"].tolist() == [1.5, 2.5]
    assert db.read(KEY)["Close"].tolist() == [50.5, 51.5]


def test_empty_result_keeps_its_columns(db: engine.Database) -> None:
    db.write(KEY, ohlcv([T10], 1))
    r = db.read(KEY, T10 + 60, None)
    assert len(r) == 0
    assert r.columns == ["Epoch", "Open", "Close", "Volume"]
    assert r["Close"].tolist() == []
    df = r.to_pandas()
    assert len(df) == 0 and list(df.columns) == ["Open", "Close", "Volume"]


def test_to_pandas_utc(db: engine.Database) -> None:
    db.write(KEY, ohlcv([T10, T10 + 60], 1))
    df = db.read(KEY).to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["Open", "Close", "Volume"]
    assert df.index.name == "Epoch"
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC"
    assert list(df.index) == [pd.Timestamp("2024-01-02 10:00", tz="UTC"),
                              pd.Timestamp("2024-01-02 10:01", tz="UTC")]
    assert df["Close"].tolist() == [1.5, 2.5]
    assert df["Open"].dtype == np.dtype("f4")
    assert df["Volume"].tolist() == [1, 2]


def test_to_pandas_is_in_the_database_time_zone(root: str) -> None:
    with engine.open(root, timezone="America/New_York") as db:
        db.write("AAPL/1D/OHLCV", ohlcv([T10], 1))
        df = db.read("AAPL/1D/OHLCV").to_pandas()
    assert str(df.index.tz) == "America/New_York"
    assert df.index.name == "Epoch"
    assert list(df.index) == [pd.Timestamp("2024-01-02 00:00", tz="America/New_York")]


def test_to_pandas_with_a_projection(db: engine.Database) -> None:
    db.write(KEY, ohlcv([T10], 1))
    df = db.read(KEY, columns=["Volume", "Open"]).to_pandas()
    assert list(df.columns) == ["Volume", "Open"]


# -- query ---------------------------------------------------------------------------------
@pytest.fixture
def three(db: engine.Database) -> engine.Database:
    db.write("AAPL/1Min/OHLCV", ohlcv([T10, T10 + 60, T10 + 120], 100))
    db.write("MSFT/1Min/OHLCV", ohlcv([T10 + 60, T10 + 180], 200))
    db.write("IBM/1Min/OHLCV", ohlcv([T10], 300))
    db.write("AAPL/1D/OHLCV", ohlcv([T10], 400))
    db.write("AAPL/1Min/TRADE", ohlcv([T10], 500))
    return db


def test_query_returns_buckets_in_request_order(three: engine.Database) -> None:
    rs = three.query("MSFT,AAPL/1Min/OHLCV")
    assert list(rs) == ["MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV"]
    assert rs["MSFT/1Min/OHLCV"]["Epoch"].tolist() == [T10 + 60, T10 + 180]
    assert rs["MSFT/1Min/OHLCV"]["Close"].tolist() == [200.5, 201.5]
    assert rs["MSFT/1Min/OHLCV"].key == "MSFT/1Min/OHLCV"
    assert rs["AAPL/1Min/OHLCV"]["Close"].tolist() == [100.5, 101.5, 102.5]
    assert list(three.query("AAPL,MSFT/1Min/OHLCV")) == ["AAPL/1Min/OHLCV", "MSFT/1Min/OHLCV"]


def test_query_star_means_every_symbol_sorted(three: engine.Database) -> None:
    assert list(three.query("*/1Min/OHLCV")) == ["AAPL/1Min/OHLCV", "IBM/1Min/OHLCV",
                                                 "MSFT/1Min/OHLCV"]
    assert list(three.query("AAPL/*/*")) == ["AAPL/1D/OHLCV", "AAPL/1Min/OHLCV",
                                             "AAPL/1Min/TRADE"]
    assert len(three.query("*/*/*")) == 5
    assert list(three.query("*/1D/*")) == ["AAPL/1D/OHLCV"]


def test_query_applies_range_limit_and_columns_to_each_bucket(three: engine.Database) -> None:
    rs = three.query("AAPL,MSFT,IBM/1Min/OHLCV", T10 + 60, T10 + 180, limit=1,
                     columns=["Volume"])
    assert list(rs) == ["AAPL/1Min/OHLCV", "MSFT/1Min/OHLCV", "IBM/1Min/OHLCV"]
    assert rs["AAPL/1Min/OHLCV"]["Epoch"].tolist() == [T10 + 120]
    assert rs["MSFT/1Min/OHLCV"]["Epoch"].tolist() == [T10 + 180]
    assert len(rs["IBM/1Min/OHLCV"]) == 0
    for r in rs.values():
        assert r.columns == ["Epoch", "Volume"]
    first = three.query("AAPL,MSFT/1Min/OHLCV", limit=1, limit_from_start=True)
    assert [r["Epoch"].tolist() for r in first.values()] == [[T10], [T10 + 60]]


def test_query_with_a_glob_reads_the_buckets_subscribe_would_deliver(
        three: engine.Database) -> None:
    # one pattern language: what query() reads is what subscribe() delivers
    three.write("AAX/1Min/OHLCV", ohlcv([T10], 600))
    rs = three.query("AA*/1Min/OHLCV")
    assert list(rs) == ["AAPL/1Min/OHLCV", "AAX/1Min/OHLCV"]
    assert rs["AAX/1Min/OHLCV"]["Close"].tolist() == [600.5]
    got: list[str] = []
    done = threading.Event()

    def on_rows(key: str, cols: Any) -> None:
        got.append(key)
        if len(got) == 2:
            done.set()

    with three.subscribe("AA*/1Min/OHLCV", on_rows):
        for key in ("IBM/1Min/OHLCV", "AAPL/1D/OHLCV", "AAX/1Min/OHLCV", "AAPL/1Min/OHLCV"):
            three.write(key, ohlcv([T10 + 600], 700))
        three.flush()
        assert done.wait(5)
    assert sorted(got) == list(rs)
    assert list(three.query("MSFT,A*/1Min/OHLCV,TRADE")) == [
        "MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV", "AAPL/1Min/TRADE", "AAX/1Min/OHLCV"]


@pytest.mark.parametrize(("pattern", "part"), [
    ("AAPL,,MSFT/1Min/OHLCV", "symbol part"),
    ("AA?/1Min/OHLCV", "symbol part 'AA?'"),
    ("AAPL/7Min/OHLCV", "timeframe part"),
    ("AAPL/1Min/OH LC", "attribute group part"),
    ("AAPL/1Min", "three parts"),
])
def test_query_with_a_bad_pattern_is_rejected_naming_the_part(three: engine.Database,
                                                               pattern: str, part: str) -> None:
    with pytest.raises(engine.InvalidKeyError, match=re.escape(part)):
        three.query(pattern)
