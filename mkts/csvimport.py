"""`mkts import KEY FILE.csv`: read a CSV file with a header row into validated columns,
then write them. Owns parsing (header names, delimiters, times in common formats, numbers,
text) and the all-or-nothing rule: every row is checked before anything is written.

One file may also hold several buckets: a symbol column (`--symbol-column`, with a KEY whose
symbol is `*`) or a column of whole bucket keys (`--key-column`, the multi-bucket CSV that
`mkts query PATTERN --csv` prints). Each bucket then takes only its own columns.

Transactions: the rows go in as one transaction when they fit in `TXN_BYTES`; a larger file
is written in consecutive transactions of at most that size, each all-or-nothing (see
docs/cli.md "mkts import KEY FILE.csv [options]"). The database itself lives in `engine`; this module only calls it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import io
import math
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mkts.engine.schema import MAX_STRING_CHARS
from mkts.engine.timeutil import (
    MAX_YEAR,
    MIN_YEAR,
    NS,
    parse_time_text,
    to_epoch_ns,
    wall_to_utc,
)
from mkts.plugins.progress import Progress, progress_bar

__all__ = ["CsvProblem", "CsvData", "read_csv", "read_csv_buckets", "import_csv",
           "ImportResult", "BucketResult", "TIME_COLUMNS", "KNOWN_COLUMNS", "PRICE_COLUMNS",
           "DELIMITERS", "TXN_BYTES", "MAX_REPORTED"]

TIME_COLUMNS = ("epoch", "time", "timestamp", "datetime", "date", "ts")
# Column names matched in any case (`open` -> `Open`); prices are f8 in a new bucket.
KNOWN_COLUMNS = ("Open", "High", "Low", "Close", "Volume", "Nanoseconds")
PRICE_COLUMNS = ("Open", "High", "Low", "Close")
DELIMITERS = (",", ";", "\t", "|")
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
class BucketResult:
    """What one bucket got: rows read, and for bar buckets the distinct intervals written
    (rows - intervals rows repeated an interval; the last of them wins)."""

    key: str
    rows: int
    created: bool
    intervals: int | None = None
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return 0 if self.intervals is None else self.rows - self.intervals


@dataclass
class ImportResult:
    rows: int
    transactions: int
    created: bool
    columns: dict[str, str] = field(default_factory=dict)
    buckets: list[BucketResult] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(b.duplicates for b in self.buckets)


# -- reading -------------------------------------------------------------------------------
class _Problems:
    """Bad rows; the first MAX_REPORTED problems in line order (then header column order)."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int, str]] = []
        self.bad_rows: set[int] = set()

    def add(self, line: int, text: str, order: int = 0) -> None:
        self.bad_rows.add(line)
        self.entries.append((line, order, text))
        if len(self.entries) > 4 * MAX_REPORTED + _CHUNK_ROWS:
            self.trim()

    def trim(self) -> None:
        self.entries.sort(key=lambda e: (e[0], e[1]))
        del self.entries[MAX_REPORTED:]

    @property
    def lines(self) -> list[str]:
        self.trim()
        return [f"line {line}: {text}" for line, _, text in self.entries]

    def raise_if_any(self, path: str) -> None:
        if self.bad_rows:
            n = len(self.bad_rows)
            raise CsvProblem(f"{n} bad row{'s' if n != 1 else ''} in {path}; nothing was "
                             "written", self.lines, n)


def _counting_lines(fh: io.TextIOBase, progress: Progress) -> Iterator[str]:
    for line in fh:
        progress.update(len(line))
        yield line


def _delimiter(first_line: str, wanted: str | None, path: str) -> str:
    if wanted is not None:
        named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
        d = named.get(wanted.lower(), wanted)
        if len(d) != 1:
            raise CsvProblem(f"--delimiter {wanted!r} must be one character (or tab)")
        return d
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # ties: the first, ',' before the others
    return best if counts[best] else ","


def _find(header: list[str], name: str) -> str | None:
    """The header name equal to `name`, exactly or else in any case."""
    if name in header:
        return name
    low = [h for h in header if h.lower() == name.lower()]
    return low[0] if len(low) == 1 else None


@dataclass
class _Layout:
    """What the header says: the time source, the key source and the value columns."""

    index: dict[str, int]
    time_name: str  # as shown in messages: "time" or "Date+Time"
    time_cols: list[int]  # one column, or a date column and a time column (combined)
    value_cols: list[str]  # canonical names, in file order
    key_col: int | None


