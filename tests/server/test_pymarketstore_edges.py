"""Compatibility edges found with the real pymarketstore client against a real `mkts start`:
long symbols, a `Nanoseconds` column in a fixed bucket, and Create with no columns
(docs/server.md "Verified against the client")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pymkts = pytest.importorskip("pymarketstore")

T0 = 1_704_187_800  # 2024-01-02 09:30:00 UTC


def query(client: Any, symbol: str, tf: str, attr: str, **kw: Any) -> Any:
    return client.query(pymkts.Params(symbol, tf, attr, **kw)).first()


def closes(n: int) -> np.ndarray:
    a = np.zeros(n, dtype=[("Epoch", "i8"), ("Close", "f4")])
    a["Epoch"] = T0 + 60 * np.arange(n)
    a["Close"] = np.arange(n, dtype=np.float32)
    return a


@pytest.mark.parametrize("length", [70, 255])
def test_symbols_longer_than_64_characters_round_trip(client: Any, length: int) -> None:
    symbol = ("LONG" * 64)[:length]
    assert client.write(closes(3), f"{symbol}/1Min/OHLCV") == {"responses": None}
    ds = query(client, symbol, "1Min", "OHLCV")
    assert ds.key == f"{symbol}/1Min/OHLCV"
    assert ds.array["Close"].tolist() == [0.0, 1.0, 2.0]
    assert f"{symbol}/1Min/OHLCV" in client.list_symbols(fmt=pymkts.client.ListSymbolsFormat.TBK)


def test_a_symbol_past_the_file_system_limit_names_it(client: Any) -> None:
    res = client.write(closes(1), "S" * 256 + "/1Min/OHLCV")
    assert "at most 255, as a directory name is at most 255 bytes" in res["responses"][0]["error"]


def test_nanoseconds_is_an_ordinary_column_of_a_fixed_bucket(client: Any) -> None:
    data = np.zeros(3, dtype=[("Epoch", "i8"), ("Ask", "f4"), ("Nanoseconds", "i4")])
    data["Epoch"] = T0 + 60 * np.arange(3)
    data["Ask"] = [1.5, 2.5, 3.5]
    data["Nanoseconds"] = [10, 20, 30]
    assert client.write(data, "NANO/1Min/QUOTE", isvariablelength=False) == {"responses": None}
    ds = query(client, "NANO", "1Min", "QUOTE")
    assert ds.array.dtype.names == ("Epoch", "Ask", "Nanoseconds")
    assert np.array_equal(ds.array, data)
    # the values are data, not tick times: the rows stay on their minutes
    assert [str(t) for t in ds.df().index] == [
        "2024-01-02 09:30:00+00:00", "2024-01-02 09:31:00+00:00", "2024-01-02 09:32:00+00:00"]
    # a later write follows the bucket's columns
    data["Ask"] += 10
    assert client.write(data[:1], "NANO/1Min/QUOTE") == {"responses": None}
    assert query(client, "NANO", "1Min", "QUOTE").array["Ask"].tolist() == [11.5, 2.5, 3.5]


def test_create_with_no_columns_makes_an_epoch_only_bucket(client: Any) -> None:
    assert client.create("BARE/1Min/OHLCV", [])["responses"] == [
        {"error": "", "version": "mkts-0.1.0"}]
    assert "BARE/1Min/OHLCV" in client.list_symbols(fmt=pymkts.client.ListSymbolsFormat.TBK)
    ds = query(client, "BARE", "1Min", "OHLCV")
    assert ds.array.dtype.names == ("Epoch",) and len(ds.array) == 0
    # a later write of Epoch alone is stored; a write with columns is refused, saying why
    only = np.array([(T0,), (T0 + 60,)], dtype=[("Epoch", "i8")])
    assert client.write(only, "BARE/1Min/OHLCV") == {"responses": None}
    assert query(client, "BARE", "1Min", "OHLCV").array["Epoch"].tolist() == [T0, T0 + 60]
    res = client.write(closes(1), "BARE/1Min/OHLCV")
    assert "the bucket has no columns besides Epoch (it was created with none)" in \
        res["responses"][0]["error"]
    # destroying it and writing again creates it from the data's columns
    client.destroy("BARE/1Min/OHLCV")
    assert client.write(closes(2), "BARE/1Min/OHLCV") == {"responses": None}
    assert query(client, "BARE", "1Min", "OHLCV").array.dtype.names == ("Epoch", "Close")
