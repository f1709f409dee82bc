"""The read half of the `Database` API: read, query, resample, list_keys, list_symbols and
info, on engine/query.py, with query functions applied (engine/functions.py). It leaves the
handle's state and checks to engine/dbstate.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mkts.engine import functions as _functions
from mkts.engine import query
from mkts.engine.catalog import Bucket
from mkts.engine.dbstate import HandleBase
from mkts.engine.errors import BucketNotFoundError, InvalidInputError
from mkts.engine.keys import parse_key
from mkts.engine.patterns import parse_pattern
from mkts.engine.result import Result
from mkts.engine.schema import VARIABLE
from mkts.engine.sealread import merged_fixed
from mkts.engine.ticks import tick_usage
from mkts.engine.timeutil import to_epoch_ns

__all__ = ["ReadAPI"]


class ReadAPI(HandleBase):
    """`Database`'s read calls (engine/database.py mixes them in)."""

    # -- reading ---------------------------------------------------------------------------
    def read(self, key: str, start: Any = None, end: Any = None, *, limit: int | None = None,
             limit_from_start: bool = False, columns: Sequence[str] | None = None,
             functions: Sequence[str] | None = None) -> Result:
        """Rows of one bucket whose interval overlaps [start, end] (both inclusive).

        `functions` (MarketStore's call strings, e.g.
        ``["candlecandler('1H',Open,High,Low,Close,Sum::Volume)"]``) run left to right on
        the rows after the range, limit and projection, each on the previous one's output
        (docs/plugins.md "Query functions"); a bad call is a FunctionError before any read."""
        self._check_open()
        k = parse_key(key)
        start_ns, end_ns, limit = _range_args(start, end, limit, self.timezone)
        chain = _functions.prepare(functions) if functions else None
        self._visible()
        if self._dispatcher.maintaining:
            self._settle(k)
        with self._rw.read():
            bucket = self.catalog.get(k)
            result = query.read_bucket(self.catalog, bucket, start_ns, end_ns, limit=limit,
                                       limit_from_start=limit_from_start, columns=columns)
        return result if chain is None else self._apply(chain, result)

    def query(self, pattern: str, start: Any = None, end: Any = None, *,
              limit: int | None = None, limit_from_start: bool = False,
              columns: Sequence[str] | None = None,
              functions: Sequence[str] | None = None) -> dict[str, Result]:
        """Read every bucket matching the key pattern (`AAPL,MSFT/1Min/OHLCV`,
        `AA*/1Min/*`; engine.patterns); {key: Result} in request order (symbols as listed,
        sorted within a glob or `*`). Unknown symbols are absent. `functions` run on each
        bucket's rows separately, as in `read`."""
        self._check_open()
        pat = parse_pattern(pattern)
        start_ns, end_ns, limit = _range_args(start, end, limit, self.timezone)
        chain = _functions.prepare(functions) if functions else None
        self._visible()
        if self._dispatcher.maintaining:
            named = pat.keys()  # a list of names: buckets the triggers may not have made yet
            for k in named if named is not None else pat.select(list(self.catalog.buckets)):
                self._settle(k)
        out: dict[str, Result] = {}
        with self._rw.read():
            for k in pat.select(self.catalog.buckets):
                bucket = self.catalog.buckets[k]
                out[str(k)] = query.read_bucket(self.catalog, bucket, start_ns, end_ns,
                                               limit=limit, limit_from_start=limit_from_start,
                                               columns=columns)
        if chain is not None:
            out = {k: self._apply(chain, r) for k, r in out.items()}
        return out

    def resample(self, key: str, timeframe: str, start: Any = None, end: Any = None, *,
                 calendar: str | None = None, price: str | None = None,
                 volume: str | None = None) -> Result:
        """OHLCV bars of any length (`N` x `Sec|Min|H|D|W|M`, stored or not) from a bar
        bucket (Open/High/Low/Close) or a tick bucket (`price`, default Price), Volume the
        exact sum of `volume` (default Volume, or Size for ticks). Equal to pandas'
        ``resample(tf, label="left", closed="left")`` on the same rows in the database zone
        (boundaries: docs/plugins.md "Candle boundaries"); empty bars are omitted. With
        `calendar` (an exchange calendar such as "XNYS"), only rows inside its sessions
        count."""
        self._check_open()
        bucket = self.catalog.get(parse_key(key))
        calls = _functions.resample_calls(bucket.schema.names, timeframe, calendar=calendar,
                                          price=price, volume=volume)
        return self.read(key, start, end, functions=calls)

    def _apply(self, chain: Sequence[_functions.Function], result: Result) -> Result:
        ctx = _functions.FunctionContext(result.key, self.calendar, self._read_all)
        return _functions.apply_functions(chain, result, ctx)

    def _read_all(self, key: str) -> dict[str, Any] | None:
        """Every row of another bucket as columns, for a function (adjust's actions)."""
        try:
            return _functions.columns_of(self.read(key))
        except BucketNotFoundError:
            return None


    def list_keys(self) -> list[str]:
        self._check_open()
        with self._meta_lock:
            return sorted(str(k) for k in self.catalog.buckets)

    def list_symbols(self) -> list[str]:
        self._check_open()
        with self._meta_lock:
            return sorted({k.symbol for k in self.catalog.buckets})

    def info(self, key: str, *, rows: bool = True) -> dict[str, Any]:
        """{"key", "timeframe", "columns" ({name: dtype}, Epoch first), "kind", "years",
        "sealed" (the sealed years), "rows"}; tick buckets add "live_bytes" and
        "garbage_bytes" (engine.ticks.tick_usage). `rows=False` leaves out "rows" and the tick
        byte counts, which look at every year file's slots; the rest comes from the catalog
        (what planning a scan needs)."""
        self._check_open()
        self._visible()  # interval mode: "years" must include this handle's own writes
        k = parse_key(key)
        with self._meta_lock:
            bucket: Bucket = self.catalog.get(k)
            out: dict[str, Any] = {
                "key": str(k),
                "timeframe": k.timeframe,
                "columns": bucket.schema.describe(),
                "kind": bucket.schema.kind,
                "years": bucket.sorted_years(),
                "sealed": sorted(bucket.sealed),  # docs/format.md "The three states of a year"
            }
            if not rows:
                return out
            with self._rw.read():
                if bucket.schema.kind == VARIABLE:
                    out.update(tick_usage(self.catalog, bucket))
                else:  # one record per occupied slot
                    count = 0
                    for y in out["years"]:
                        if y in bucket.sealed:  # its keys only, merged with its overlay
                            count += len(merged_fixed(self.catalog, bucket, y, 0, 2**62,
                                                      [])[0])
                            continue
                        with self.catalog.pinned(bucket, y) as f:
                            count += 0 if f is None else len(f.occupied())
                    out["rows"] = count
            return out


def _range_args(start: Any, end: Any, limit: int | None, tz: str
                ) -> tuple[int | None, int | None, int | None]:
    """Times without an offset are in the database's zone; a date-only end is its whole day
    (`to_epoch_ns`)."""
    start_ns = None if start is None else to_epoch_ns(start, "start", tz)
    end_ns = None if end is None else to_epoch_ns(end, "end", tz, end=True)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInputError(f"limit={limit!r} must be a non-negative integer or None")
    return start_ns, end_ns, limit
