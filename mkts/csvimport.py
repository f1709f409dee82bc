"""`mkts import KEY FILE.csv`: the import driver. Reads a CSV file (csvreader: header in
csvheader, values in csvvalues), then writes it (records from csvrecords) under the
all-or-nothing rule: every row is checked before anything is written.

One file may also hold several buckets: a symbol column (`--symbol-column`, with a KEY whose
symbol is `*`) or a column of whole bucket keys (`--key-column`, the multi-bucket CSV that
`mkts query PATTERN --csv` prints). Each bucket then takes only its own columns.

Transactions: the rows go in as one transaction when they fit in `TXN_BYTES`; a larger file
is written in consecutive transactions of at most that size, each all-or-nothing (see
docs/cli.md "mkts import KEY FILE.csv [options]"). The database itself lives in `engine`; this module only calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mkts.csvheader import DELIMITERS, KNOWN_COLUMNS, PRICE_COLUMNS, TIME_COLUMNS
from mkts.csvreader import read_csv, read_csv_buckets
from mkts.csvrecords import (
    BucketResult,
    ImportResult,
    _existing,
    _intervals,
    _records,
    _same_types,
    _shown,
    _span,
    _value_types,
)
from mkts.csvvalues import MAX_REPORTED, CsvData, CsvProblem
from mkts.plugins.progress import progress_bar

__all__ = ["CsvProblem", "CsvData", "read_csv", "read_csv_buckets", "import_csv",
           "ImportResult", "BucketResult", "TIME_COLUMNS", "KNOWN_COLUMNS", "PRICE_COLUMNS",
           "DELIMITERS", "TXN_BYTES", "MAX_REPORTED"]

TXN_BYTES = 256 << 20  # rows per transaction are bounded by this much record data


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
