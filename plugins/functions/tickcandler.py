"""`tickcandler('<tf>', <price>[, Sum::<col>]...[, Avg::<col>]...)`: OHLC candles from one
price series (trades, or the mean of several bound columns such as Bid and Ask)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mkts.engine import FunctionArgs
from mkts.plugins.functions import candles
from mkts.plugins.functions.candler import Candler

REQUIRED = ("CandlePrice",)
OPTIONAL = ("Sum", "Avg")
INIT_ARGS = 1


def NewFunction(args: FunctionArgs) -> Candler:
    names = list(args.columns["CandlePrice"])

    def prices(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        p = candles.price_of(columns, names)
        return p, p, p, p

    return Candler(args, prices)
