"""`resample('<tf>', Price::<col> | Open::..,High::..,Low::..,Close::..[, Volume::<col>])`, an
mkts extension behind `db.resample`: OHLCV bars equal to pandas' left-closed, left-labelled
resample. Prices keep their type (integers too), Volume is the exact sum under its own name
(`Volume`, int64 for integers)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mkts.engine import FunctionArgs, FunctionError
from mkts.plugins.functions import candles
from mkts.plugins.functions.candler import Candler

REQUIRED = ()
OPTIONAL = ("Open", "High", "Low", "Close", "Price", "Volume")
INIT_ARGS = 1


def NewFunction(args: FunctionArgs) -> Candler:
    cols = args.columns
    if "Price" in cols:
        if any(p in cols for p in ("Open", "High", "Low", "Close")):
            raise FunctionError("resample takes Price:: or Open::, High::, Low::, Close::, "
                                "not both")
        price = list(cols["Price"])
        names = [price] * 4
    elif all(p in cols for p in ("Open", "High", "Low", "Close")):
        names = [list(cols[p]) for p in ("Open", "High", "Low", "Close")]
    else:
        raise FunctionError("resample needs Price::<column>, or Open::, High::, Low:: and "
                            "Close:: columns")

    def prices(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return tuple(candles.price_of(columns, n, keep_int=True) for n in names)

    volume = list(cols.get("Volume", ()))
    if len(volume) > 1:
        raise FunctionError("resample sums one Volume:: column")
    return Candler(args, prices, volume=volume[0] if volume else None)
