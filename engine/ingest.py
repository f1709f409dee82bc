"""Stage 1 of the write path: turn user data into validated, schema-typed columns.

Accepts a numpy structured array, a dict of equal-length columns, or a pandas DataFrame
(DatetimeIndex or an Epoch column). Everything is checked here, before any byte is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mkts.engine.errors import InvalidInputError, SchemaError
from mkts.engine.schema import FIXED, Schema, cast_column, normalise_dtype
from mkts.engine.timeframes import Timeframe
from mkts.engine.timeutil import MAX_DATETIME64_S, NS, Calendar

__all__ = ["Batch", "raw_columns", "infer_schema", "prepare"]

MAX_ROWS = 200_000_000
_MAX_EPOCH_S = (2**63 - 1) // NS  # seconds that still fit int64 nanoseconds


@dataclass
class Batch:
    """Validated rows for one bucket: epoch seconds (and nanoseconds) plus typed columns."""

    epochs: np.ndarray  # int64 seconds
    nanos: np.ndarray | None  # int32 nanoseconds within the second, tick buckets only
    columns: dict[str, np.ndarray]  # bucket order, bucket types

    def __len__(self) -> int:
        return len(self.epochs)


def raw_columns(data: Any, key: str) -> dict[str, np.ndarray]:
    """Columns of the input as 1-D numpy arrays (Epoch included when the input has one)."""
    cols: dict[str, np.ndarray] = {}
    if isinstance(data, np.ndarray):
        if data.dtype.names is None:
            raise InvalidInputError(
                f"write to {key}: a numpy array must be structured (named fields incl. Epoch)"
            )
        for name in data.dtype.names:
            cols[name] = data[name]  # a strided view; copied once, into the records
    elif isinstance(data, dict):
        for name, values in data.items():
            cols[str(name)] = np.asarray(values)
    elif _is_dataframe(data):
        index = data.index
        if "Epoch" not in data.columns:
            if getattr(index, "dtype", None) is not None and (
                index.dtype.kind == "M" or str(index.dtype).startswith("datetime64")
            ):
                cols["Epoch"] = _datetime_index_ns(index)
            elif index.name == "Epoch":
                cols["Epoch"] = np.asarray(index)
        for name in data.columns:
            series = data[name]
            cols[str(name)] = _series_values(series, str(name))
    else:
        raise InvalidInputError(
            f"write to {key}: data must be a numpy structured array, a dict of columns or a "
            f"pandas DataFrame, not {type(data).__name__}"
        )
    lengths = {n: a.shape for n, a in cols.items()}
    for name, arr in cols.items():
        if arr.ndim != 1:
            raise InvalidInputError(f"write to {key}: column {name!r} must be one-dimensional, has shape {arr.shape}")
    if len({s[0] for s in lengths.values()}) > 1:
        detail = ", ".join(f"{n}={s[0]}" for n, s in lengths.items())
        raise InvalidInputError(f"write to {key}: columns have different lengths ({detail})")
    return cols


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns") and hasattr(obj, "index")


def _datetime_index_ns(index: Any) -> np.ndarray:
    if getattr(index, "tz", None) is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("ns").asi8).view("datetime64[ns]")


def _series_values(series: Any, name: str) -> np.ndarray:
    dtype = series.dtype
    if str(dtype).startswith("datetime64"):
        return _datetime_index_ns(_to_index(series))
    if dtype.kind == "O" or str(dtype) in ("string", "str"):
        values = series.to_numpy(dtype=object)
        if len(values) and not all(isinstance(v, str) for v in values):
            raise SchemaError(f"column {name!r}: mixed or missing values in a text column")
        return values.astype(str) if len(values) else np.array([], dtype="<U1")
    try:
        return np.asarray(series.to_numpy())
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"column {name!r}: cannot convert to a numpy array ({exc})") from exc


def _to_index(series: Any) -> Any:
    import pandas as pd  # only reached for pandas input

    return pd.DatetimeIndex(series)


def epoch_ns(values: np.ndarray, key: str) -> np.ndarray:
    """The Epoch column as int64 nanoseconds (int seconds, float seconds or datetime64)."""
    kind = values.dtype.kind
    if kind == "M":
        # Casting to [ns] wraps silently past April 2262: check the range in seconds first.
        secs = values.astype("datetime64[s]").view(np.int64)
        if len(secs) and (secs == np.iinfo(np.int64).min).any():
            raise InvalidInputError(f"write to {key}: Epoch has NaT values")
        if len(secs) and int(np.abs(secs).max()) > MAX_DATETIME64_S:
            raise InvalidInputError(
                f"write to {key}: Epoch value {values[np.argmax(np.abs(secs))]} is outside "
                "the supported years"
            )
        out = values.astype("datetime64[ns]").view(np.int64)
        return out
    if kind in "iu":
        if len(values) == 1:
            lo = hi = int(values[0])
        elif len(values):
            lo, hi = int(values.min()), int(values.max())
        else:
            lo = hi = 0
        if hi > _MAX_EPOCH_S or lo < -_MAX_EPOCH_S:
            bad = hi if hi > _MAX_EPOCH_S else lo
            raise InvalidInputError(
                f"write to {key}: Epoch value {bad} is not epoch seconds in a supported year "
                "(give seconds since 1970, or datetime64)"
            )
        return values.astype(np.int64) * NS
    if kind == "f":
        if len(values) and not np.isfinite(values).all():
            raise InvalidInputError(f"write to {key}: Epoch has NaN or infinite values")
        if len(values) and np.abs(values).max() > 9.3e9:
            raise InvalidInputError(f"write to {key}: Epoch values are not epoch seconds")
        return np.floor(values.astype(np.float64) * NS).astype(np.int64)
    raise InvalidInputError(
        f"write to {key}: Epoch must be int64 epoch seconds or datetime64, not {values.dtype}"
    )


def infer_schema(tf: Timeframe, kind: str, cols: dict[str, np.ndarray], key: str, *,
                 nanos_column: bool = False) -> Schema:
    """The schema a first write creates: the data's columns, in the data's order.
    `nanos_column`: a fixed bucket keeps a Nanoseconds column as an ordinary column (the
    write said variable=False), instead of refusing it as a tick time."""
    spec = []
    for name, arr in cols.items():
        if name == "Epoch" or (name == "Nanoseconds" and not (nanos_column and kind == FIXED)):
            continue
        if arr.dtype.kind == "b":
            raise SchemaError(f"write to {key}: column {name!r} is bool; cast it to u1 or i1")
        if arr.dtype.kind == "O":
            # Only text: str() of None, a number or any other object is not data.
            if not all(isinstance(v, str) for v in arr):
                raise SchemaError(f"write to {key}: column {name!r} has objects that are not text")
            arr = arr.astype(str) if len(arr) else np.array([], dtype="<U1")
            cols[name] = arr
        spec.append((name, normalise_dtype(arr.dtype, name)))
    if not spec:
        raise SchemaError(f"write to {key}: the data has no columns besides Epoch")
    return Schema(tf, kind, tuple(spec))


def prepare(cols: dict[str, np.ndarray], schema: Schema, calendar: Calendar, key: str, *,
            fills: dict[str, Any] | None = None) -> Batch:
    """Validate columns against the bucket's schema and cast them; raise before any write.
    With `fills` ({column: fill value}: `allow_missing_columns`), a missing column takes its
    fill value in every row instead of being an error."""
    if "Epoch" not in cols:
        raise SchemaError(f"write to {key}: the data has no Epoch column (or DatetimeIndex)")
    n = len(cols["Epoch"])
    if n > MAX_ROWS:
        raise InvalidInputError(f"write to {key}: {n} rows in one call; split it below {MAX_ROWS}")
    names = set(schema.names)
    nanos_is_data = schema.kind == FIXED and "Nanoseconds" in names
    ignored = {"Epoch"} if nanos_is_data else {"Epoch", "Nanoseconds"}
    given = set(cols) - ignored
    if fills is not None:
        cols = dict(cols)
        for name, dt in schema.columns:
            if name not in given:
                cols[name] = np.full(n, fills[name], dtype=dt)
        given = set(cols) - ignored
    missing = [c for c in schema.names if c not in given]
    extra = sorted(given - names)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(map(repr, extra))}")
        has = (f"the bucket has columns {', '.join(schema.names)}" if schema.names else
               "the bucket has no columns besides Epoch (it was created with none): write "
               "Epoch alone, or destroy it and write again to create it from the data")
        raise SchemaError(f"write to {key}: {'; '.join(parts)}; {has}")
    if "Nanoseconds" in cols and schema.kind == FIXED and not nanos_is_data:
        raise SchemaError(
            f"write to {key}: Nanoseconds is only for tick buckets (variable=True); "
            "this bucket is fixed (a new bucket written with variable=False keeps "
            "Nanoseconds as an ordinary column)"
        )
    ns = epoch_ns(cols["Epoch"], key)
    nanos = None
    if schema.kind == "variable":
        ns = _tick_ns(cols, ns, key)
        nanos = (ns % NS).astype(np.int32)
    epochs = ns // NS  # floor, also for times before 1970
    calendar.check_range(epochs, f"write to {key}: Epoch")
    out: dict[str, np.ndarray] = {}
    for name, dt in schema.columns:
        try:
            out[name] = cast_column(cols[name], dt, name)
        except SchemaError as exc:
            raise SchemaError(f"write to {key}: {exc}") from None
    return Batch(epochs, nanos, out)


def _tick_ns(cols: dict[str, np.ndarray], ns: np.ndarray, key: str) -> np.ndarray:
    """Exact tick times: datetime64 Epoch alone, or integer Epoch seconds + Nanoseconds."""
    epoch = cols["Epoch"]
    has_nanos = "Nanoseconds" in cols
    if epoch.dtype.kind == "M":
        if has_nanos:
            raise InvalidInputError(
                f"write to {key}: Nanoseconds given beside a datetime64 Epoch; the datetime "
                "already carries the nanoseconds: drop the Nanoseconds column"
            )
        return ns
    if epoch.dtype.kind not in "iu":
        raise InvalidInputError(
            f"write to {key}: a tick Epoch must be integer seconds (with Nanoseconds) or "
            f"datetime64[ns], not {epoch.dtype}"
        )
    if not has_nanos:
        raise InvalidInputError(
            f"write to {key}: tick buckets need a Nanoseconds column (int32, 0..999999999) "
            "beside integer Epoch seconds, or give Epoch as datetime64[ns]"
        )
    nanos = cols["Nanoseconds"]
    if nanos.dtype.kind not in "iu":
        raise InvalidInputError(
            f"write to {key}: Nanoseconds must be an integer column (int32), not {nanos.dtype}"
        )
    if len(nanos):
        lo, hi = int(nanos.min()), int(nanos.max())
        if lo < 0 or hi >= NS:
            bad = lo if lo < 0 else hi
            raise InvalidInputError(
                f"write to {key}: Nanoseconds value {bad} is outside 0..999999999"
            )
    return ns + nanos.astype(np.int64)
