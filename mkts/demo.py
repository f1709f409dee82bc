"""`make demo`: the main job end to end on bundled synthetic data.

Writes a quarter of 1Min bars for five symbols into ./demo-data, reads them back, and
prints a small table; then reopens the database to show the data survived.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time

import numpy as np

import engine
from plugins import synth

ROOT = os.environ.get("MKTS_DEMO_ROOT", "demo-data")


def main() -> int:
    if os.path.exists(ROOT):
        shutil.rmtree(ROOT)
    names = synth.symbols(5)
    start, end = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
    bars = {f"{s}/1Min/OHLCV": synth.minute_bars(s, start, end) for s in names}
    total = sum(len(b) for b in bars.values())
    print(f"mkts demo: {len(names)} symbols x 1Min bars, {start} .. {end} ({total:,} rows)")

    with engine.open(ROOT, timezone="America/New_York") as db:
        t0 = time.perf_counter()
        db.write_many(bars)
        took = time.perf_counter() - t0
        print(f"wrote {total:,} rows in one durable transaction in {took * 1000:.0f} ms")

        day = db.read("AAPL/1Min/OHLCV", "2024-03-15T13:30:00Z", "2024-03-15T13:39:59Z")
        print("\nAAPL/1Min/OHLCV, 2024-03-15 first ten minutes of the session (New York time):")
        _print_table(day.to_pandas())

        last = db.query("AAPL,MSFT,GOOG/1Min/OHLCV", limit=1, columns=["Close", "Volume"])
        print("\nlast bar per symbol:")
        for key, r in last.items():
            when = np.datetime_as_string(r.timestamps[0], unit="m")
            print(f"  {key:<18} {when}Z  Close={r['Close'][0]:9.2f}  Volume={r['Volume'][0]:>8,}")

    with engine.open(ROOT) as db:
        n = len(db.read("AAPL/1Min/OHLCV"))
        print(f"\nreopened {ROOT}: {db.list_keys()}; AAPL has {n:,} bars")
        if n != len(bars["AAPL/1Min/OHLCV"]):
            print("row count after reopen does not match what was written", file=sys.stderr)
            return 1
    return 0


def _print_table(df: object) -> None:
    import pandas as pd

    assert isinstance(df, pd.DataFrame)
    with pd.option_context("display.width", 120, "display.float_format", "{:.2f}".format):
        print(df.to_string())


if __name__ == "__main__":
    sys.exit(main())
