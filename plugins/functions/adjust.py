"""`adjust(['split'][, 'dividend'])`: split and stock-dividend adjustment from the corporate
actions in the bucket `<SYMBOL>/1D/ACTIONS` (MarketStore's ICE reorg layout). No literal means
both. A row at time e is divided by the product of the rates of the actions that expire after
e: float prices divided, an integer `Volume` multiplied (truncated). A missing actions bucket
adjusts nothing. Columns keep their order and types; nothing is rounded."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mkts.engine import FunctionArgs, FunctionContext, FunctionError

REQUIRED = ()

SPLITS = (ord("7"), ord("+"))  # stock split, reverse split
DIVIDENDS = (ord("/"),)  # stock dividend
_NEEDED = ("TextNumber", "UpdateTextNumber", "DeleteTextNumber", "NotificationType", "Status",
           "ExpirationDate", "Rate")


def rate_changes(actions: Mapping[str, np.ndarray], kinds: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(expiration dates, rates) of the announcements still in force, sorted by date:
    status N sets TextNumber's entry, U sets UpdateTextNumber's (when newer), D removes
    DeleteTextNumber's; rows in stored order."""
    missing = [c for c in _NEEDED if c not in actions]
    if missing:
        raise FunctionError(f"adjust: the actions bucket lacks {', '.join(missing)}")
    live: dict[int, int] = {}
    epochs = np.asarray(actions["Epoch"]).tolist()
    status = np.asarray(actions["Status"]).tolist()
    text = np.asarray(actions["TextNumber"]).tolist()
    upd = np.asarray(actions["UpdateTextNumber"]).tolist()
    dele = np.asarray(actions["DeleteTextNumber"]).tolist()
    for i, st in enumerate(status):
        if st == ord("N"):
            live[text[i]] = i
        elif st == ord("U"):
            old = live.get(upd[i])
            if old is None or epochs[i] > epochs[old]:
                live[upd[i]] = i
        elif st == ord("D"):
            live.pop(dele[i], None)
    rows = np.array(sorted(live.values()), dtype=np.int64)
    ntype = np.asarray(actions["NotificationType"])[rows]
    rows = rows[np.isin(ntype, kinds)]
    exp = np.asarray(actions["ExpirationDate"], dtype=np.int64)[rows]
    rate = np.asarray(actions["Rate"], dtype=np.float64)[rows]
    order = np.argsort(exp, kind="stable")
    return exp[order], rate[order]


def rates_at(epochs: np.ndarray, exp: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """For each epoch, the product of the rates whose expiration date is later (strictly)."""
    # suffix[i] = product of rate[i:]; a row is governed by the first date > it.
    suffix = np.concatenate((np.cumprod(rate[::-1])[::-1], [1.0]))
    return suffix[np.searchsorted(exp, epochs, side="right")]


class Adjust:
    def __init__(self, kinds: tuple[int, ...]) -> None:
        self.kinds = kinds

    def __repr__(self) -> str:
        return f"<adjust {self.kinds}>"

    def apply(self, columns: Mapping[str, np.ndarray], ctx: FunctionContext
              ) -> dict[str, np.ndarray]:
        symbol = ctx.key.split("/")[0]
        actions = ctx.read(f"{symbol}/1D/ACTIONS") if self.kinds else None
        if actions is None or not len(actions["Epoch"]):
            return dict(columns)
        exp, rate = rate_changes(actions, self.kinds)
        if not len(exp):
            return dict(columns)
        r = rates_at(np.asarray(columns["Epoch"], dtype=np.int64), exp, rate)
        out: dict[str, np.ndarray] = {}
        for name, col in columns.items():
            a = np.asarray(col)
            if name in ("Epoch", "Nanoseconds"):
                out[name] = a
            elif a.dtype.kind == "f":
                out[name] = (a / r).astype(a.dtype)
            elif name == "Volume" and a.dtype.kind in "iu":
                out[name] = np.trunc(a * r).astype(a.dtype)
            else:
                out[name] = a
        return out


def NewFunction(args: FunctionArgs) -> Adjust:
    words = {x.lower() for x in args.literals}
    splits = "split" in words or not args.literals
    dividends = "dividend" in words or not args.literals
    return Adjust((SPLITS if splits else ()) + (DIVIDENDS if dividends else ()))
