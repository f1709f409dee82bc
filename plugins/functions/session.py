"""`session('<exchange>')`, an mkts extension: keeps the rows inside a session of an exchange
calendar (`XNYS`, `XNAS`, `nasdaq`, any exchange_calendars name), the filter ondiskagg applies
to daily bars: open <= t < close, outside lunch breaks, with holidays and early closes. Put it
before a candler: `["session('XNYS')", "candlecandler('1D',Open,High,Low,Close)"]`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mkts.engine import FunctionArgs, FunctionContext, FunctionError
from mkts.plugins.aggfuncs import SessionFilter, session_filter

REQUIRED = ()
INIT_ARGS = 1


class Session:
    def __init__(self, flt: SessionFilter) -> None:
        self.filter = flt

    def __repr__(self) -> str:
        return f"<session {self.filter.name}>"

    def apply(self, columns: Mapping[str, np.ndarray], ctx: FunctionContext
              ) -> dict[str, np.ndarray]:
        keep = self.filter.mask(np.asarray(columns["Epoch"], dtype=np.int64))
        if bool(keep.all()):
            return dict(columns)
        return {name: np.asarray(col)[keep] for name, col in columns.items()}


def NewFunction(args: FunctionArgs) -> Session:
    if len(args.literals) != 1:
        raise FunctionError(f"{args.name} takes one exchange calendar name like 'XNYS'")
    try:
        return Session(session_filter(args.literals[0]))
    except (ValueError, ImportError) as exc:
        raise FunctionError(str(exc)) from exc
