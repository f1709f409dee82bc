"""The synthetic market (plugins/synth.py) that the demo, the feed worker and the benchmarks
share: prices on the $0.01 grid like real US equity prices, bars internally consistent,
the same rows for the same seed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from mkts.plugins import synth


def _cents(prices: np.ndarray) -> np.ndarray:
    return np.round(prices.astype(np.float64) * 100)


@pytest.mark.parametrize("symbol", ["AAPL", "S042", "XOM"])
def test_bar_prices_are_whole_cents(symbol: str) -> None:
    bars = synth.minute_bars(symbol, dt.date(2024, 1, 1), dt.date(2024, 3, 31))
    for col in ("Open", "High", "Low", "Close"):
        p = bars[col]
        # Each float32 is the nearest float32 to a whole number of cents.
        assert np.array_equal(p, (_cents(p) / 100).astype(np.float32)), col
        assert (p >= np.float32(0.01)).all(), col


def test_bars_are_consistent() -> None:
    bars = synth.minute_bars("MSFT", dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    o, h, lo, c = (bars[k] for k in ("Open", "High", "Low", "Close"))
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert np.array_equal(o[1:], c[:-1])  # a bar opens at the previous close
    assert (h > lo).mean() > 0.5  # the bars are not flat


def test_a_price_below_a_cent_is_a_cent() -> None:
    assert synth.on_cents(np.array([0.0, 0.004, 0.006, 12.345001, 7.0])).tolist() == \
        [0.01, 0.01, 0.01, 12.35, 7.0]


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    a = synth.minute_bars("AAPL", dt.date(2024, 5, 1), dt.date(2024, 5, 31))
    b = synth.minute_bars("AAPL", dt.date(2024, 5, 1), dt.date(2024, 5, 31))
    c = synth.minute_bars("AAPL", dt.date(2024, 5, 1), dt.date(2024, 5, 31), seed=8)
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


def test_trade_prices_are_whole_cents() -> None:
    t = synth.ticks("AAPL", dt.date(2024, 3, 4), 5000)
    assert np.array_equal(t["Price"], _cents(t["Price"]) / 100)
