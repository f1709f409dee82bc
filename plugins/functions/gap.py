"""`gap('<tf>')` / `gap()`: the holes between consecutive rows. With a timeframe, each step
longer than it (strictly); otherwise (no literal, or one that is not a timeframe) each step
whose z-score against all steps (sample standard deviation) exceeds 3. One row per gap:
Epoch (the row before), End (the row after), Length = End - Epoch, all i8."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mkts.engine import FunctionArgs, FunctionContext, FunctionError
from mkts.plugins.functions import candles

REQUIRED = ()
_YEAR = 365 * 86_400


class Gap:
    def __init__(self, threshold: int | None) -> None:
        self.threshold = threshold

    def __repr__(self) -> str:
        return f"<gap {self.threshold if self.threshold is not None else 'z>3'}>"

    def apply(self, columns: Mapping[str, np.ndarray], ctx: FunctionContext
              ) -> dict[str, np.ndarray]:
        ep = np.asarray(columns["Epoch"], dtype=np.int64)
        steps = ep[1:] - ep[:-1]
        if len(steps) == 0:
            hit = np.zeros(0, dtype=bool)
        elif self.threshold is not None:
            hit = steps > self.threshold
        else:
            f = steps.astype(np.float64)
            sd = float(f.std(ddof=1)) if len(f) > 1 else float("nan")
            if sd == 0:
                sd = 1.0
            with np.errstate(invalid="ignore"):
                hit = np.abs(f - f.mean()) / sd > 3
        idx = np.flatnonzero(hit)
        start, end = ep[idx], ep[idx + 1]
        return {"Epoch": start, "End": end, "Length": end - start}


def NewFunction(args: FunctionArgs) -> Gap:
    if len(args.literals) > 1:
        raise FunctionError(f"{args.name} takes at most one literal (a timeframe like '1H'), "
                            f"got {len(args.literals)}")
    if not args.literals:
        return Gap(None)
    try:
        frame = candles.parse_frame(args.literals[0])
    except FunctionError:
        return Gap(None)  # not a timeframe: the z-score rule, as in MarketStore
    secs = frame.seconds
    if secs is None:  # months and years: their shortest length
        secs = frame.n * (_YEAR if frame.unit == "Y" else 28 * 86_400)
    return Gap(secs)
