"""Rejected input: the right error class (rooted at MktsError, subclassing the fitting
builtin), a message that names the problem, and not one byte changed on disk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mkts import engine

KEY = "AAPL/1Min/OHLCV"
T10 = 1_704_189_600  # 2024-01-02 10:00:00 UTC
Snapshot = Callable[[str], dict[str, bytes | None]]


def good(epochs: list[int] | None = None) -> dict[str, Any]:
    epochs = epochs if epochs is not None else [T10, T10 + 60]
    n = len(epochs)
    return {"Epoch": np.array(epochs, dtype=np.int64), "Close": np.arange(n, dtype="f8"),
            "Volume": np.arange(n, dtype="i4")}


@pytest.fixture
def filled(db: engine.Database) -> engine.Database:
    """KEY exists with columns Close f8, Volume i4 and two rows; a second bucket in 2023."""
    db.write(KEY, good())
    db.write("MSFT/1Min/OHLCV", good([T10 - 86_400 * 10]))
    return db


# Each case: (data for KEY, expected error class, text the message must contain).
BAD_WRITES: list[tuple[str, Any, type[Exception], str]] = [
    ("missing column", {"Epoch": [T10], "Close": [1.0]}, engine.SchemaError, "Volume"),
    ("extra column", {**good(), "Open": [1.0, 2.0]}, engine.SchemaError, "Open"),
    ("renamed column", {"Epoch": [T10], "Close": [1.0], "Vol": [1]}, engine.SchemaError, "Vol"),
    ("no epoch", {"Close": [1.0], "Volume": [1]}, engine.SchemaError, "Epoch"),
    ("float into int", {**good(), "Volume": np.array([1.0, 2.0])}, engine.SchemaError, "Volume"),
    ("int too big for i4", {**good(), "Volume": np.array([1, 2**31], "i8")}, engine.SchemaError,
     "2147483648"),
    ("string into number", {**good(), "Close": np.array(["1", "2"])}, engine.SchemaError,
     "Close"),
    ("bool column", {**good(), "Close": np.array([True, False])}, engine.SchemaError, "Close"),
    ("NaN epoch", {**good(), "Epoch": np.array([float(T10), np.nan])}, engine.InvalidInputError,
     "NaN"),
    ("infinite epoch", {**good(), "Epoch": np.array([float(T10), np.inf])},
     engine.InvalidInputError, "Epoch"),
    ("NaT epoch", {**good(), "Epoch": np.array(["2024-01-02", "NaT"], "M8[s]")},
     engine.InvalidInputError, "NaT"),
    ("year 1899", good([T10, -2_208_988_801]), engine.InvalidInputError, "1900"),
    ("year 2262", good([T10, 9_214_646_400]), engine.InvalidInputError, "2261"),
    ("milliseconds as seconds", good([T10, T10 * 1000]), engine.InvalidInputError, "Epoch"),
    ("datetime64 beyond 2262", {**good(), "Epoch": np.array(["2024-01-02", "2600-01-01"], "M8[s]")},
     engine.InvalidInputError, "Epoch"),
    ("string epoch", {**good(), "Epoch": np.array(["2024-01-02", "2024-01-03"])},
     engine.InvalidInputError, "Epoch"),
    ("unequal lengths", {**good(), "Close": [1.0]}, engine.InvalidInputError, "length"),
    ("2-D column", {**good(), "Close": np.ones((2, 2))}, engine.InvalidInputError, "Close"),
    ("plain array", np.array([1.0, 2.0]), engine.InvalidInputError, "structured"),
    ("list of rows", [(T10, 1.0, 1)], engine.InvalidInputError, "list"),
    ("nanoseconds in a fixed bucket", {**good(), "Nanoseconds": [0, 0]}, engine.SchemaError,
     "Nanoseconds"),
]


@pytest.mark.parametrize("case,data,error,text", BAD_WRITES, ids=[c[0] for c in BAD_WRITES])
def test_rejected_write_raises_and_changes_nothing_on_disk(
        filled: engine.Database, root: str, snapshot: Snapshot, case: str, data: Any,
        error: type[Exception], text: str) -> None:
    before = snapshot(root)
    with pytest.raises(error, match=None) as info:
        filled.write(KEY, data)
    assert text in str(info.value), f"{case}: {info.value}"
    assert isinstance(info.value, engine.MktsError)
    assert isinstance(info.value, ValueError)
    assert snapshot(root) == before
    r = filled.read(KEY)
    assert r["Epoch"].tolist() == [T10, T10 + 60]
    assert r["Close"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    "data",
    [
        {"Epoch": [T10, T10 + 60], "Close": [1.0, np.nan], "Flag": [True, False]},  # bool
        {"Epoch": [T10, float("nan")], "Close": [1.0, 2.0]},
        {"Epoch": [T10, -2_208_988_801], "Close": [1.0, 2.0]},
        {"Close": [1.0]},
        {"Epoch": [T10]},  # no columns besides Epoch
        {"Epoch": [T10], "Obj": np.array([object()], dtype=object)},
        {"Epoch": [T10, T10 + 60], "Close": [1.0, None]},  # not stored as the text "None"
        {"Epoch": [T10], "Text": np.array(["a", 1], dtype=object)},
        {"Epoch": [T10], "Cplx": np.array([1j])},
    ],
)
def test_rejected_first_write_creates_no_bucket(db: engine.Database, root: str,
                                                snapshot: Snapshot, data: Any) -> None:
    before = snapshot(root)
    with pytest.raises(engine.InvalidInputError):
        db.write("NEW/1Min/OHLCV", data)
    assert snapshot(root) == before
    assert db.list_keys() == []
    with pytest.raises(engine.BucketNotFoundError):
        db.read("NEW/1Min/OHLCV")


def test_rejected_write_many_writes_no_bucket_at_all(filled: engine.Database, root: str,
                                                     snapshot: Snapshot) -> None:
    before = snapshot(root)
    with pytest.raises(engine.SchemaError):
        filled.write_many({
            "MSFT/1Min/OHLCV": good([T10 + 600]),  # valid
            "NEW/1Min/OHLCV": good([T10]),  # valid, would create a bucket
            KEY: {"Epoch": [T10], "Close": [1.0]},  # invalid: Volume missing
        })
    assert snapshot(root) == before
    assert filled.list_keys() == [KEY, "MSFT/1Min/OHLCV"]
    assert len(filled.read("MSFT/1Min/OHLCV")) == 1


def test_rejected_dataframe_write_changes_nothing(filled: engine.Database, root: str,
                                                  snapshot: Snapshot) -> None:
    before = snapshot(root)
    df = pd.DataFrame({"Close": [1.0], "Volume": [1.5]},
                      index=pd.DatetimeIndex(["2024-01-02 10:00"]))
    with pytest.raises(engine.SchemaError, match="Volume"):
        filled.write(KEY, df)
    df2 = pd.DataFrame({"Close": [1.0], "Volume": [1]}, index=pd.RangeIndex(1))
    with pytest.raises(engine.SchemaError, match="Epoch"):
        filled.write(KEY, df2)
    assert snapshot(root) == before


@pytest.mark.parametrize("key", ["../1Min/OHLCV", "AAPL/7Min/OHLCV", "AAPL/2D/OHLCV", "wal/1Min/X",
                                 "AAPL//OHLCV", "A\0/1Min/X", "AAPL/1Min/OHLCV/x", "S" * 256 + "/1Min/X"])
def test_bad_keys_are_rejected_before_touching_the_filesystem(
        db: engine.Database, root: str, snapshot: Snapshot, key: str) -> None:
    before = snapshot(root)
    for call in (lambda: db.write(key, good()), lambda: db.create(key, {"Close": "f8"}),
                 lambda: db.read(key), lambda: db.info(key), lambda: db.destroy(key)):
        with pytest.raises(engine.InvalidKeyError) as info:
            call()
        assert isinstance(info.value, ValueError)
    assert snapshot(root) == before


def test_unknown_bucket_is_a_key_error(filled: engine.Database) -> None:
    for call in (lambda: filled.read("NOPE/1Min/OHLCV"), lambda: filled.info("AAPL/5Min/OHLCV"),
                 lambda: filled.destroy("AAPL/1Min/TRADES")):
        with pytest.raises(engine.BucketNotFoundError) as info:
            call()
        assert isinstance(info.value, KeyError)
        assert isinstance(info.value, engine.MktsError)
    with pytest.raises(KeyError, match="NOPE/1Min/OHLCV"):
        filled.read("NOPE/1Min/OHLCV")


def test_query_of_unknown_symbols_returns_no_entry(filled: engine.Database) -> None:
    assert filled.query("NOPE/1Min/OHLCV") == {}
    assert list(filled.query("NOPE,AAPL/1Min/OHLCV")) == [KEY]


def test_error_classes_fit_the_builtins() -> None:
    assert issubclass(engine.InvalidInputError, ValueError)
    assert issubclass(engine.InvalidKeyError, ValueError)
    assert issubclass(engine.SchemaError, ValueError)
    assert issubclass(engine.BucketNotFoundError, KeyError)
    assert issubclass(engine.BucketExistsError, ValueError)
    assert issubclass(engine.ReadOnlyError, PermissionError)
    assert issubclass(engine.LockedError, OSError)
    for name in engine.__all__:
        obj = getattr(engine, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, engine.MktsError), name


def test_closed_handle_refuses_everything(root: str) -> None:
    db = engine.open(root)
    db.write(KEY, good())
    db.close()
    db.close()  # twice is harmless
    for call in (lambda: db.read(KEY), lambda: db.write(KEY, good()), lambda: db.list_keys(),
                 lambda: db.query("*/*/*"), lambda: db.info(KEY)):
        with pytest.raises(engine.ClosedError):
            call()