def _layout(header: list[str], path: str, *, time_column: str | None,
            rename: Mapping[str, str], skip: tuple[str, ...], key_column: str | None,
            canonical: Callable[[str], str]) -> _Layout:
    header = list(header)
    for old, new in rename.items():
        found = _find(header, old)
        if found is None:
            raise CsvProblem(f"{path}: --rename {old}={new}: {old!r} is not a column of the "
                             f"header ({', '.join(header)})")
        header[header.index(found)] = new
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise CsvProblem(f"{path}: column {dup[0]!r} appears twice in the header")
    index = {h: i for i, h in enumerate(header)}
    if time_column is not None:
        found = _find(header, time_column)
        if found is None:
            raise CsvProblem(f"{path}: --time-column {time_column!r} is not in the header "
                             f"({', '.join(header)})")
        tcols, tname = [found], found
    else:
        date, clock = _find(header, "date"), _find(header, "time")
        if date is not None and clock is not None and _find(header, "epoch") is None:
            tcols, tname = [date, clock], f"{date}+{clock}"
        else:
            lowered = {h.lower(): h for h in reversed(header)}
            first = next((lowered[n] for n in TIME_COLUMNS if n in lowered), None)
            if first is None:
                raise CsvProblem(f"{path}: no time column; name one {', '.join(TIME_COLUMNS)} "
                                 "(any case), or Date and Time columns, or pass --time-column "
                                 "NAME")
            tcols, tname = [first], first
    kcol = None
    if key_column is not None:
        found = _find(header, key_column)
        if found is None:
            raise CsvProblem(f"{path}: {key_column!r} is not a column of the header "
                             f"({', '.join(header)})")
        kcol = found
    skipped = set()
    for s in skip:
        found = _find(header, s)
        if found is None:
            raise CsvProblem(f"{path}: --skip {s!r} is not a column of the header")
        skipped.add(found)
    taken = set(tcols) | skipped | ({kcol} if kcol else set())
    values: list[str] = []
    for h in header:
        if h in taken:
            continue
        name = canonical(h)
        if name in values:
            raise CsvProblem(f"{path}: columns {h!r} and {name!r} both mean {name!r}; "
                             f"rename one with --rename {h}=NEW or leave it out with --skip {h}")
        values.append(name)
        index[name] = index[h]
    if not values:
        raise CsvProblem(f"{path} has no value columns besides {tname!r}")
    return _Layout(index, tname, [index[t] for t in tcols], values,
                   None if kcol is None else index[kcol])


def _canonical_for(schema_names: list[str]) -> Callable[[str], str]:
    known = {n.lower(): n for n in KNOWN_COLUMNS}
    known.update({n.lower(): n for n in schema_names})

    def canonical(name: str) -> str:
        return name if name in schema_names else known.get(name.lower(), name)
    return canonical


def read_csv(path: str, *, time_column: str | None = None, time_format: str | None = None,
             timezone: str = "UTC", epoch_unit: str = "s",
             schema: Mapping[str, Any] | None = None, hints: Mapping[str, Any] | None = None,
             skip: tuple[str, ...] = (), rename: Mapping[str, str] | None = None,
             delimiter: str | None = None, progress: bool = False) -> CsvData:
    """Parse and validate the whole file; raise CsvProblem listing bad rows (by line).

    Header names match `KNOWN_COLUMNS` and `schema`'s names in any case; `rename` maps
    others first. `schema` ({name: dtype}, the existing bucket's) must match the file's value
    columns exactly; otherwise `hints` types some columns, `PRICE_COLUMNS` are f8, and the
    rest become int64 when every value is an integer, float64 when every value is a number,
    else text as wide as the longest value. Times without an offset are read in `timezone`;
    numbers in the time column are epoch `epoch_unit`s."""
    out = _read_path(path, time_column=time_column, time_format=time_format,
                     timezone=timezone, epoch_unit=epoch_unit, skip=skip, rename=rename,
                     delimiter=delimiter, progress=progress, hints=dict(hints or {}),
                     key_column=None, to_key=None,
                     schema_for=lambda _key: None if schema is None else dict(schema))
    return out[""]


