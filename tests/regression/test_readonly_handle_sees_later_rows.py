"""A read-only handle beside a writer must see rows the writer adds to a year file it has
already read (the writer's in-memory occupancy index is not shared across handles)."""

from __future__ import annotations

import numpy as np
import pytest

from mkts import engine

T0 = 1_704_153_600  # 2024-01-02 00:00 UTC


def _rows(epochs: list[int], value: float) -> dict[str, np.ndarray]:
    return {"Epoch": np.array(epochs, dtype=np.int64), "Close": np.full(len(epochs), value)}


def test_readonly_reader_sees_rows_written_after_its_first_read(tmp_path) -> None:
    root = str(tmp_path / "db")
    with engine.open(root) as writer:
        writer.write("AAPL/1Min/OHLCV", _rows([T0, T0 + 60], 1.0))
        reader = engine.open(root, readonly=True)
        try:
            assert reader.read("AAPL/1Min/OHLCV")["Epoch"].tolist() == [T0, T0 + 60]
            writer.write("AAPL/1Min/OHLCV", _rows([T0 - 60, T0 + 120], 2.0))
            got = reader.read("AAPL/1Min/OHLCV")
            assert got["Epoch"].tolist() == [T0 - 60, T0, T0 + 60, T0 + 120]
            assert got["Close"].tolist() == [2.0, 1.0, 1.0, 2.0]
        finally:
            reader.close()


def test_unknown_result_column_is_a_key_error_naming_it(tmp_path) -> None:
    with engine.open(str(tmp_path / "db")) as db:
        db.write("AAPL/1Min/OHLCV", _rows([T0], 1.0))
        r = db.read("AAPL/1Min/OHLCV")
        with pytest.raises(KeyError, match="Volume"):
            r["Volume"]
        with pytest.raises(engine.SchemaError, match="Volume"):
            db.read("AAPL/1Min/OHLCV", columns=["Volume"])


def test_bad_timezone_creates_nothing(tmp_path) -> None:
    with pytest.raises(engine.InvalidInputError, match="Mars/Olympus"):
        engine.open(str(tmp_path / "db"), timezone="Mars/Olympus")
    assert not (tmp_path / "db").exists()
