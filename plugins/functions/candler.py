"""What tickcandler, candlecandler and resample share: one timeframe literal, the rows put in
time order, candles made by `candles.make_candles`. The price columns each one reads are its
own; see those modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from mkts.engine import FunctionArgs, FunctionContext, FunctionError
from mkts.plugins.functions import candles

__all__ = ["Candler", "one_timeframe"]

Prices = Callable[[Mapping[str, np.ndarray]], tuple[np.ndarray, ...]]


def one_timeframe(args: FunctionArgs) -> candles.Frame:
    """The single timeframe literal of a candler call."""
    if len(args.literals) != 1:
        shown = ", ".join(repr(x) for x in args.literals)
        raise FunctionError(f"argument passed to Init() is not a string: {args.name} takes "
                            f"exactly one timeframe literal like '1H', got {shown}")
    return candles.parse_frame(args.literals[0])


class Candler:
    """Rows to candles: `prices(columns)` gives (open, high, low, close) arrays, the bound
    Sum/Avg columns are summed/averaged per candle."""

    def __init__(self, args: FunctionArgs, prices: Prices, *, volume: str | None = None
                 ) -> None:
        """With `volume`, that column's exact sum comes out as `Volume` (resample) instead of
        the Sum/Avg columns."""
        self.frame = one_timeframe(args)
        self.prices = prices
        self.sums = [volume] if volume else list(args.columns.get("Sum", ()))
        self.avgs = [] if volume else list(args.columns.get("Avg", ()))
        self.exact_sums = volume is not None

    def __repr__(self) -> str:
        return f"<candles {self.frame.text}>"

    def apply(self, columns: Mapping[str, np.ndarray], ctx: FunctionContext
              ) -> dict[str, np.ndarray]:
        ohlc = self.prices(columns)
        sums = [("Volume" if self.exact_sums else n, candles.column(columns, n))
                for n in self.sums]
        avgs = [(n, candles.column(columns, n)) for n in self.avgs]
        epochs = np.asarray(columns["Epoch"], dtype=np.int64)
        order = candles.time_order(columns)
        if order is not None:
            epochs = epochs[order]
            ohlc = tuple(a[order] for a in ohlc)
            sums = [(n, a[order]) for n, a in sums]
            avgs = [(n, a[order]) for n, a in avgs]
        edges = None
        if len(epochs):
            edges = candles.candle_edges(ctx.calendar, int(epochs[0]), int(epochs[-1]),
                                         self.frame, max_edges=len(epochs))
        if edges is None:  # more candles than rows: label each row instead
            labels = candles.candle_labels(ctx.calendar, epochs, self.frame)
            edges = np.unique(labels)
        return candles.make_candles(epochs, edges, ohlc, sums, avgs,
                                    exact_sums=self.exact_sums)
