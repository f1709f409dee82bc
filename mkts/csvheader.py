"""CSV import, the header: the delimiter (detected or given), the time column (or a Date
and a Time column), the key column, renames and skipped columns, and the canonical value
column names. No rows; csvreader reads them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mkts.csvvalues import CsvProblem

TIME_COLUMNS = ("epoch", "time", "timestamp", "datetime", "date", "ts")
# Column names matched in any case (`open` -> `Open`); prices are f8 in a new bucket.
KNOWN_COLUMNS = ("Open", "High", "Low", "Close", "Volume", "Nanoseconds")
PRICE_COLUMNS = ("Open", "High", "Low", "Close")
DELIMITERS = (",", ";", "\t", "|")


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
