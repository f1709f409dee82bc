"""`max(<col>)`: one row, `Max` (f8) = the max of the column (NaN for no rows)."""

from __future__ import annotations

import numpy as np

from mkts.engine import FunctionArgs
from mkts.plugins.functions.stats import Reduce, nan_if_empty

REQUIRED = ("*",)


def NewFunction(args: FunctionArgs) -> Reduce:
    return Reduce(args, "Max", nan_if_empty(np.max), "f8")
