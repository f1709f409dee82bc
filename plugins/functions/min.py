"""`min(<col>)`: one row, `Min` (f8) = the min of the column (NaN for no rows)."""

from __future__ import annotations

import numpy as np

from mkts.engine import FunctionArgs
from mkts.plugins.functions.stats import Reduce, nan_if_empty

REQUIRED = ("*",)


def NewFunction(args: FunctionArgs) -> Reduce:
    return Reduce(args, "Min", nan_if_empty(np.min), "f8")