def read_csv_buckets(path: str, key_column: str, to_key: Callable[[str], str], *,
                     schema_for: Callable[[str], dict[str, Any] | None],
                     time_column: str | None = None, time_format: str | None = None,
                     timezone: str = "UTC", epoch_unit: str = "s",
                     hints: Mapping[str, Any] | None = None, skip: tuple[str, ...] = (),
                     rename: Mapping[str, str] | None = None, delimiter: str | None = None,
                     progress: bool = False) -> dict[str, CsvData]:
    """As read_csv, for a file whose `key_column` says (through `to_key`) which bucket each
    row belongs to: {key: CsvData} in order of first appearance. A bucket takes the columns
    that are not empty for all of its rows; `schema_for(key)` is an existing bucket's
    {name: dtype} (its columns must all be there) or None."""
    return _read_path(path, time_column=time_column, time_format=time_format,
                      timezone=timezone, epoch_unit=epoch_unit, skip=skip, rename=rename,
                      delimiter=delimiter, progress=progress, hints=dict(hints or {}),
                      key_column=key_column, to_key=to_key, schema_for=schema_for)


def _read_path(path: str, **kw: Any) -> dict[str, CsvData]:
    if kw["epoch_unit"] not in _UNITS:
        raise CsvProblem(f"epoch unit {kw['epoch_unit']!r} must be one of {', '.join(_UNITS)}")
    try:
        kw["timezone"] = zoneinfo.ZoneInfo(kw["timezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CsvProblem(f"timezone {kw['timezone']!r} is not an IANA time zone name") from None
    try:
        size = os.path.getsize(path)
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CsvProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    progress = kw.pop("progress")
    bar = progress_bar(size, f"reading {os.path.basename(path)}", bytes_=True, enabled=progress)
    try:
        return _Reader(path, **kw).read(fh, bar)
    except UnicodeDecodeError as exc:
        raise CsvProblem(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise CsvProblem(f"{path} is not valid CSV: {exc}") from None
    finally:
        fh.close()
        bar.close()


class _Bucket:
    """One bucket's parsed parts, chunk by chunk."""

    def __init__(self, key: str, schema: dict[str, Any] | None, first_line: int) -> None:
        self.key = key
        self.schema = schema
        self.first_line = first_line
        self.times: list[np.ndarray] = []
        # per column: parsed parts; None stands for a chunk where the column was empty
        self.parts: dict[str, list[tuple[np.ndarray | None, np.ndarray]]] = {}


class _Reader:
    def __init__(self, path: str, *, time_column: str | None, time_format: str | None,
                 timezone: zoneinfo.ZoneInfo, epoch_unit: str, skip: tuple[str, ...],
                 rename: Mapping[str, str] | None, delimiter: str | None,
                 hints: dict[str, Any], key_column: str | None,
                 to_key: Callable[[str], str] | None,
                 schema_for: Callable[[str], dict[str, Any] | None]) -> None:
        self.path = path
        self.time_column = time_column
        self.time_format = time_format
        self.zone = timezone
        self.epoch_unit = epoch_unit
        self.skip = skip
        self.rename = dict(rename or {})
        self.delimiter = delimiter
        self.hints = hints
        self.key_column = key_column
        self.to_key = to_key
        self.schema_for = schema_for
        self.multi = key_column is not None
        self.problems = _Problems()
        self.buckets: dict[str, _Bucket] = {}
        self.bad_keys: dict[str, str] = {}

    def read(self, fh: Any, bar: Progress) -> dict[str, CsvData]:
        path = self.path
        lines = _counting_lines(fh, bar)
        first = next(lines, None)
        if first is None:
            raise CsvProblem(f"{path} is empty; it needs a header row naming the columns")
        delim = _delimiter(first, self.delimiter, path)

        def all_lines() -> Iterator[str]:
            yield first
            yield from lines
        reader = csv.reader(all_lines(), delimiter=delim)
        header = [h.strip() for h in next(reader)]
        if not any(header):
            raise CsvProblem(f"{path}: the first line must be a header row naming the columns")
        single_schema = None if self.multi else self.schema_for("")
        canonical = _canonical_for(list(single_schema or {}))
        self.layout = lay = _layout(header, path, time_column=self.time_column,
                                    rename=self.rename, skip=self.skip,
                                    key_column=self.key_column, canonical=canonical)
        if not self.multi:
            self._check_columns(single_schema, lay.value_cols)
            self.buckets[""] = _Bucket("", single_schema, 2)
        self.hints = {_find(lay.value_cols, h) or h: t for h, t in self.hints.items()}
        unknown_hint = [h for h in self.hints if h not in lay.value_cols]
        if unknown_hint:
            raise CsvProblem(f"{path}: --dtype names column {unknown_hint[0]!r}, which is not "
                             "a value column of the file")
        width = len(header)
        chunk: list[tuple[int, list[str]]] = []
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != width:
                self.problems.add(line, f"has {len(row)} fields; the header has {width}", -1)
                continue
            chunk.append((line, row))
            if len(chunk) >= _CHUNK_ROWS:
                self._flush(chunk)
                chunk = []
        if chunk:
            self._flush(chunk)
        self.problems.raise_if_any(path)
        out = {}
        for key, b in self.buckets.items():
            out[key] = self._finish(b)
        self.problems.raise_if_any(path)
        return out

    def _check_columns(self, schema: dict[str, Any] | None, present: list[str],
                       key: str = "") -> None:
        if schema is None:
            return
        path = self.path
        where = f"bucket {key}" if key else "the bucket"
        extra = [c for c in present if c not in schema and c != "Nanoseconds"]
        if extra:
            raise CsvProblem(f"{path}: column {extra[0]!r} is not in {where} (it has "
                             f"{', '.join(schema) or 'no columns'}); map it with --rename "
                             f"{extra[0]}=NAME or drop it with --skip {extra[0]}")
        missing = [c for c in schema if c not in present]
        if missing:
            raise CsvProblem(f"{path}: {where}'s column {missing[0]!r} is not in the file")

    def _flush(self, chunk: list[tuple[int, list[str]]]) -> None:
        lay = self.layout
        lines = np.array([ln for ln, _ in chunk], dtype=np.int64)
        if len(lay.time_cols) == 1:
            tv = [row[lay.time_cols[0]] for _, row in chunk]
        else:
            d, t = lay.time_cols
            tv = [f"{row[d].strip()} {row[t].strip()}" for _, row in chunk]
        times = _parse_times(tv, lines.tolist(), self.time_format, self.zone, self.epoch_unit,
                             self.problems, lay.time_name)
        groups: dict[str, list[int]] = {}
        if lay.key_col is None:
            groups[""] = list(range(len(chunk)))
        else:
            for i, (line, row) in enumerate(chunk):
                key = self._key(row[lay.key_col].strip(), line)
                if key is not None:
                    groups.setdefault(key, []).append(i)
        for key, idx in groups.items():
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = _Bucket(key, self.schema_for(key), int(lines[idx[0]]))
            sel = np.array(idx, dtype=np.int64)
            b.times.append(times[sel])
            blines = lines[sel]
            for order, c in enumerate(lay.value_cols, start=1):
                col = lay.index[c]
                vals = [chunk[i][1][col].strip() for i in idx]
                parts = b.parts.setdefault(c, [])
                want = self.hints.get(c) if b.schema is None else b.schema.get(c)
                if want is None and not any(vals):  # decided when the file is read
                    parts.append((None, blines))
                    continue
                if self.multi and b.schema is not None and c not in b.schema \
                        and c != "Nanoseconds":
                    bad = next(i for i, v in enumerate(vals) if v)
                    self.problems.add(int(blines[bad]), f"column {c!r}: bucket {key} has no "
                                      "such column", order)
                    parts.append((None, blines))
                    continue
                if c == "Nanoseconds" and want is None:
                    want = np.dtype("<i4")
                if want is None and c in PRICE_COLUMNS:
                    want = np.dtype(np.float64)
                parts.append((_parse_column(vals, blines.tolist(), c, want, self.problems,
                                            order), blines))

    def _key(self, text: str, line: int) -> str | None:
        from mkts import engine

        msg = self.bad_keys.get(text)
        if msg is None:
            assert self.to_key is not None
            try:
                key = self.to_key(text)
                return str(engine.parse_key(key))
            except (ValueError, engine.MktsError) as exc:
                msg = self.bad_keys[text] = (
                    f"column {self.key_column!r}: {text!r} is not a bucket key ({exc})" if text
                    else f"column {self.key_column!r}: an empty value names no bucket")
        self.problems.add(line, msg, -1)
        return None

    def _finish(self, b: _Bucket) -> CsvData:
        columns: dict[str, np.ndarray] = {}
        for c, parts in b.parts.items():
            if all(a is None for a, _ in parts):
                if not self.multi:
                    raise CsvProblem(f"{self.path}: column {c!r} is empty on every row; leave "
                                     f"it out with --skip {c} or give it a type with --dtype")
                continue  # empty for all of this bucket's rows: not one of its columns
            arr = self._unify(c, parts)
            if arr is not None:
                columns[c] = arr
        if self.multi:
            try:
                self._check_columns(b.schema, list(columns), b.key)
            except CsvProblem as exc:
                self.problems.add(b.first_line, exc.summary.split(": ", 1)[1], -1)
        epoch_ns = np.concatenate(b.times) if b.times else np.zeros(0, np.int64)
        return CsvData(epoch_ns, columns, self.layout.time_name)

    def _unify(self, name: str, parts: list[tuple[np.ndarray | None, np.ndarray]]
               ) -> np.ndarray | None:
        arrays = [a for a, _ in parts if a is not None]
        kinds = {a.dtype.kind for a in arrays}
        if "U" in kinds and kinds != {"U"}:
            first = next(int(ln[0]) for a, ln in parts if a is not None and a.dtype.kind == "U")
            self.problems.add(first, f"column {name!r} holds text here and numbers on other "
                              f"lines; give it a type with --dtype {name}=U<n> or "
                              f"{name}=f8")
            return None
        if kinds == {"U"}:
            width = max(a.dtype.itemsize // 4 for a in arrays)
            if width > MAX_STRING_CHARS:
                raise CsvProblem(f"{self.path}: column {name!r} holds text of up to {width} "
                                 f"characters; string columns hold at most {MAX_STRING_CHARS}"
                                 f" (U{MAX_STRING_CHARS}): shorten it or --skip {name}")
            dt = np.dtype(f"<U{max(width, 1)}")
            full = [a if a is not None else np.full(len(ln), "", dtype=dt) for a, ln in parts]
            return np.concatenate([a.astype(dt) for a in full]) if full \
                else np.zeros(0, dtype=dt)
        for a, ln in parts:
            if a is None:  # empty in some chunks of a bucket, numbers in others
                for line in ln.tolist():
                    self.problems.add(int(line), f"column {name!r}: an empty value is not a "
                                      "number")
        if any(a is None for a, _ in parts):
            return None
        if not arrays:
            return np.zeros(0, dtype=np.float64)
        if len({a.dtype for a in arrays}) > 1 and kinds <= {"i", "f"}:
            arrays = [a.astype(np.float64) for a in arrays]
        return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


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
        out[naive] = wall_to_utc(out[naive], zone)
    return out


def _strptime(s: str, fmt: str) -> tuple[int, bool]:
    try:
        t = _dt.datetime.strptime(s, fmt)
    except ValueError:
        raise ValueError(f"{s!r} does not match --time-format {fmt!r}") from None
    return to_epoch_ns(t), t.utcoffset() is None  # naive: the wall-clock time as if UTC


def _parse_column(values: list[str], lines: list[int], name: str, want: Any,
                  problems: _Problems, order: int = 0) -> np.ndarray:
    """`values` (stripped) as `want`, or inferred: i8 if every value is an integer, f8 if
    every value is a number, else text as wide as the longest value (empty values are
    errors in number columns)."""
    if want is not None:
        dt = np.dtype(want)
        if dt.kind == "U":
            width = dt.itemsize // 4
            for i, v in enumerate(values):
                if len(v) > width:
                    problems.add(lines[i], f"column {name!r}: {v!r} has {len(v)} characters; "
                                 f"the bucket stores at most {width} (U{width})", order)
            return np.array(values, dtype=dt)
        return _numbers(values, lines, name, dt, problems, order)
    if all(_INT.match(v) for v in values):
        return _numbers(values, lines, name, np.dtype(np.int64), problems, order)
    if values and not any(_is_number(v) for v in values):
        width = max(1, max(len(v) for v in values))
        return np.array(values, dtype=f"<U{width}")
    return _numbers(values, lines, name, np.dtype(np.float64), problems, order)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _whole(v: str) -> int | None:
    """The integer a number text stands for exactly (`100`, `100.0`, `1e3`), else None."""
    if _INT.match(v):
        return int(v)
    if not _FLOAT.match(v):
        return None
    try:
        d = decimal.Decimal(v)
    except decimal.InvalidOperation:
        return None
    return int(d) if d == d.to_integral_value() else None


def _numbers(values: list[str], lines: list[int], name: str, dt: np.dtype,
             problems: _Problems, order: int = 0) -> np.ndarray:
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
        if dt.kind in "iu":
            whole = _whole(v)
            if whole is not None:
                info = np.iinfo(dt)
                if not info.min <= whole <= info.max:
                    problems.add(lines[i], f"column {name!r}: {v} does not fit "
                                           f"{dt.str.lstrip('<|')} ({info.min}..{info.max})",
                                 order)
                    continue
                out[i] = whole
                continue
            what = "an integer" if not _is_number(v) or not v else \
                "an integer (the column stores integers and the value has a fraction)"
        else:
            try:
                out[i] = float(v)
                continue
            except ValueError:
                pass
            what = "a number"
        shown = "an empty value" if not v else repr(v)
        problems.add(lines[i], f"column {name!r}: {shown} is not {what}", order)
    return out


# -- writing -------------------------------------------------------------------------------
def _existing(db: Any, key: str) -> dict[str, Any] | None:
    from mkts import engine

    try:
        info: dict[str, Any] = db.info(key)
    except engine.BucketNotFoundError:
        return None
    return info


def _value_types(info: dict[str, Any]) -> dict[str, Any]:
    cols = dict(info["columns"])
    cols.pop("Epoch", None)
    cols.pop("Nanoseconds", None)
    return cols


def _records(path: str, key: str, data: CsvData, variable: bool | None,
             created: bool) -> tuple[dict[str, np.ndarray], bool]:
    """The columns to write (Epoch as datetime64[ns], Nanoseconds folded in) and whether
    the bucket is a tick bucket."""
    epoch_ns = data.epoch_ns
    nanos = data.columns.pop("Nanoseconds", None)
    if nanos is not None:
        if variable is False or (variable is None and not created):
            raise CsvProblem(f"{path} has a Nanoseconds column; import tick data with "
                             "--ticks" if created else f"{path} has a Nanoseconds column "
                             f"but {key} is a bar bucket")
        if len(nanos) and (int(nanos.min()) < 0 or int(nanos.max()) >= NS):
            raise CsvProblem("column 'Nanoseconds' must hold 0..999999999")
        # The time gives the second, Nanoseconds the rest; a time that already carries the
        # same fraction (`mkts query --csv` prints both) is the same instant.
        fraction = epoch_ns % NS
        nanos = nanos.astype(np.int64)
        clash = (fraction != 0) & (fraction != nanos)
        if clash.any():
            raise CsvProblem(f"{path}: the fraction of a second of a time and its "
                             f"Nanoseconds column disagree ({int(fraction[clash][0])} ns vs "
                             f"{int(nanos[clash][0])})" + (f" for {key}" if key else ""))
        epoch_ns = epoch_ns - fraction + nanos
        variable = True
    if not data.columns:
        raise CsvProblem(f"{path} has no value columns besides {data.time_column!r}"
                         + (f" for {key}" if key else ""))
    cols: dict[str, np.ndarray] = {"Epoch": epoch_ns.view("datetime64[ns]")}
    cols.update(data.columns)
    return cols, bool(variable)


def _intervals(db: Any, key: str, epoch_ns: np.ndarray) -> int:
    from mkts.engine.keys import parse_key

    if not len(epoch_ns):
        return 0
    years, slots = db.calendar.slots(epoch_ns // NS, parse_key(key).tf)
    return len(set(zip(years.tolist(), slots.tolist(), strict=True)))


def _shown(data: Mapping[str, np.ndarray]) -> dict[str, str]:
    return {c: np.dtype(a.dtype).str.lstrip("<|") for c, a in data.items() if c != "Epoch"}


def import_csv(db: Any, key: str, path: str, *, variable: bool | None = None,
               time_column: str | None = None, time_format: str | None = None,
               timezone: str | None = None, epoch_unit: str = "s",
               types: Mapping[str, Any] | None = None, skip: tuple[str, ...] = (),
               rename: Mapping[str, str] | None = None, delimiter: str | None = None,
               symbol_column: str | None = None, key_column: str | None = None,
               progress: bool = False, replace: bool = False) -> ImportResult:
    """Validate all of `path`, then write it to bucket `key` (created on first write).

    With `replace`, the rows each bucket already holds in the file's span for it (its first
    to its last time) are removed in the transaction that writes the first rows
    (`Database.update`): a corrected file replaces what was there instead of adding
    duplicate ticks. A file of one transaction is replaced atomically.

    With `symbol_column` (and a `key` whose symbol is `*`) or `key_column` (and `key` None
    or `*/*/*`) the file holds several buckets, written together, one transaction per chunk
    of at most TXN_BYTES. Times without an offset are read in `timezone` (default: the
    database's). Raises CsvProblem (nothing written) for bad input; engine errors propagate
    unchanged."""
    opts = dict(time_column=time_column, time_format=time_format,
                timezone=timezone or db.timezone, epoch_unit=epoch_unit, skip=skip,
                rename=rename, delimiter=delimiter, progress=progress)
    if symbol_column is not None or key_column is not None:
        return _import_many(db, key, path, variable=variable, types=types,
                            symbol_column=symbol_column, key_column=key_column,
                            replace=replace, **opts)
    if "*" in key:
        raise CsvProblem(f"key {key!r} has a '*': to import a file of several symbols, name "
                         "the symbol column with --symbol-column (or the key column with "
                         "--key-column)")
    existing = _existing(db, key)
    col_types: dict[str, Any] | None = None
    if existing is not None:
        col_types = _value_types(existing)
        if variable is not None and (existing["kind"] == "variable") != variable:
            raise CsvProblem(f"bucket {key} exists and is {existing['kind']}; drop --ticks "
                             "to follow the bucket")
        variable = existing["kind"] == "variable"
        if types:
            fixed = ", ".join(f"{c}={t}" for c, t in col_types.items())
            raise CsvProblem(f"bucket {key} exists with columns {fixed}; drop --dtype")
    data = read_csv(path, schema=col_types, hints=None if col_types is not None else types,
                    **opts)  # type: ignore[arg-type]
    if existing is None and variable is None:
        variable = None if "Nanoseconds" not in data.columns else False
    n = len(data)
    if n == 0:
        return ImportResult(0, 0, existing is None)
    cols, is_ticks = _records(path, key, data, variable, existing is None)
    row_bytes = 16 + sum(a.dtype.itemsize for c, a in cols.items() if c != "Epoch")
    per_txn = max(1, TXN_BYTES // row_bytes)
    txns = -(-n // per_txn)
    with progress_bar(n, "writing", unit="row", enabled=progress and txns > 1) as bar:
        for start in range(0, n, per_txn):
            part = {c: a[start : start + per_txn] for c, a in cols.items()}
            if replace and start == 0:
                lo, hi = _span(cols)
                db.update(key, part, start=lo, end=hi,
                          variable=is_ticks if existing is None else None)
            else:
                db.write(key, part, variable=is_ticks if existing is None else None)
            bar.update(len(part["Epoch"]))
    shown = _shown(cols)
    ivals = None if is_ticks else _intervals(db, key, cols["Epoch"].view(np.int64))
    return ImportResult(n, txns, existing is None, shown,
                        [BucketResult(key, n, existing is None, ivals, shown)])


def _span(cols: Mapping[str, np.ndarray]) -> tuple[np.datetime64, np.datetime64]:
    """The first and last time of the rows (nanoseconds, ticks' Nanoseconds included)."""
    epochs = cols["Epoch"]
    if epochs.dtype.kind == "M":
        t = epochs.astype("datetime64[ns]").view(np.int64)
    else:
        t = epochs.astype(np.int64) * 1_000_000_000
    if "Nanoseconds" in cols:
        t = t + cols["Nanoseconds"].astype(np.int64)
    return np.datetime64(int(t.min()), "ns"), np.datetime64(int(t.max()), "ns")


def _same_types(new: list[CsvData]) -> None:
    """A column inferred as integers for one new bucket and as floats for another is f8 in
    both; a text column is as wide in all of them as its longest value anywhere."""
    names = {c for d in new for c in d.columns}
    for c in names:
        arrays = [d.columns[c] for d in new if c in d.columns]
        kinds = {a.dtype.kind for a in arrays}
        if kinds == {"i", "f"}:
            target = np.dtype(np.float64)
        elif kinds == {"U"}:
            target = max((a.dtype for a in arrays), key=lambda dt: dt.itemsize)
        else:
            continue
        for d in new:
            if c in d.columns and d.columns[c].dtype.kind in "iU":
                d.columns[c] = d.columns[c].astype(target)


def _import_many(db: Any, key: str | None, path: str, *, variable: bool | None,
                 types: Mapping[str, Any] | None, symbol_column: str | None,
                 key_column: str | None, replace: bool = False, **opts: Any) -> ImportResult:
    from mkts import engine

    if symbol_column is not None and key_column is not None:
        raise CsvProblem("give --symbol-column or --key-column, not both")
    if symbol_column is not None:
        parts = (key or "").split("/")
        if len(parts) != 3 or parts[0] != "*" or "*" in parts[1] + parts[2]:
            raise CsvProblem(f"with --symbol-column the key is '*/TIMEFRAME/TYPE' (e.g. "
                             f"'*/1Min/OHLCV'), not {key!r}")
        rest = "/".join(parts[1:])

        def to_key(text: str) -> str:
            if not text:
                raise ValueError("no symbol")
            return f"{text}/{rest}"
        column = symbol_column
    else:
        if key not in (None, "", "*/*/*"):
            raise CsvProblem(f"with --key-column the key is left out (or '*/*/*'), not {key!r}")

        def to_key(text: str) -> str:
            if not text:
                raise ValueError("no key")
            return text
        column = key_column  # type: ignore[assignment]
    infos: dict[str, dict[str, Any] | None] = {}

    def info(k: str) -> dict[str, Any] | None:
        if k not in infos:
            infos[k] = _existing(db, k)
        return infos[k]

    def schema_for(k: str) -> dict[str, Any] | None:
        i = info(k)
        return None if i is None else _value_types(i)

    datas = read_csv_buckets(path, column, to_key, schema_for=schema_for,
                             hints=types, **opts)
    _same_types([d for k, d in datas.items() if info(k) is None])
    buckets: dict[str, tuple[dict[str, np.ndarray], bool]] = {}
    for k, data in datas.items():
        existing = info(k)
        kind = None if existing is None else existing["kind"] == "variable"
        if kind is not None and variable is not None and kind != variable:
            raise CsvProblem(f"bucket {k} exists and is {existing['kind']}; "  # type: ignore[index]
                             "drop --ticks to follow the bucket")
        want = kind if kind is not None else (variable or None)
        buckets[k] = _records(path, k, data, want, existing is None)
    results = [BucketResult(k, len(cols["Epoch"]), info(k) is None,
                            None if ticks else _intervals(db, k, cols["Epoch"].view(np.int64)),
                            _shown(cols)) for k, (cols, ticks) in buckets.items()]
    n = sum(r.rows for r in results)
    if n == 0:
        return ImportResult(0, 0, False, buckets=results)
    for k, (cols, ticks) in buckets.items():  # new buckets first: each with its own kind
        if info(k) is None:
            try:
                db.create(k, _shown(cols), variable=ticks)
            except engine.MktsError as exc:
                raise CsvProblem(f"cannot create bucket {k}: {exc}") from None
    txns = 0
    pending: dict[str, dict[str, np.ndarray]] = {}
    size = 0
    with progress_bar(n, "writing", unit="row", enabled=opts.get("progress", False)) as bar:

        first = set(buckets) if replace else set()  # buckets whose span is still to clear

        def commit() -> None:
            nonlocal pending, size, txns
            if first & set(pending):
                with db.transaction() as tx:
                    for k, part in pending.items():
                        if k in first:
                            first.discard(k)
                            lo, hi = _span(buckets[k][0])
                            tx.update(k, part, start=lo, end=hi)
                        else:
                            tx.write(k, part)
            else:
                db.write_many(pending)
            bar.update(sum(len(p["Epoch"]) for p in pending.values()))
            txns += 1
            pending, size = {}, 0

        for k, (cols, _ticks) in buckets.items():
            row_bytes = 16 + sum(a.dtype.itemsize for c, a in cols.items() if c != "Epoch")
            rows = len(cols["Epoch"])
            start = 0
            while start < rows:
                room = (TXN_BYTES - size) // row_bytes
                if room < 1 and pending:
                    commit()
                    continue
                take = max(1, min(rows - start, room))
                pending[k] = {c: a[start : start + take] for c, a in cols.items()}
                size += take * row_bytes
                start += take
        if pending:
            commit()
    return ImportResult(n, txns, any(r.created for r in results), buckets=results)
