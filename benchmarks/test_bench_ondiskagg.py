"""On-disk aggregation (issue 5).

- write_stream_with_ondiskagg: a stream of 1-row writes to a 1Min bucket, back to back,
  then one db.wait_for_triggers() (so the triggered aggregation into 5Min, 15Min, 1H and
  1D is done and in the year files); the figure is the time per write. Against the same
  stream without triggers; under sync=always (the default) and sync=off. Goal: with
  aggregation ≤ 3x the write alone.
- write_with_ondiskagg: one 1-row write followed by db.wait_for_triggers() at a time: the
  latency until the aggregates are current (reported beside the goal, not its measure).
- ondiskagg_fire: the trigger's own cost for one 1-row write (4 destinations), fire() called
  directly on the recorded Records, without the dispatcher: "recompute" (find the touched
  bars, read the base rows, reduce) and "recompute + write" (plus the one write_many).
- rebuild_aggregates: recompute all four destinations from scratch for `size.symbols`
  symbols x one year of 1Min bars.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from benchmarks import data as D

DESTS = ["5Min", "15Min", "1H", "1D"]
KEY = "AAPL/1Min/OHLCV"


@contextlib.contextmanager
def _base(size: D.Size, root: str, sync: str, agg: bool) -> Iterator[tuple[Any, np.ndarray, int]]:
    """A database holding the first half of a year of AAPL 1Min bars (the history the
    aggregates are computed from), with ondiskagg on 4 destinations when `agg`:
    (db, all the bars, index of the first bar not written yet)."""
    from mkts import engine
    from mkts.plugins import ondiskagg

    rows = D.bars("AAPL", size)
    cut = len(rows) // 2
    triggers = [("*/1Min/OHLCV", ondiskagg.NewTrigger({"destinations": DESTS}))] if agg else []
    with engine.open(root, bulk_load_rows=0, sync=sync, triggers=triggers) as db:
        db.write(KEY, rows[:cut])
        db.wait_for_triggers()
        yield db, rows, cut


@pytest.mark.benchmark(group="write_stream_with_ondiskagg")
@pytest.mark.parametrize("sync", ["always", "off"])
@pytest.mark.parametrize("agg", [False, True], ids=["no triggers", "ondiskagg 4 destinations"])
def test_write_stream_with_ondiskagg(benchmark: Any, size: D.Size, tmp_path: Any, sync: str,
                                     agg: bool) -> None:
    key = KEY
    with _base(size, os.fspath(tmp_path / "db"), sync, agg) as (db, rows, cut):
        n = min(size.agg_writes, (len(rows) - cut) // (size.repeats + 2))
        starts = iter(range(cut, len(rows) - n, n))

        def stream() -> None:
            a = next(starts)
            for i in range(a, a + n):
                db.write(key, rows[i : i + 1])
            db.wait_for_triggers()

        benchmark.extra_info["writes_per_round"] = n
        benchmark.pedantic(stream, rounds=size.repeats + 1, iterations=1, warmup_rounds=0)
        if benchmark.stats is not None:
            benchmark.extra_info["us_per_write"] = benchmark.stats.stats.median / n * 1e6
        if agg:
            day, base = db.read("AAPL/1D/OHLCV"), db.read(key)
            assert int(np.asarray(day["Volume"]).sum()) == int(np.asarray(base["Volume"]).sum())


@pytest.mark.benchmark(group="write_1_row_with_ondiskagg")
@pytest.mark.parametrize("sync", ["always", "off"])
@pytest.mark.parametrize("agg", [False, True], ids=["no triggers", "ondiskagg 4 destinations"])
def test_write_1_row_with_ondiskagg(benchmark: Any, size: D.Size, tmp_path: Any, sync: str,
                                    agg: bool) -> None:
    key = KEY
    with _base(size, os.fspath(tmp_path / "db"), sync, agg) as (db, rows, cut):
        nxt = iter(range(cut, len(rows)))

        def one() -> None:
            i = next(nxt)
            db.write(key, rows[i : i + 1])
            db.wait_for_triggers()

        benchmark.pedantic(one, rounds=min(300, len(rows) - cut - 1), iterations=1,
                           warmup_rounds=1)
        if agg:
            last = db.read("AAPL/1D/OHLCV", limit=1)
            assert len(last) == 1 and last["Volume"][0] > 0


class _Recorder:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def fire(self, key_path: str, records: Any) -> None:
        self.records.append((key_path, records))


@pytest.mark.benchmark(group="ondiskagg_fire")
@pytest.mark.parametrize("part", ["recompute", "recompute + write"])
def test_ondiskagg_fire(benchmark: Any, size: D.Size, tmp_path: Any, part: str) -> None:
    from mkts import engine
    from mkts.plugins import ondiskagg

    rows = D.bars("AAPL", size)
    cut = len(rows) // 2
    rec = _Recorder()
    trig = ondiskagg.NewTrigger({"destinations": DESTS})
    key = "AAPL/1Min/OHLCV"
    with engine.open(os.fspath(tmp_path / "db"), bulk_load_rows=0, sync="off", triggers=[(key, rec)]) as db:
        db.write(key, rows[:cut])
        db.write(key, rows[cut : cut + 1])
        db.wait_for_triggers()
        trig.start(db)
        key_path, records = rec.records[-1]
        assert len(records) == 1
        plan = trig._known.get((key, records.rows.dtype)) or trig._plan(
            key, list(records.columns()))
        assert plan is not None
        if part == "recompute":
            benchmark(lambda: trig._recompute(db, key, records.epochs, False, *plan))
        else:
            benchmark(lambda: trig.fire(key_path, records))
        out = trig._recompute(db, key, records.epochs, False, *plan)
        assert sorted(out) == [f"AAPL/{d}/OHLCV" for d in sorted(DESTS)]


@pytest.mark.benchmark(group="rebuild_aggregates")
def test_rebuild_aggregates(benchmark: Any, size: D.Size, bars_root: str, tmp_path: Any) -> None:
    import subprocess

    from mkts import engine
    from mkts.plugins import ondiskagg

    copies = iter(range(100))
    handles: list[Any] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for h in handles:
            h.close()
        handles.clear()
        dst = os.fspath(tmp_path / f"copy{next(copies)}")
        subprocess.run(["cp", "-a", "--sparse=always", bars_root, dst], check=True)
        handles.append(engine.open(dst, bulk_load_rows=0, sync="off"))
        return (handles[0],), {}

    def run(db: Any) -> int:
        return int(ondiskagg.rebuild(db, "*/1Min/OHLCV", DESTS, progress=False))

    benchmark.extra_info["base_rows"] = size.symbols * len(D.bars("AAPL", size))
    benchmark.pedantic(run, setup=setup, rounds=1 if size.name == "full" else size.repeats,
                       iterations=1)
    db = handles[0]
    one_day = db.read("AAPL/1D/OHLCV")
    base = D.bars("AAPL", size)
    assert len(one_day) > 0
    assert int(np.asarray(one_day["Volume"]).sum()) == int(base["Volume"].sum())
    db.close()
