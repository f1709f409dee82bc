"""Query functions and resampling, interleaved (issue 15): each round times every case once,
in turn, so a noisy minute on a shared machine hits all of them alike; medians over the rounds
and their ratios, measured in the same run.

    python -m benchmarks.functions [--size full|quick|smoke] [--rounds N]

Cases: one symbol-year of 1Min bars read plain, with `candlecandler('1H',...)`, through
`db.resample(key, "1H")`, and pandas `resample("1h").agg(...)` on the same rows in memory;
one day of `ticks_per_day` ticks read plain and with `tickcandler('1Min',...)`.
Goals: each candler <= 2x its plain read; pandas / db.resample >= 1.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from benchmarks import data as D
from benchmarks.ceilings import timed_rounds

CANDLE = "candlecandler('1H',Open,High,Low,Close,Sum::Volume)"
TICKS = "tickcandler('1Min',Price,Sum::Size)"
AGG = {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}


def run(size: D.Size, rounds: int, tick_rounds: int) -> dict[str, float]:
    """Medians in seconds per case, plus the three goal ratios."""
    from mkts import engine

    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "db")
        with engine.open(root, bulk_load_rows=0, sync="off") as db:
            db.write("AAPL/1Min/OHLCV", D.bars("AAPL", size))
            db.write("AAPL/1Sec/TRADE", D.tick_days(size)[0][1], variable=True)
        with engine.open(root, readonly=True) as db:
            df = db.read("AAPL/1Min/OHLCV").to_pandas()

            def pandas_resample() -> Any:
                out = df.resample("1h", label="left", closed="left").agg(AGG)
                return out[out["Open"].notna()]

            medians = timed_rounds({
                "bars read": lambda: db.read("AAPL/1Min/OHLCV"),
                "candlecandler 1H": lambda: db.read("AAPL/1Min/OHLCV", functions=[CANDLE]),
                "db.resample 1H": lambda: db.resample("AAPL/1Min/OHLCV", "1H"),
                "pandas resample 1H (in memory)": pandas_resample,
            }, rounds, 1)
            medians.update(timed_rounds({
                "ticks read": lambda: db.read("AAPL/1Sec/TRADE"),
                "tickcandler 1Min": lambda: db.read("AAPL/1Sec/TRADE", functions=[TICKS]),
            }, tick_rounds, 1))
    medians["candlecandler / read (goal <= 2)"] = (medians["candlecandler 1H"]
                                                   / medians["bars read"])
    medians["tickcandler / read (goal <= 2)"] = (medians["tickcandler 1Min"]
                                                 / medians["ticks read"])
    medians["pandas / db.resample (goal >= 1)"] = (medians["pandas resample 1H (in memory)"]
                                                   / medians["db.resample 1H"])
    return medians


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.functions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default=os.environ.get("MKTS_BENCH_SIZE", "full"),
                   choices=sorted(D.SIZES))
    p.add_argument("--rounds", type=int, default=150, help="rounds of the bar cases")
    p.add_argument("--tick-rounds", type=int, default=15, help="rounds of the tick cases")
    args = p.parse_args(argv)
    out = run(D.SIZES[args.size], args.rounds, args.tick_rounds)
    for name, value in out.items():
        shown = f"{value:.2f}x" if "goal" in name else f"{value * 1e3:.2f} ms"
        print(f"{name:36s} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
