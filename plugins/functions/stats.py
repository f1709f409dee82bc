"""What count, min, max and avg share: one input column reduced to one row. The row's Epoch is
the first input row's (0 for no rows): a time of the data, where MarketStore puts the server's
clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from mkts.engine import FunctionArgs, FunctionContext, FunctionError

__all__ = ["Reduce", "ReduceFn"]

ReduceFn = Callable[[np.ndarray], float | int]


class Reduce:
    """`out_name` = `reduce(values)` of the bound column (count: of the rows)."""

    def __init__(self, args: FunctionArgs, out_name: str, reduce: ReduceFn, dtype: str,
                 needs_column: bool = True) -> None:
        self.column = args.columns["*"][0]
        self.out_name = out_name
        self.reduce = reduce
        self.dtype = dtype
        self.needs_column = needs_column

    def __repr__(self) -> str:
        return f"<{self.out_name.lower()}({self.column})>"

    def apply(self, columns: Mapping[str, np.ndarray], ctx: FunctionContext
              ) -> dict[str, np.ndarray]:
        epochs = np.asarray(columns["Epoch"], dtype=np.int64)
        first = int(epochs[0]) if len(epochs) else 0
        if self.needs_column:
            col = columns.get(self.column)
            if col is None:
                raise FunctionError(f"unable to retrieve column named {self.column}")
            values = np.asarray(col)
            if values.dtype.kind not in "iuf":
                raise FunctionError(f"{self.out_name.lower()}({self.column}): the column is "
                                    f"{values.dtype.str.lstrip('<>|=')}, not a number")
        else:
            values = epochs
        value = self.reduce(values)
        return {"Epoch": np.array([first], dtype=np.int64),
                self.out_name: np.array([value], dtype=self.dtype)}


def nan_if_empty(fn: Callable[[np.ndarray], object]) -> ReduceFn:
    def reduce(values: np.ndarray) -> float:
        return float(fn(values)) if len(values) else float("nan")  # type: ignore[arg-type]
    return reduce
