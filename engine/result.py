"""`Result`: the rows of one bucket returned by a read, as a small read-only table."""

from __future__ import annotations

import datetime as _dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

import numpy as np

from mkts.engine.errors import UnknownColumnError
from mkts.engine.timeutil import NS

__all__ = ["Result"]


class Result:
    """Columns of one bucket over a time range, in ascending time order.

    `r["Close"]` is a read-only numpy array (a view into the result, no copy; `r["Epoch"]`
    of a large fixed-bucket read is a contiguous array of its own);
    `r.columns` / `r.keys()` list the columns with Epoch first; `len(r)` counts rows;
    `r.to_pandas()` gives a DataFrame indexed by Epoch in the database time zone, and the
    repr shows the first and last time in that zone too.
    """

    __slots__ = ("key", "_data", "_columns", "timezone", "_nanos", "_epochs", "_unfilled")

    def __init__(self, key: str, data: np.ndarray, columns: list[str], timezone: str,
                 nanos: np.ndarray | None = None, epochs: np.ndarray | None = None) -> None:
        """`epochs`, when given, is the Epoch column and `data`'s own Epoch field does not
        hold it yet: the read hands over `data` (private and writable) and its Epoch field
        is written from `epochs` only when `array` is first asked for (a strided write over
        every row that a columnar reader never needs)."""
        self.key = key
        self._unfilled: np.ndarray | None = None
        if epochs is not None:
            epochs.flags.writeable = False
            self._unfilled = data
            data = data.view()
        data.flags.writeable = False
        self._data = data
        self._epochs = epochs
        self._columns = columns
        self.timezone = timezone
        self._nanos = nanos

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def keys(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._columns:
            raise UnknownColumnError(
                f"column {name!r} is not in this result; it has {', '.join(self._columns)}"
            )
        if name == "Epoch" and self._epochs is not None:
            return self._epochs
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def array(self) -> np.ndarray:
        """All columns as one read-only numpy structured array."""
        unfilled = self._unfilled
        if unfilled is not None:
            # Idempotent: threads racing here write the same values, and each returns only
            # after its own write has finished.
            unfilled["Epoch"] = self._epochs
            self._unfilled = None
        return self._data

    @property
    def timestamps(self) -> np.ndarray:
        """Row times as datetime64[ns] (UTC)."""
        ns = self["Epoch"].astype(np.int64) * NS
        if "Nanoseconds" in self._columns:
            ns = ns + self._data["Nanoseconds"]
        return ns.view("datetime64[ns]")

    def to_pandas(self) -> Any:
        """A pandas DataFrame indexed by a DatetimeIndex named Epoch in the database zone."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("to_pandas() needs pandas: pip install 'mkts[pandas]'") from exc
        index = pd.DatetimeIndex(self.timestamps, name="Epoch").tz_localize("UTC")
        if self.timezone != "UTC":
            index = index.tz_convert(self.timezone)
        data = {c: np.array(self[c]) for c in self._columns if c != "Epoch"}
        return pd.DataFrame(data, index=index)

    def __repr__(self) -> str:
        head = f"<Result {self.key}: {len(self)} rows x {len(self._columns)} columns"
        if not len(self):
            return head + ">"
        epochs = self["Epoch"]
        first, last = (_local_text(int(epochs[i]), self.timezone) for i in (0, -1))
        return f"{head}, {first} .. {last}>"


def _local_text(epoch: int, tz: str) -> str:
    """An epoch second as ISO-8601 in the database zone: `...Z` for UTC, else with the
    offset (`2024-01-02T09:30:00-05:00`)."""
    if tz == "UTC":
        return f"{np.datetime64(epoch, 's')}Z"
    return _dt.datetime.fromtimestamp(epoch, zoneinfo.ZoneInfo(tz)).isoformat()
