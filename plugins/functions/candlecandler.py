"""`candlecandler('<tf>', <Open>, <High>, <Low>, <Close>[, Sum::<col>]...[, Avg::<col>]...)`:
bars to coarser bars (first open, max high, min low, last close)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mkts.engine import FunctionArgs
from mkts.plugins.functions import candles
from mkts.plugins.functions.candler import Candler

REQUIRED = ("Open", "High", "Low", "Close")
OPTIONAL = ("Sum", "Avg")
INIT_ARGS = 1


def NewFunction(args: FunctionArgs) -> Candler:
    bound = [list(args.columns[p]) for p in REQUIRED]

    def prices(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return tuple(candles.price_of(columns, names) for names in bound)

    return Candler(args, prices)
