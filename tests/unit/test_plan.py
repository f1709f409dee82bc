"""Planning slot writes (engine/plan.py): last row of an interval wins, one write per year."""

from __future__ import annotations

import datetime as dt

import numpy as np

from mkts.engine.ingest import Batch
from mkts.engine.keys import parse_key
from mkts.engine.plan import plan_fixed
from mkts.engine.schema import FIXED, Schema
from mkts.engine.timeframes import parse_timeframe
from mkts.engine.timeutil import get_calendar

KEY = parse_key("AAPL/1Min/OHLCV")
SCHEMA = Schema.from_spec(parse_timeframe("1Min"), FIXED, {"Close": "f8", "Volume": "i8"})
UTC = get_calendar("UTC")
JAN1_2024 = 1_704_067_200


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def _batch(epochs: list[int], values: list[float]) -> Batch:
    return Batch(
        np.array(epochs, dtype=np.int64), None,
        {"Close": np.array(values, dtype="f8"), "Volume": np.array(values, dtype="i8") * 10},
    )


def test_empty_batch_plans_nothing() -> None:
    assert plan_fixed(KEY, SCHEMA, _batch([], []), UTC) == []


def test_sorted_rows_map_to_their_slots() -> None:
    t = utc(2024, 1, 2, 10, 0)
    (w,) = plan_fixed(KEY, SCHEMA, _batch([t, t + 60, t + 180], [1, 2, 3]), UTC)
    base = (t - JAN1_2024) // 60
    assert w.key == KEY and w.year == 2024
    assert w.slots.tolist() == [base, base + 1, base + 3]
    assert w.records["_slot"].tolist() == [base + 1, base + 2, base + 4]  # slot + 1
    assert w.records["Close"].tolist() == [1, 2, 3]
    assert w.records["Volume"].tolist() == [10, 20, 30]
    assert w.nbytes == 3 * SCHEMA.record_dtype.itemsize


def test_last_row_of_an_interval_wins_within_one_call() -> None:
    t = utc(2024, 1, 2, 10, 0)
    epochs = [t + 30, t + 60, t, t + 59, t + 61, t + 1]
    (w,) = plan_fixed(KEY, SCHEMA, _batch(epochs, [1, 2, 3, 4, 5, 6]), UTC)
    base = (t - JAN1_2024) // 60
    assert w.slots.tolist() == [base, base + 1]
    assert w.records["Close"].tolist() == [6, 5]  # the last row given for each minute
    assert w.records["Volume"].tolist() == [60, 50]


def test_out_of_order_rows_come_out_ascending() -> None:
    t = utc(2024, 3, 1)
    epochs = [t + 300, t, t + 120, t + 60]
    (w,) = plan_fixed(KEY, SCHEMA, _batch(epochs, [4, 1, 3, 2]), UTC)
    assert np.all(np.diff(w.slots) > 0)
    assert w.records["Close"].tolist() == [1, 2, 3, 4]


def test_rows_spanning_years_split_per_year() -> None:
    epochs = [utc(2024, 1, 1, 0, 0, 30), utc(2022, 6, 1), utc(2023, 12, 31, 23, 59, 59),
              utc(2024, 1, 1), utc(2023, 12, 31, 23, 59)]
    writes = plan_fixed(KEY, SCHEMA, _batch(epochs, [1, 2, 3, 4, 5]), UTC)
    assert [w.year for w in writes] == [2022, 2023, 2024]
    w22, w23, w24 = writes
    assert w22.slots.tolist() == [(utc(2022, 6, 1) - utc(2022, 1, 1)) // 60]
    assert w23.slots.tolist() == [525_599]  # the last minute of 2023, rows 3 and 5
    assert w23.records["Close"].tolist() == [5]
    assert w24.slots.tolist() == [0]  # 1 January 00:00, rows 1 and 4
    assert w24.records["Close"].tolist() == [4]
    assert w24.records["_slot"].tolist() == [1]


def test_years_follow_the_database_time_zone() -> None:
    ny = get_calendar("America/New_York")
    # 03:00 UTC on 1 January 2024 is 22:00 on 31 December 2023 in New York.
    writes = plan_fixed(KEY, SCHEMA, _batch([utc(2024, 1, 1, 3), utc(2024, 1, 1, 5)], [1, 2]), ny)
    assert [(w.year, w.slots.tolist()) for w in writes] == [(2023, [525_600 - 120]), (2024, [0])]


def test_daily_rows_of_one_day_collapse_into_one_slot() -> None:
    schema = Schema.from_spec(parse_timeframe("1D"), FIXED, {"Close": "f8", "Volume": "i8"})
    epochs = [utc(2024, 1, 1), utc(2024, 1, 1, 23, 59, 59), utc(2024, 1, 1, 12), utc(2024, 2, 29, 8)]
    (w,) = plan_fixed(parse_key("AAPL/1D/OHLCV"), schema, _batch(epochs, [1, 2, 3, 4]), UTC)
    assert w.slots.tolist() == [0, 59]
    assert w.records["Close"].tolist() == [3, 4]


def test_many_random_rows_keep_the_last_value_per_slot() -> None:
    rng = np.random.default_rng(3)
    epochs = rng.integers(utc(2023, 12, 31, 22), utc(2024, 1, 1, 2), 2000).tolist()
    values = list(range(2000))
    expected: dict[tuple[int, int], int] = {}
    for e, v in zip(epochs, values, strict=True):
        label = e - e % 60
        year = dt.datetime.fromtimestamp(label, dt.UTC).year
        expected[(year, (label - utc(year, 1, 1)) // 60)] = v
    writes = plan_fixed(KEY, SCHEMA, _batch(epochs, values), UTC)
    got = {(w.year, s): int(c) for w in writes
           for s, c in zip(w.slots.tolist(), w.records["Close"].tolist(), strict=True)}
    assert got == expected


def test_a_row_write_logs_the_same_bytes_as_the_slot_write_of_its_record() -> None:
    from mkts.engine import journal
    from mkts.engine.plan import RowWrite

    [sw] = plan_fixed(KEY, SCHEMA, _batch([utc(2024, 3, 1, 10, 7)], [12.5]), UTC)
    other = plan_fixed(parse_key("MSFT/1Min/OHLCV"), SCHEMA,
                       _batch([utc(2024, 3, 1, 10, 8), utc(2024, 3, 1, 10, 9)], [1.0, 2.0]), UTC)
    rw = RowWrite(KEY, sw.year, int(sw.slots[0]), sw.records.tobytes(), sw.records.dtype)
    assert journal.encode([rw, *other]) == journal.encode([sw, *other])
    decoded = journal.decode(journal.encode([*other, rw]), lambda k: SCHEMA)
    assert decoded[-1].slots.tolist() == sw.slots.tolist()
    assert decoded[-1].records.tobytes() == sw.records.tobytes()
