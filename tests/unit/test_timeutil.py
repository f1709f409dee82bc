"""Times and the database calendar (engine/timeutil.py).

Expected epochs are written by hand or computed with the standard library's datetime and
zoneinfo, never with the module under test.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from mkts.engine.errors import InvalidInputError
from mkts.engine.timeframes import parse_timeframe
from mkts.engine.timeutil import Calendar, get_calendar, parse_time_text, to_epoch_ns

NS = 1_000_000_000
T = 1_704_189_630  # 2024-01-02 10:00:30 UTC
NY = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
TF_1MIN = parse_timeframe("1Min")
TF_1H = parse_timeframe("1H")
TF_1D = parse_timeframe("1D")


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def local(zone: ZoneInfo, *args: int) -> int:
    return int(dt.datetime(*args, tzinfo=zone).timestamp())


def test_hand_written_reference_epoch() -> None:
    assert utc(2024, 1, 2, 10, 0, 30) == T


# -- to_epoch_ns ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,expected",
    [
        (T, T * NS),
        (np.int64(T), T * NS),
        (np.int32(1_000), 1_000 * NS),
        (0, 0),
        (-86_400, -86_400 * NS),
        (float(T), T * NS),
        (np.float64(T), T * NS),
    ],
)
def test_epoch_seconds(value: object, expected: int) -> None:
    assert to_epoch_ns(value) == expected


@pytest.mark.parametrize("frac", [0.25, 0.5, 0.75, 0.999])
def test_fractional_epoch_seconds_are_exact_to_the_microsecond(frac: float) -> None:
    # A float near 1.7e9 carries about 0.24 us of precision; no more is promised.
    for value in (T + frac, np.float64(T) + frac):
        ns = to_epoch_ns(value)
        assert ns // NS == T
        assert abs(ns - (T * NS + round(frac * NS))) < 1_000


def test_naive_datetime_means_utc() -> None:
    assert to_epoch_ns(dt.datetime(2024, 1, 2, 10, 0, 30)) == T * NS
    assert to_epoch_ns(dt.datetime(2024, 1, 2, 10, 0, 30, 123456)) == T * NS + 123_456_000


def test_aware_datetimes_use_their_offset() -> None:
    assert to_epoch_ns(dt.datetime(2024, 1, 2, 10, 0, 30, tzinfo=dt.UTC)) == T * NS
    # 05:00:30 EST is 10:00:30 UTC; in July New York is on EDT (UTC-4).
    assert to_epoch_ns(dt.datetime(2024, 1, 2, 5, 0, 30, tzinfo=NY)) == T * NS
    assert to_epoch_ns(dt.datetime(2024, 7, 1, 9, 30, tzinfo=NY)) == utc(2024, 7, 1, 13, 30) * NS
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert to_epoch_ns(dt.datetime(2024, 1, 2, 15, 30, 30, tzinfo=ist)) == T * NS


def test_a_date_is_its_utc_midnight() -> None:
    assert to_epoch_ns(dt.date(2024, 1, 2)) == utc(2024, 1, 2) * NS


@pytest.mark.parametrize(
    "value",
    [
        np.datetime64("2024-01-02T10:00:30", "s"),
        np.datetime64("2024-01-02T10:00:30.000", "ms"),
        np.datetime64("2024-01-02T10:00:30.000000", "us"),
        np.datetime64("2024-01-02T10:00:30.000000000", "ns"),
    ],
)
def test_datetime64_in_any_unit(value: np.datetime64) -> None:
    assert to_epoch_ns(value) == T * NS


def test_datetime64_coarse_and_fine_units() -> None:
    assert to_epoch_ns(np.datetime64("2024-01-02", "D")) == utc(2024, 1, 2) * NS
    assert to_epoch_ns(np.datetime64("2024-01-02T10:00", "m")) == (T - 30) * NS
    assert to_epoch_ns(np.datetime64("2024-01-02T10:00:30.123456789", "ns")) == T * NS + 123456789
    assert to_epoch_ns(np.datetime64("1969-12-31T23:59:59", "s")) == -NS


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_pandas_timestamp_in_any_unit(unit: str) -> None:
    naive = pd.Timestamp("2024-01-02 10:00:30").as_unit(unit)
    assert to_epoch_ns(naive) == T * NS
    aware = pd.Timestamp("2024-01-02 05:00:30", tz="America/New_York").as_unit(unit)
    assert to_epoch_ns(aware) == T * NS


def test_pandas_timestamp_keeps_nanoseconds() -> None:
    ts = pd.Timestamp("2024-01-02 10:00:30.123456789")
    assert to_epoch_ns(ts) == T * NS + 123_456_789
    ts_ist = pd.Timestamp("2024-01-02 15:30:30.000000007", tz="Asia/Kolkata")
    assert to_epoch_ns(ts_ist) == T * NS + 7


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2024-01-02", utc(2024, 1, 2) * NS),
        ("2024-01", utc(2024, 1, 1) * NS),
        ("2024-01-02T10:00:30", T * NS),
        ("2024-01-02 10:00:30", T * NS),
        ("2024-01-02T10:00:30Z", T * NS),
        ("2024-01-02T10:00:30+00:00", T * NS),
        ("2024-01-02T05:00:30-05:00", T * NS),
        ("2024-01-02T15:30:30+05:30", T * NS),
        ("2024-01-02T10:00:30.5", T * NS + 500_000_000),
        ("2024-01-02T10:00:30.123456", T * NS + 123_456_000),
        ("2024-01-02T10:00:30.123456789", T * NS + 123_456_789),
        ("2024-01-02T10:00:30.123456789Z", T * NS + 123_456_789),
        ("2024-01-02T15:30:30.123456789+05:30", T * NS + 123_456_789),
        ("2024-01-02T05:00:30.000000001-05:00", T * NS + 1),
        ("2024-01-02T10:00:30.1234567", T * NS + 123_456_700),
        ("  2024-01-02T10:00:30Z ", T * NS),
    ],
)
def test_iso_strings(text: str, expected: int) -> None:
    assert to_epoch_ns(text) == expected


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2024-13-01", "2024-01-02T25:00", "", "NaT", "  ", True, False, None, object(), [T],
     float("nan"), float("inf"), np.float64("nan"), np.datetime64("NaT")],
)
def test_values_that_are_not_times_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInputError):
        to_epoch_ns(value, "start")


def test_rejection_names_the_argument() -> None:
    with pytest.raises(InvalidInputError, match="^end"):
        to_epoch_ns("soon", "end")


def test_datetime64_beyond_nanosecond_range_is_an_error_not_a_wrapped_time() -> None:
    # datetime64[s] holds year 2600; in nanoseconds it would wrap around to 2015.
    with pytest.raises(InvalidInputError):
        to_epoch_ns(np.datetime64("2600-06-01", "s"))
    with pytest.raises(InvalidInputError):
        to_epoch_ns(pd.Timestamp("2600-06-01").as_unit("s"))
    with pytest.raises(InvalidInputError):
        to_epoch_ns("2600-06")


# -- parse_time_text: the one parser of time texts ------------------------------------------
@pytest.mark.parametrize(
    "text,ns,naive",
    [
        ("2024-01-02 10:00:30", T * NS, True),
        ("2024-01-02T10:00:30Z", T * NS, False),
        ("2024-01-02t10:00:30z", T * NS, False),
        ("2024-01-02 10:00:30 UTC", T * NS, False),
        ("2024-01-02T05:00:30-05", T * NS, False),
        ("2024-01-02T05:00:30-0500", T * NS, False),
        ("2024-01-02T15:30:30+05:30", T * NS, False),
        ("2024/01/02 10:00:30", T * NS, True),
        ("20240102 100030", T * NS, True),
        ("20240102T100030Z", T * NS, False),
        ("2024-01-02 10:00:30,25", T * NS + 250_000_000, True),
        ("2024-01-02T10:00:30.123456789123", T * NS + 123_456_789, True),
        ("2024-01-02T10", (T - 30) * NS, True),
        ("2024-01-02", utc(2024, 1, 2) * NS, True),
        ("2024-01", utc(2024, 1, 1) * NS, True),
        ("2024", utc(2024, 1, 1) * NS, True),
        ("1969-12-31T23:59:59", -NS, True),
    ],
)
def test_parse_time_text(text: str, ns: int, naive: bool) -> None:
    assert parse_time_text(text) == (ns, naive)


@pytest.mark.parametrize(
    "text,message",
    [
        ("2024-13-02 09:30:00", "is not a valid date"),
        ("2024-02-30", "is not a valid date"),
        ("2024-01-02 24:00", "is not a valid time of day"),
        ("2024-01-02 10:60", "is not a valid time of day"),
        ("2024-01-02T10:00+24:00", "offset out of range"),
        ("202401", "is not a time; use ISO-8601"),  # YYYYMM is ambiguous: refused
        ("2024-1-2", "is not a time"),
        ("today", "is not a time"),
        ("2024-W01-2", "is not a time"),
    ],
)
def test_parse_time_text_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_time_text(text)


def test_to_epoch_ns_reads_texts_with_the_one_parser_and_no_offset_means_utc() -> None:
    for text in ("2024/01/02 10:00:30", "20240102 100030", "2024-01-02 05:00:30 -05:00"):
        assert to_epoch_ns(text) == T * NS


# -- Calendar: years -----------------------------------------------------------------------
def test_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(InvalidInputError):
        Calendar("Not/AZone")


def test_calendar_is_shared_per_zone() -> None:
    assert get_calendar("UTC") is get_calendar("UTC")


def test_year_start_is_local_midnight_of_january_1() -> None:
    assert get_calendar("UTC").year_start(2024) == 1_704_067_200
    assert get_calendar("America/New_York").year_start(2024) == 1_704_067_200 + 5 * 3600
    assert get_calendar("Asia/Kolkata").year_start(2024) == 1_704_067_200 - 5 * 3600 - 1800


def test_year_of_follows_the_local_calendar() -> None:
    jan1_utc = 1_704_067_200
    cal = get_calendar("UTC")
    years = cal.year_of(np.array([jan1_utc - 1, jan1_utc], dtype=np.int64))
    assert years.tolist() == [2023, 2024]
    # 2024-01-01 00:00 UTC is still 31 December 2023 in New York ...
    assert get_calendar("America/New_York").year_of_one(jan1_utc) == 2023
    assert get_calendar("America/New_York").year_of_one(local(NY, 2024, 1, 1)) == 2024
    # ... and already 2024 in Kolkata from 18:30 UTC on 31 December.
    kol = get_calendar("Asia/Kolkata")
    assert kol.year_of_one(utc(2023, 12, 31, 18, 29, 59)) == 2023
    assert kol.year_of_one(utc(2023, 12, 31, 18, 30)) == 2024


def test_years_before_1970_work() -> None:
    cal = get_calendar("UTC")
    assert cal.slot_of(utc(1960, 1, 1, 0, 1, 30), TF_1MIN) == (1960, 1)
    assert cal.slot_of(utc(1969, 12, 31, 23, 59), TF_1MIN) == (1969, 525_599)


def test_check_range_rejects_unsupported_years() -> None:
    cal = get_calendar("UTC")
    cal.check_range(np.array([utc(1900, 1, 1), utc(2261, 12, 31, 23, 59, 59)], dtype=np.int64))
    for bad in (utc(1899, 12, 31, 23, 59, 59), utc(2262, 1, 1)):
        with pytest.raises(InvalidInputError):
            cal.check_range(np.array([bad], dtype=np.int64))


# -- Calendar: slots -----------------------------------------------------------------------
def test_january_1_is_slot_0() -> None:
    for zone_name in ("UTC", "America/New_York", "Asia/Kolkata"):
        cal = get_calendar(zone_name)
        zone = ZoneInfo(zone_name)
        for tf in (TF_1MIN, TF_1H, TF_1D):
            assert cal.slot_of(local(zone, 2024, 1, 1), tf) == (2024, 0)
            assert cal.slot_of(local(zone, 2024, 1, 1, 0, 0, 59), tf) == (2024, 0)
        assert cal.slot_of(local(zone, 2024, 1, 1, 23, 59, 59), TF_1D) == (2024, 0)
        assert cal.labels(2024, np.array([0]), TF_1D).tolist() == [local(zone, 2024, 1, 1)]


def test_slot_counts_and_leap_years() -> None:
    cal = get_calendar("UTC")
    assert cal.nslots(2024, TF_1MIN) == 527_040
    assert cal.nslots(2023, TF_1MIN) == 525_600
    assert cal.nslots(2000, TF_1MIN) == 527_040  # divisible by 400: leap
    assert cal.nslots(1900, TF_1MIN) == 525_600  # divisible by 100: not leap
    assert cal.nslots(2024, TF_1D) == 366
    assert cal.nslots(2023, TF_1D) == 365
    assert cal.nslots(2024, TF_1H) == 8784
    # The DST hours cancel over a year: New York has the same counts.
    ny = get_calendar("America/New_York")
    assert ny.nslots(2024, TF_1MIN) == 527_040
    assert ny.nslots(2024, TF_1D) == 366


def test_leap_day_and_last_day_slots() -> None:
    cal = get_calendar("UTC")
    assert cal.slot_of(utc(2024, 2, 29), TF_1D) == (2024, 59)
    assert cal.slot_of(utc(2024, 2, 29, 12, 0, 30), TF_1MIN) == (2024, 59 * 1440 + 720)
    assert cal.slot_of(utc(2024, 12, 31, 23, 59, 59), TF_1MIN) == (2024, 527_039)
    assert cal.slot_of(utc(2024, 12, 31, 12), TF_1D) == (2024, 365)
    assert cal.slot_of(utc(2023, 12, 31, 12), TF_1D) == (2023, 364)
    assert cal.labels(2024, np.array([365]), TF_1D).tolist() == [utc(2024, 12, 31)]
    assert cal.labels(2024, np.array([527_039]), TF_1MIN).tolist() == [utc(2024, 12, 31, 23, 59)]


def test_labels_are_left_edges_in_utc() -> None:
    cal = get_calendar("UTC")
    epochs = np.array([T, utc(2024, 1, 2, 10, 0), utc(2024, 6, 30, 23, 59, 59)], dtype=np.int64)
    for tf, expected in (
        (TF_1MIN, [utc(2024, 1, 2, 10, 0), utc(2024, 1, 2, 10, 0), utc(2024, 6, 30, 23, 59)]),
        (TF_1H, [utc(2024, 1, 2, 10), utc(2024, 1, 2, 10), utc(2024, 6, 30, 23)]),
        (TF_1D, [utc(2024, 1, 2), utc(2024, 1, 2), utc(2024, 6, 30)]),
        (parse_timeframe("4H"), [utc(2024, 1, 2, 8), utc(2024, 1, 2, 8), utc(2024, 6, 30, 20)]),
    ):
        years, slots = cal.slots(epochs, tf)
        assert years.tolist() == [2024] * 3
        labels = [int(cal.labels(int(y), np.array([s]), tf)[0]) for y, s in zip(years, slots, strict=True)]
        assert labels == expected


def test_new_york_daily_slots_on_dst_days_are_23_and_25_hours() -> None:
    cal = get_calendar("America/New_York")
    # 2024: clocks spring forward on 10 March and fall back on 3 November.
    mar10, nov3 = dt.date(2024, 3, 10), dt.date(2024, 11, 3)
    s_mar = (mar10 - dt.date(2024, 1, 1)).days
    s_nov = (nov3 - dt.date(2024, 1, 1)).days
    labels = cal.labels(2024, np.array([s_mar, s_mar + 1, s_nov, s_nov + 1]), TF_1D).tolist()
    assert labels == [local(NY, 2024, 3, 10), local(NY, 2024, 3, 11),
                      local(NY, 2024, 11, 3), local(NY, 2024, 11, 4)]
    assert labels[1] - labels[0] == 23 * 3600
    assert labels[3] - labels[2] == 25 * 3600
    # Late evening local time (already the next day in UTC) is still that local day.
    assert cal.slot_of(local(NY, 2024, 3, 10, 23, 30), TF_1D) == (2024, s_mar)
    assert cal.slot_of(local(NY, 2024, 11, 3, 23, 30), TF_1D) == (2024, s_nov)
    assert cal.slot_of(local(NY, 2024, 11, 4, 0, 0), TF_1D) == (2024, s_nov + 1)


@pytest.mark.parametrize("day", [dt.date(2024, 3, 10), dt.date(2024, 11, 3)])
def test_new_york_hour_slots_start_on_local_clock_hours_across_dst(day: dt.date) -> None:
    cal = get_calendar("America/New_York")
    start = local(NY, day.year, day.month, day.day)
    epochs = np.arange(start, start + 8 * 3600, 600, dtype=np.int64)  # every 10 minutes
    years, slots = cal.slots(epochs, TF_1H)
    labels = cal.labels(2024, slots, TF_1H)
    for e, label in zip(epochs.tolist(), labels.tolist(), strict=True):
        assert label <= e < label + 3600
        wall = dt.datetime.fromtimestamp(label, NY)
        assert (wall.minute, wall.second) == (0, 0)
    # Fixed-length intervals: no slot is skipped or repeated over the DST change.
    assert np.unique(slots).tolist() == list(range(int(slots[0]), int(slots[0]) + 8))


def test_kolkata_hour_slots_start_on_local_clock_hours() -> None:
    cal = get_calendar("Asia/Kolkata")
    e = local(KOLKATA, 2024, 6, 1, 10, 45, 12)
    year, slot = cal.slot_of(e, TF_1H)
    assert year == 2024
    label = int(cal.labels(year, np.array([slot]), TF_1H)[0])
    assert label == local(KOLKATA, 2024, 6, 1, 10)
    assert label % 3600 == 1800  # half past the hour in UTC
    year, slot = cal.slot_of(e, TF_1D)
    assert int(cal.labels(year, np.array([slot]), TF_1D)[0]) == local(KOLKATA, 2024, 6, 1)


def test_slots_and_labels_agree_for_many_times() -> None:
    rng = np.random.default_rng(7)
    for zone_name in ("UTC", "America/New_York", "Asia/Kolkata"):
        cal = get_calendar(zone_name)
        zone = ZoneInfo(zone_name)
        epochs = rng.integers(utc(2022, 12, 25), utc(2025, 1, 7), 300).astype(np.int64)
        for tf_name in ("1Min", "5Min", "1H", "4H", "1D"):
            tf = parse_timeframe(tf_name)
            years, slots = cal.slots(epochs, tf)
            for e, y, s in zip(epochs.tolist(), years.tolist(), slots.tolist(), strict=True):
                wall = dt.datetime.fromtimestamp(e, zone)
                assert y == wall.year
                label = int(cal.labels(y, np.array([s]), tf)[0])
                lwall = dt.datetime.fromtimestamp(label, zone)
                if tf.is_daily:
                    assert lwall.date() == wall.date() and lwall.time() == dt.time(0)
                    assert s == (wall.date() - dt.date(y, 1, 1)).days
                else:
                    assert label <= e < label + tf.seconds
                    assert (label - local(zone, y, 1, 1)) % tf.seconds == 0


def test_naive_times_are_wall_clock_in_the_given_zone_and_instants_are_not() -> None:
    import datetime as _dt

    import numpy as _np

    from mkts.engine.timeutil import NS as _NS
    from mkts.engine.timeutil import to_epoch_ns as conv

    ny = "America/New_York"
    t = 1_704_205_800 * _NS  # 2024-01-02 09:30 New York (14:30 UTC)
    assert conv("2024-01-02 09:30", "t", ny) == t
    assert conv(_dt.datetime(2024, 1, 2, 9, 30), "t", ny) == t
    assert conv("2024-01-02 14:30", "t") == t  # no zone: UTC
    assert conv("2024-01-02T14:30Z", "t", ny) == t
    assert conv(_np.datetime64("2024-01-02T14:30"), "t", ny) == t  # an instant
    assert conv(1_704_205_800, "t", ny) == t
    # DST: a time in the spring-forward gap takes the offset before it (EST)
    assert conv("2024-03-10 02:30", "t", ny) == conv("2024-03-10T02:30-05:00")


def test_a_date_only_end_is_the_last_nanosecond_of_the_period_it_names() -> None:
    import datetime as _dt

    from mkts.engine.timeutil import to_epoch_ns as conv

    ny = "America/New_York"
    assert conv("2024-01-02", "end", ny, end=True) == conv("2024-01-03", "t", ny) - 1
    assert conv(_dt.date(2024, 1, 2), "end", ny, end=True) == conv("2024-01-03", "t", ny) - 1
    assert conv("2024-02", "end", end=True) == conv("2024-03-01", "t") - 1
    assert conv("2024-12", "end", end=True) == conv("2025-01-01", "t") - 1
    assert conv("2024", "end", end=True) == conv("2025-01-01", "t") - 1
    assert conv("2024-01-02Z", "end", ny, end=True) == conv("2024-01-03T00:00Z", "t") - 1
    # with a time of day, end means that instant
    assert conv("2024-01-02 00:00", "end", ny, end=True) == conv("2024-01-02", "t", ny)
    # the start of a range is the start of the day
    assert conv("2024-01-02", "start", ny) == conv("2024-01-02T00:00-05:00", "t")
