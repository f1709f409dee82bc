"""`count(*)`: one row, `Count` (i8) = the number of input rows. The token is not checked."""

from __future__ import annotations

from mkts.engine import FunctionArgs
from mkts.plugins.functions.stats import Reduce

REQUIRED = ("*",)


def NewFunction(args: FunctionArgs) -> Reduce:
    return Reduce(args, "Count", len, "i8", needs_column=False)
