"""`mkts import KEY FILE.csv`: read a CSV file with a header row into validated columns,
then write them. Owns parsing (times in common formats, numbers, text) and the
all-or-nothing rule: every row is checked before anything is written.

Transactions: the rows go in as one transaction when they fit in `TXN_BYTES`; a larger file
is written in consecutive transactions of at most that size, each all-or-nothing (see
docs/cli.md "mkts import KEY FILE.csv [options]"). The database itself lives in `engine`; this module only calls it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine.timeutil import MAX_YEAR, MIN_YEAR, NS, parse_time_text, to_epoch_ns
from mkts.engine.uniq import unique_inverse
from mkts.plugins.progress import Progress, progress_bar

__all__ = ["CsvProblem", "CsvData", "read_csv", "import_csv", "ImportResult", "TIME_COLUMNS",
           "TXN_BYTES", "MAX_REPORTED"]

TIME_COLUMNS = ("epoch", "time", "timestamp", "datetime", "date", "ts")
TXN_BYTES = 256 << 20  # rows per transaction are bounded by this much record data
MAX_REPORTED = 20  # bad rows listed before the rest are only counted
_CHUNK_ROWS = 65_536
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": NS}
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TIME_HINT = "epoch seconds, or pass --time-format"


class CsvProblem(Exception):
    """The file cannot be imported; `problems` lists what is wrong, line by line."""

    def __init__(self, summary: str, problems: list[str] | None = None, bad_rows: int = 0) -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = problems or []
        self.bad_rows = bad_rows


@dataclass
class CsvData:
    """Validated columns: `epoch_ns` (int64 nanoseconds UTC) and the value columns."""

    epoch_ns: np.ndarray
    columns: dict[str, np.ndarray]
    time_column: str

    def __len__(self) -> int:
        return len(self.epoch_ns)


@dataclass
class ImportResult:
    rows: int
    transactions: int
    created: bool
    columns: dict[str, str] = field(default_factory=dict)


# -- reading -------------------------------------------------------------------------------
class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bad_rows: set[int] = set()

    def add(self, line: int, text: str) -> None:
        self.bad_rows.add(line)
        if len(self.lines) < MAX_REPORTED:
            self.lines.append(f"line {line}: {text}")


def _counting_lines(fh: io.TextIOBase, progress: Progress) -> Iterator[str]:
    for line in fh:
        progress.update(len(line))
        yield line


def read_csv(path: str, *, time_column: str | None = None, time_format: str | None = None,
             timezone: str = "UTC", epoch_unit: str = "s",
             schema: Mapping[str, Any] | None = None, hints: Mapping[str, Any] | None = None,
             skip: tuple[str, ...] = (), progress: bool = False) -> CsvData:
    """Parse and validate the whole file; raise CsvProblem listing bad rows (by line).

    `schema` ({name: dtype}, the existing bucket's) must match the file's value columns
    exactly; otherwise `hints` types some columns and the rest become int64 when every value
    is an integer, else float64. Times without an offset are read in `timezone`; numbers in
    the time column are epoch `epoch_unit`s."""
    if epoch_unit not in _UNITS:
        raise CsvProblem(f"epoch unit {epoch_unit!r} must be one of {', '.join(_UNITS)}")
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CsvProblem(f"timezone {timezone!r} is not an IANA time zone name") from None
    try:
        size = os.path.getsize(path)
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CsvProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    bar = progress_bar(size, f"reading {os.path.basename(path)}", bytes_=True, enabled=progress)
    try:
        return _read(fh, bar, path, time_column, time_format, zone, epoch_unit, schema,
                     dict(hints or {}), skip)
    except UnicodeDecodeError as exc:
        raise CsvProblem(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise CsvProblem(f"{path} is not valid CSV: {exc}") from None
    finally:
        fh.close()
        bar.close()


def _read(fh: Any, bar: Progress, path: str, time_column: str | None, time_format: str | None,
          zone: zoneinfo.ZoneInfo, epoch_unit: str, types: Mapping[str, Any] | None,
          hints: dict[str, Any], skip: tuple[str, ...]) -> CsvData:
    reader = csv.reader(_counting_lines(fh, bar))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CsvProblem(f"{path} is empty; it needs a header row naming the columns") from None
    if not any(header):
        raise CsvProblem(f"{path}: the first line must be a header row naming the columns")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise CsvProblem(f"{path}: column {dup[0]!r} appears twice in the header")
    tcol = _time_column(header, time_column, path)
    unknown_skip = [s for s in skip if s not in header]
    if unknown_skip:
        raise CsvProblem(f"{path}: --skip {unknown_skip[0]!r} is not a column of the header")
    value_cols = [h for h in header if h != tcol and h not in skip]
    if types is not None:
        missing = [c for c in types if c not in value_cols]
        extra = [c for c in value_cols if c not in types and c != "Nanoseconds"]
        if extra:
            raise CsvProblem(f"{path}: column {extra[0]!r} is not in the bucket (it has "
                             f"{', '.join(types) or 'no columns'}); drop it with --skip {extra[0]}")
        if missing:
            raise CsvProblem(f"{path}: the bucket's column {missing[0]!r} is not in the file")
    unknown_hint = [h for h in hints if h not in value_cols]
    if unknown_hint:
        raise CsvProblem(f"{path}: --types names column {unknown_hint[0]!r}, which is not a "
                         "value column of the file")
    index = {h: i for i, h in enumerate(header)}
    problems = _Problems()
    times: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {c: [] for c in value_cols}
    chunk: list[tuple[int, list[str]]] = []
    width = len(header)

    def flush() -> None:
        lines = [ln for ln, _ in chunk]
        t = _parse_times([row[index[tcol]] for _, row in chunk], lines, time_format, zone,
                         epoch_unit, problems, tcol)
        times.append(t)
        for c in value_cols:
            want = hints.get(c) if types is None else types.get(c)
            if c == "Nanoseconds" and want is None:
                want = np.dtype("<i4")
            parts[c].append(_parse_column([row[index[c]] for _, row in chunk], lines, c,
                                          want, problems))
        chunk.clear()

    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != width:
            problems.add(line, f"has {len(row)} fields; the header has {width}")
            continue
        chunk.append((line, row))
        if len(chunk) >= _CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    if problems.bad_rows:
        n = len(problems.bad_rows)
        raise CsvProblem(f"{n} bad row{'s' if n != 1 else ''} in {path}; nothing was written",
                         problems.lines, n)
    epoch_ns = np.concatenate(times) if times else np.zeros(0, np.int64)
    columns = {c: _unify(parts[c]) for c in value_cols}
    return CsvData(epoch_ns, columns, tcol)


def _time_column(header: list[str], wanted: str | None, path: str) -> str:
    if wanted is not None:
        if wanted not in header:
            raise CsvProblem(f"{path}: --time-column {wanted!r} is not in the header "
                             f"({', '.join(header)})")
        return wanted
    lowered = {h.lower(): h for h in header}
    for name in TIME_COLUMNS:
        if name in lowered:
            return lowered[name]
    raise CsvProblem(f"{path}: no time column; name one {', '.join(TIME_COLUMNS)} "
                     "(any case) or pass --time-column NAME")


def _parse_times(values: list[str], lines: list[int], time_format: str | None,
                 zone: zoneinfo.ZoneInfo, epoch_unit: str, problems: _Problems,
                 name: str) -> np.ndarray:
    """Epoch nanoseconds (UTC) of each value; bad values are reported and set to 0."""
    out = np.zeros(len(values), dtype=np.int64)
    naive = np.zeros(len(values), dtype=bool)
    unit = _UNITS[epoch_unit]
    lo_ns = to_epoch_ns(_dt.date(MIN_YEAR, 1, 1))
    hi_ns = to_epoch_ns(_dt.date(MAX_YEAR + 1, 1, 1)) - 1
    for i, raw in enumerate(values):
        s = raw.strip()
        try:
            if time_format is not None:
                ns, is_naive = _strptime(s, time_format)
            elif _INT.match(s):
                v = int(s)
                if unit == 1 and abs(v) > 99_999_999_999:
                    raise ValueError(f"{s} is too large for epoch seconds; if it is in "
                                     "milliseconds, pass --epoch-unit ms")
                ns, is_naive = v * (NS // unit), False
            elif _FLOAT.match(s):
                f = float(s)
                if not math.isfinite(f):
                    raise ValueError(f"{s!r} is not a time")
                ns, is_naive = int(round(f * (NS // unit))), False
            else:
                ns, is_naive = parse_time_text(s, _TIME_HINT)
        except ValueError as exc:
            problems.add(lines[i], f"column {name!r}: {exc}")
            continue
        if not lo_ns <= ns <= hi_ns:
            problems.add(lines[i], f"column {name!r}: {s!r} is outside the supported years "
                                   f"{MIN_YEAR}-{MAX_YEAR}")
            continue
        out[i] = ns
        naive[i] = is_naive
    if naive.any() and zone.key != "UTC":
        out[naive] = _localize(out[naive], zone)
    return out


def _strptime(s: str, fmt: str) -> tuple[int, bool]:
    try:
        t = _dt.datetime.strptime(s, fmt)
    except ValueError:
        raise ValueError(f"{s!r} does not match --time-format {fmt!r}") from None
    return to_epoch_ns(t), t.utcoffset() is None  # naive: the wall-clock time as if UTC


def _localize(local_ns: np.ndarray, zone: zoneinfo.ZoneInfo) -> np.ndarray:
    """Naive local times -> UTC. The offset is looked up once per distinct local hour;
    a time in a DST gap or overlap takes the first (pre-transition) offset, as zoneinfo's
    fold=0 does."""
    hours = local_ns // (3600 * NS)
    uniq, inverse = unique_inverse(hours)
    offsets = np.empty(len(uniq), dtype=np.int64)
    epoch = _dt.datetime(1970, 1, 1)
    for i, h in enumerate(uniq.tolist()):
        local = (epoch + _dt.timedelta(hours=h)).replace(tzinfo=zone)
        off = local.utcoffset()
        offsets[i] = int(off.total_seconds()) * NS if off is not None else 0
    out: np.ndarray = local_ns - offsets[inverse]
    return out


def _parse_column(values: list[str], lines: list[int], name: str, want: Any,
                  problems: _Problems) -> np.ndarray:
    stripped = [v.strip() for v in values]
    if want is not None:
        dt = np.dtype(want)
        if dt.kind == "U":
            width = dt.itemsize // 4
            for i, v in enumerate(stripped):
                if len(v) > width:
                    problems.add(lines[i], f"column {name!r}: {v!r} is longer than the "
                                           f"{width} characters the bucket stores")
            return np.array(stripped, dtype=dt)
        return _numbers(stripped, lines, name, dt, problems)
    if all(_INT.match(v) for v in stripped):
        return _numbers(stripped, lines, name, np.dtype(np.int64), problems)
    if stripped and not any(_is_number(v) for v in stripped):
        width = max(len(v) for v in stripped)
        raise CsvProblem(f"column {name!r} holds text (line {lines[0]}: {stripped[0]!r}); give it "
                         f"a type with --types {name}=U{max(width, 8)} or leave it out with "
                         f"--skip {name}")
    return _numbers(stripped, lines, name, np.dtype(np.float64), problems)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _numbers(values: list[str], lines: list[int], name: str, dt: np.dtype,
             problems: _Problems) -> np.ndarray:
    try:
        if dt.kind in "iu":
            if all(_INT.match(v) for v in values):
                ints = [int(v) for v in values]
                info = np.iinfo(dt)
                if ints and (min(ints) < info.min or max(ints) > info.max):
                    raise OverflowError
                return np.array(values, dtype=np.int64 if dt.kind == "i" else np.uint64) \
                    .astype(dt)
            raise ValueError
        return np.array(values, dtype=dt)
    except (ValueError, OverflowError):
        pass
    out = np.zeros(len(values), dtype=dt)
    for i, v in enumerate(values):
        what = "an integer" if dt.kind in "iu" else "a number"
        if dt.kind in "iu":
            ok = bool(_INT.match(v))
            if ok:
                info = np.iinfo(dt)
                if not info.min <= int(v) <= info.max:
                    problems.add(lines[i], f"column {name!r}: {v} does not fit "
                                           f"{dt.str.lstrip('<|')} ({info.min}..{info.max})")
                    continue
                out[i] = int(v)
                continue
        else:
            try:
                out[i] = float(v)
                continue
            except ValueError:
                pass
        shown = "an empty value" if not v else repr(v)
        problems.add(lines[i], f"column {name!r}: {shown} is not {what}")
    return out


def _unify(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=np.float64)
    if len({p.dtype for p in parts}) > 1:
        kinds = {p.dtype.kind for p in parts}
        if kinds <= {"i", "f"}:
            parts = [p.astype(np.float64) for p in parts]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


# -- writing -------------------------------------------------------------------------------
def import_csv(db: Any, key: str, path: str, *, variable: bool | None = None,
               time_column: str | None = None, time_format: str | None = None,
               timezone: str | None = None, epoch_unit: str = "s",
               types: Mapping[str, Any] | None = None, skip: tuple[str, ...] = (),
               progress: bool = False) -> ImportResult:
    """Validate all of `path`, then write it to bucket `key` (created on first write).

    Times without an offset are read in `timezone` (default: the database's). Raises
    CsvProblem (nothing written) for bad input; engine errors propagate unchanged."""
    from mkts import engine

    existing: dict[str, Any] | None
    try:
        existing = db.info(key)
    except engine.BucketNotFoundError:
        existing = None
    col_types: dict[str, Any] | None = None
    if existing is not None:
        col_types = dict(existing["columns"])
        col_types.pop("Epoch", None)
        col_types.pop("Nanoseconds", None)
        if variable is not None and (existing["kind"] == "variable") != variable:
            raise CsvProblem(f"bucket {key} exists and is {existing['kind']}; drop --ticks "
                             "to follow the bucket")
        variable = existing["kind"] == "variable"
        if types:
            fixed = ", ".join(f"{c}={t}" for c, t in col_types.items())
            raise CsvProblem(f"bucket {key} exists with columns {fixed}; drop --types")
    data = read_csv(path, time_column=time_column, time_format=time_format,
                    timezone=timezone or db.timezone, epoch_unit=epoch_unit, schema=col_types,
                    hints=None if col_types is not None else types, skip=skip,
                    progress=progress)
    epoch_ns = data.epoch_ns
    nanos = data.columns.pop("Nanoseconds", None)
    if nanos is not None:
        if variable is False or (variable is None and existing is None):
            raise CsvProblem(f"{path} has a Nanoseconds column; import tick data with --ticks")
        if len(nanos) and (int(nanos.min()) < 0 or int(nanos.max()) >= NS):
            raise CsvProblem("column 'Nanoseconds' must hold 0..999999999")
        epoch_ns = epoch_ns + nanos.astype(np.int64)
    if not data.columns:
        raise CsvProblem(f"{path} has no value columns besides {data.time_column!r}")
    n = len(epoch_ns)
    if n == 0:
        return ImportResult(0, 0, existing is None)
    cols: dict[str, np.ndarray] = {"Epoch": epoch_ns.view("datetime64[ns]")}
    cols.update(data.columns)
    row_bytes = 16 + sum(a.dtype.itemsize for a in data.columns.values())
    per_txn = max(1, TXN_BYTES // row_bytes)
    txns = -(-n // per_txn)
    with progress_bar(n, "writing", unit="row", enabled=progress and txns > 1) as bar:
        for start in range(0, n, per_txn):
            part = {c: a[start : start + per_txn] for c, a in cols.items()}
            db.write(key, part, variable=variable if existing is None else None)
            bar.update(len(part["Epoch"]))
    shown = {c: np.dtype(a.dtype).str.lstrip("<|") for c, a in data.columns.items()}
    return ImportResult(n, txns, existing is None, shown)
