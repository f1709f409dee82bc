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
    repr shows the first and last time in that zone too. `r.to_arrow()` / `r.to_polars()`
    give the same columns, names and types as a pyarrow Table / polars DataFrame (Epoch
    stays int64 seconds, a tick bucket's Nanoseconds int32).
    """

    __slots__ = ("key", "_data", "_columns", "timezone", "_nanos", "_epochs", "_unfilled",
                 "_ticks", "_arrow")

    def __init__(self, key: str, data: np.ndarray, columns: list[str], timezone: str,
                 nanos: np.ndarray | None = None, epochs: np.ndarray | None = None, *,
                 ticks: bool | None = None) -> None:
        """`epochs`, when given, is the Epoch column and `data`'s own Epoch field does not
        hold it yet: the read hands over `data` (private and writable) and its Epoch field
        is written from `epochs` only when `array` is first asked for (a strided write over
        every row that a columnar reader never needs). `ticks`: whether a `Nanoseconds`
        column is part of the row times (a tick bucket's); None: when there is one (False
        for a fixed bucket, where `Nanoseconds` is an ordinary column)."""
        self.key = key
        self._ticks = "Nanoseconds" in columns if ticks is None else ticks
        self._arrow: Any = None
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
    def ticks(self) -> bool:
        """True when the row times include the `Nanoseconds` column (a tick bucket's); in a
        fixed bucket a column of that name is ordinary data."""
        return self._ticks and "Nanoseconds" in self._columns

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
        if self.ticks:
            ns = ns + self._data["Nanoseconds"]
        return ns.view("datetime64[ns]")

    def to_pandas(self) -> Any:
        """A pandas DataFrame indexed by a DatetimeIndex named Epoch in the database zone."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("to_pandas() needs pandas: pip install 'mkts[pandas]'") from exc
        if not self._timed:  # an SQL result without an integer Epoch: a plain table
            return pd.DataFrame({c: np.array(self[c]) for c in self._columns})
        index = pd.DatetimeIndex(self.timestamps, name="Epoch").tz_localize("UTC")
        if self.timezone != "UTC":
            index = index.tz_convert(self.timezone)
        data = {c: np.array(self[c]) for c in self._columns if c != "Epoch"}
        return pd.DataFrame(data, index=index)

    @property
    def _timed(self) -> bool:
        return "Epoch" in self._columns and self["Epoch"].dtype.kind in "iu"

    def to_arrow(self) -> Any:
        """A pyarrow Table of the same columns, in order, with the same types (strings as
        Arrow strings). A contiguous column (Epoch of a larger read, every column of an SQL
        result) is shared, not copied; a field of the record layout is copied once."""
        if self._arrow is not None:
            return self._arrow
        try:
            import pyarrow as pa
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("to_arrow() needs pyarrow: pip install 'mkts[sql]'") from exc
        return pa.table({c: pa.array(self[c]) for c in self._columns})

    def to_polars(self) -> Any:
        """A polars DataFrame of the same columns and types (built from `to_arrow()`)."""
        try:
            import polars as pl
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("to_polars() needs polars: pip install 'mkts[polars]'") from exc
        return pl.from_arrow(self.to_arrow())

    @classmethod
    def from_arrow(cls, key: str, table: Any, timezone: str) -> Result:
        """A Result over a pyarrow Table (an SQL result): numpy columns, `to_arrow()`
        returns `table` itself. Nulls become NaN (numbers) or "" (text); decimals become
        int64 when whole and in range, else float64; repeated names get a suffix."""
        names: list[str] = []
        arrays: list[np.ndarray] = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            base, n = str(name), 1
            while name in names:
                name, n = f"{base}_{n}", n + 1
            names.append(str(name))
            arrays.append(_numpy_column(col))
        data = np.empty(table.num_rows, dtype=[(c, a.dtype) for c, a in zip(names, arrays,
                                                                            strict=True)])
        for c, a in zip(names, arrays, strict=True):
            data[c] = a
        out = cls(key, data, names, timezone)
        if names == list(table.column_names):
            out._arrow = table
        return out

    def __repr__(self) -> str:
        head = f"<Result {self.key}: {len(self)} rows x {len(self._columns)} columns"
        if not len(self) or not self._timed:
            return head + ">"
        epochs = self["Epoch"]
        first, last = (_local_text(int(epochs[i]), self.timezone) for i in (0, -1))
        return f"{head}, {first} .. {last}>"


def _numpy_column(col: Any) -> np.ndarray:
    """One Arrow column as a numpy array a structured array can hold."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_decimal(t):
        whole = t.scale == 0 and col.null_count == 0
        if whole:
            try:
                return np.asarray(col.cast(pa.int64()).to_numpy())
            except pa.ArrowInvalid:
                pass
        col, t = col.cast(pa.float64()), pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = np.array(col.fill_null("").to_pylist(), dtype=str)
        return values if len(values) else np.zeros(0, dtype="<U1")
    if col.null_count and (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return np.asarray(col.cast(pa.float64()).fill_null(np.nan).to_numpy())
    return np.asarray(col.to_numpy())


def _local_text(epoch: int, tz: str) -> str:
    """An epoch second as ISO-8601 in the database zone: `...Z` for UTC, else with the
    offset (`2024-01-02T09:30:00-05:00`)."""
    if tz == "UTC":
        return f"{np.datetime64(epoch, 's')}Z"
    return _dt.datetime.fromtimestamp(epoch, zoneinfo.ZoneInfo(tz)).isoformat()
