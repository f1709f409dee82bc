"""CSV import, the file: reading a whole CSV file, a chunk of rows at a time, into validated
columns per bucket (`read_csv`, `read_csv_buckets`), every row checked before anything is
returned. Writes nothing; csvimport drives the import."""

from __future__ import annotations

import csv
import io
import os
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from mkts.csvheader import PRICE_COLUMNS, _canonical_for, _delimiter, _find, _layout
from mkts.csvvalues import (
    _CHUNK_ROWS,
    _UNITS,
    CsvData,
    CsvProblem,
    _parse_column,
    _parse_times,
    _Problems,
)
from mkts.engine.schema import MAX_STRING_CHARS
from mkts.plugins.progress import Progress, progress_bar


def _counting_lines(fh: io.TextIOBase, progress: Progress) -> Iterator[str]:
    for line in fh:
        progress.update(len(line))
        yield line


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
