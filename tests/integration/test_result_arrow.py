"""`Result.to_arrow()` and `Result.to_polars()`: the read's columns, names, order, values and
types, for fixed and tick buckets and for each bucket of a multi-bucket query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mkts

pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")

T0 = 1_704_187_800
TYPES = ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "U16"]
ARROW = {"f4": "float", "f8": "double", "i1": "int8", "i2": "int16", "i4": "int32",
         "i8": "int64", "u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64",
         "U16": "string"}
POLARS = {"f4": "Float32", "f8": "Float64", "i1": "Int8", "i2": "Int16", "i4": "Int32",
          "i8": "Int64", "u1": "UInt8", "u2": "UInt16", "u4": "UInt32", "u8": "UInt64",
          "U16": "String"}


def every_type(n: int) -> np.ndarray:
    a = np.zeros(n, dtype=[("Epoch", "i8")] + [(f"c_{t}", t) for t in TYPES])
    a["Epoch"] = T0 + 60 * np.arange(n)
    for t in TYPES:
        a[f"c_{t}"] = [f"s{i}" for i in range(n)] if t == "U16" else np.arange(n) % 100
    return a


def test_every_column_type_keeps_its_values_and_type(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        data = every_type(7)
        db.write("ALL/1Min/TYPES", data)
        r = db.read("ALL/1Min/TYPES")
        table = r.to_arrow()
        assert table.column_names == r.columns
        assert str(table.schema.field("Epoch").type) == "int64"
        frame = r.to_polars()
        assert frame.columns == r.columns
        assert str(frame.schema["Epoch"]) == "Int64"
        for t in TYPES:
            name = f"c_{t}"
            assert str(table.schema.field(name).type) == ARROW[t], name
            assert str(frame.schema[name]) == POLARS[t], name
            assert table.column(name).to_pylist() == data[name].tolist()
            assert frame[name].to_list() == data[name].tolist()
        assert table.column("Epoch").to_pylist() == data["Epoch"].tolist()


def test_ticks_keep_nanoseconds_as_int32_last(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        t = np.zeros(3, dtype=[("Epoch", "i8"), ("Price", "f8"), ("Nanoseconds", "i4")])
        t["Epoch"] = [T0, T0, T0 + 1]
        t["Nanoseconds"] = [7, 999_999_999, 0]
        t["Price"] = [1.5, 2.5, 3.5]
        db.write("BTC/1Sec/TICK", t, variable=True)
        frame = db.read("BTC/1Sec/TICK").to_polars()
        assert frame.columns == ["Epoch", "Price", "Nanoseconds"]
        assert str(frame.schema["Nanoseconds"]) == "Int32"
        assert frame["Nanoseconds"].to_list() == [7, 999_999_999, 0]
        assert frame["Epoch"].to_list() == [T0, T0, T0 + 1]


def test_each_bucket_of_a_multi_bucket_query_converts(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        for i, sym in enumerate(("AAA", "BBB", "CCC")):
            a = np.zeros(4 + i, dtype=[("Epoch", "i8"), ("Close", "f4")])
            a["Epoch"] = T0 + 60 * np.arange(4 + i)
            a["Close"] = 10.0 * i + np.arange(4 + i)
            db.write(f"{sym}/1Min/OHLCV", a)
        results = db.query("*/1Min/OHLCV", columns=["Close"], limit=3)
        assert list(results) == ["AAA/1Min/OHLCV", "BBB/1Min/OHLCV", "CCC/1Min/OHLCV"]
        for i, (key, r) in enumerate(results.items()):
            n = 4 + i
            want = (10.0 * i + np.arange(n - 3, n)).tolist()
            assert r.to_arrow().column("Close").to_pylist() == want, key
            assert str(r.to_arrow().schema.field("Close").type) == "float"
            assert r.to_polars()["Close"].to_list() == want, key
        stacked = pl.concat([r.to_polars().with_columns(pl.lit(k).alias("Key"))
                             for k, r in results.items()])
        assert stacked.shape == (9, 3)


def test_an_empty_result_keeps_its_columns_and_types(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        db.write("E/1Min/OHLCV", every_type(1))
        r = db.read("E/1Min/OHLCV", start=T0 + 3600)
        assert len(r) == 0
        table = r.to_arrow()
        assert table.num_rows == 0
        assert str(table.schema.field("c_U16").type) == "string"
        assert r.to_polars().columns == r.columns


def test_a_contiguous_epoch_column_is_shared_not_copied(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        n = 10_000  # large enough that the read keeps Epoch as an array of its own
        a = np.zeros(n, dtype=[("Epoch", "i8"), ("Close", "f8")])
        a["Epoch"] = T0 + 60 * np.arange(n)
        db.write("BIG/1Min/OHLCV", a)
        r = db.read("BIG/1Min/OHLCV")
        epoch = r["Epoch"]
        assert epoch.flags.c_contiguous
        buf = r.to_arrow().column("Epoch").chunk(0).buffers()[1]
        assert buf.address == epoch.ctypes.data
