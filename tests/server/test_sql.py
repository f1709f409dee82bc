"""SQL over `/rpc` with the real pymarketstore client (`client.sql`, a Query with
is_sqlstatement) against a real `mkts start`: MarketStore's subset runs through db.sql's path,
everything else is refused naming the construct (docs/server.md "SQL")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from server.transports import TRANSPORTS, replies

pymkts = pytest.importorskip("pymarketstore")
pytest.importorskip("duckdb")


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)

T0 = 1_704_187_800  # 2024-01-02 09:30:00 UTC
BAR = [("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"), ("Close", "f4"),
       ("Volume", "i8")]
TICK = [("Epoch", "i8"), ("Price", "f8"), ("Nanoseconds", "i4")]


@pytest.fixture(scope="module")
def loaded(client: Any) -> Any:
    bars = np.zeros(10, dtype=BAR)
    bars["Epoch"] = T0 + 60 * np.arange(10)
    for c in ("Open", "High", "Low", "Close"):
        bars[c] = np.arange(10, dtype=np.float32)
    bars["Volume"] = 100 + np.arange(10)
    assert replies(client.write(bars, "SQLB/1Min/OHLCV")) == []
    ticks = np.zeros(4, dtype=TICK)
    ticks["Epoch"] = [T0, T0, T0, T0 + 1]
    ticks["Nanoseconds"] = [0, 5, 500_000_000, 0]
    ticks["Price"] = [1.0, 2.0, 3.0, 4.0]
    assert replies(client.write(ticks, "SQLT/1Sec/TICK", isvariablelength=True)) == []
    return client


def sql(client: Any, text: str) -> Any:
    return client.sql(text).first()


def test_select_star_returns_every_column_in_stored_order(loaded: Any) -> None:
    ds = sql(loaded, "SELECT * FROM `SQLB/1Min/OHLCV`;")
    assert ds.array.dtype == np.dtype(BAR)
    assert ds.array["Epoch"].tolist() == (T0 + 60 * np.arange(10)).tolist()
    assert ds.key == "SELECT * FROM `SQLB/1Min/OHLCV`;"  # MarketStore keys SQL by its text


def test_columns_where_on_epoch_and_limit_keep_the_first_rows(loaded: Any) -> None:
    ds = sql(loaded, f"SELECT Epoch, Close FROM `SQLB/1Min/OHLCV` WHERE Epoch >= {T0 + 120} "
                     f"AND Epoch < {T0 + 480} LIMIT 3")
    assert ds.array.dtype.names == ("Epoch", "Close")
    assert ds.array["Epoch"].tolist() == [T0 + 120, T0 + 180, T0 + 240]
    assert ds.array["Close"].tolist() == [2.0, 3.0, 4.0]


def test_time_text_and_nanosecond_integers_bound_epoch(loaded: Any) -> None:
    # MarketStore's dashed time form; an integer above 32503680000 is nanoseconds
    ds = sql(loaded, "SELECT Close FROM `SQLB/1Min/OHLCV` WHERE Epoch > '2024-01-02-09:35' "
                     f"AND Epoch <= {(T0 + 420) * 10**9}")
    assert ds.array["Close"].tolist() == [6.0, 7.0]
    # BETWEEN is inclusive at both ends (MarketStore's is exclusive: a departure)
    ds = sql(loaded, f"SELECT Close FROM `SQLB/1Min/OHLCV` WHERE Epoch BETWEEN {T0} AND {T0 + 60}")
    assert ds.array["Close"].tolist() == [0.0, 1.0]


def test_tick_bounds_compare_to_the_nanosecond(loaded: Any) -> None:
    ds = sql(loaded, f"SELECT * FROM `SQLT/1Sec/TICK` WHERE Epoch > {T0 * 10**9 + 5}")
    assert ds.array.dtype.names == ("Epoch", "Price", "Nanoseconds")
    assert ds.array["Price"].tolist() == [3.0, 4.0]
    assert ds.array["Nanoseconds"].tolist() == [500_000_000, 0]


def test_or_not_and_other_columns_are_evaluated_exactly(loaded: Any) -> None:
    ds = sql(loaded, "SELECT Close FROM `SQLB/1Min/OHLCV` WHERE Close < 2 OR NOT (Volume < 108)")
    assert ds.array["Close"].tolist() == [0.0, 1.0, 8.0, 9.0]


def test_an_empty_range_gives_an_empty_dataset(loaded: Any) -> None:
    ds = sql(loaded, "SELECT * FROM `SQLB/1Min/OHLCV` WHERE Epoch < 0")
    assert len(ds.array) == 0
    assert ds.array.dtype == np.dtype(BAR)


@pytest.mark.parametrize(("text", "construct"), [
    ("SELECT * FROM `SQLB/1Min/OHLCV` ORDER BY Epoch", "ORDER BY"),
    ("SELECT count(*) FROM `SQLB/1Min/OHLCV`", "count(*)"),
    ("SELECT Close + 1 FROM `SQLB/1Min/OHLCV`", "operator +"),
    ("SELECT * FROM `SQLB/1Min/OHLCV` WHERE Close IN (1, 2)", "IN in WHERE"),
    ("SELECT * FROM `SQLB/1Min/OHLCV` a", "a table alias"),
    ("SELECT * FROM `SQLB/1Min/OHLCV`, `SQLT/1Sec/TICK`", "a JOIN or a second table"),
    ("SELECT Close FROM `SQLB/1Min/OHLCV` GROUP BY Close", "GROUP BY"),
    ("SELECT * FROM `SQLB/1Min/OHLCV` UNION SELECT * FROM `SQLB/1Min/OHLCV`", "UNION"),
    ("INSERT INTO `SQLB/1Min/OHLCV` SELECT * FROM `SQLB/1Min/OHLCV`", "only SELECT"),
    ("SELECT * FROM `SQLB/1Min/OHLCV` LIMIT 2 OFFSET 1", "OFFSET"),
])
def test_what_mkts_does_not_serve_is_refused_by_name(loaded: Any, text: str,
                                                     construct: str) -> None:
    with pytest.raises(Exception, match=construct.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+").replace("*", r"\*")):
        loaded.sql(text)


def test_unknown_buckets_columns_and_bad_times_are_errors(loaded: Any) -> None:
    with pytest.raises(Exception, match="no files returned from query parse"):
        loaded.sql("SELECT * FROM `NOPE/1Min/OHLCV`")
    with pytest.raises(Exception, match="Nope"):
        loaded.sql("SELECT Nope FROM `SQLB/1Min/OHLCV`")
    with pytest.raises(Exception, match="unable to convert string to date: 'soon'"):
        loaded.sql("SELECT * FROM `SQLB/1Min/OHLCV` WHERE Epoch > 'soon'")
    with pytest.raises(Exception, match="syntax error"):
        loaded.sql("SELEC * FROM `SQLB/1Min/OHLCV`")
