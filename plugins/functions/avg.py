"""`avg(<col>)`: one row, `Avg` (f8) = the mean of the column (integers summed exactly; NaN
for no rows)."""

from __future__ import annotations

import numpy as np

from mkts.engine import FunctionArgs
from mkts.plugins.aggfuncs import volume_dtype
from mkts.plugins.functions.stats import Reduce, nan_if_empty


def _mean(values: np.ndarray) -> float:
    return float(values.sum(dtype=volume_dtype(values.dtype))) / len(values)


REQUIRED = ("*",)


def NewFunction(args: FunctionArgs) -> Reduce:
    return Reduce(args, "Avg", nan_if_empty(_mean), "f8")
