"""Tick buckets end to end (issue 4): creation, exact nanosecond times, order, ranges and
limits, reopen and replay, compaction and info, damaged files.

Every expected value comes from a model kept here: a Python list of (time ns, sequence)
sorted stably by time, so ties keep write order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import struct
import threading
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mkts import engine
from mkts.engine.errors import CorruptFileError, InvalidInputError, SchemaError
from mkts.engine.keys import parse_key

NS = 1_000_000_000
KEY = "AAPL/1Min/TRADE"
JAN_2_2024 = 1_704_153_600  # 2024-01-02 00:00:00 UTC
T10 = (JAN_2_2024 + 10 * 3600) * NS  # 2024-01-02 10:00:00 UTC in ns
# docs/format.md "Tick slots": the 48-byte pointer slot.
SLOT_DTYPE = np.dtype([("_slot", "<i8"), ("head", "<i8"), ("head_bytes", "<u4"),
                       ("head_rows", "<u4"), ("nblobs", "<u4"), ("_check", "<u4"),
                       ("total_bytes", "<i8"), ("nrows", "<i8")])
HEADER_SIZE = 4096  # docs/format.md "Header": one page for a handful of columns


# -- helpers ----------------------------------------------------------------------------------

def ticks(times: Sequence[int] | np.ndarray, seq: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """Tick columns from exact times (ns since 1970): Epoch seconds + Nanoseconds, Seq, Price."""
    t = np.asarray(times, dtype=np.int64)
    s = np.asarray(seq, dtype=np.int64)
    return {"Epoch": t // NS, "Price": s.astype(np.float64) * 0.25, "Seq": s,
            "Nanoseconds": (t % NS).astype(np.int32)}


class Model:
    """The rows a tick bucket must hold: (time ns, seq), stably sorted by time."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []
        self.next_seq = 0

    def add(self, times: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Record a write of `times` (in this order); returns the columns to write."""
        times = [int(t) for t in times]
        seq = list(range(self.next_seq, self.next_seq + len(times)))
        self.next_seq += len(times)
        self.rows.extend(zip(times, seq, strict=True))
        self.rows.sort(key=lambda r: r[0])  # stable: ties keep write order
        return ticks(times, seq)

    def select(self, start: int | None = None, end: int | None = None, limit: int | None = None,
               from_start: bool = False) -> tuple[list[int], list[int]]:
        rows = [r for r in self.rows
                if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
        if limit is not None:
            rows = rows[:limit] if from_start else rows[max(0, len(rows) - limit) :]
        return [r[0] for r in rows], [r[1] for r in rows]


def times_of(r: engine.Result) -> list[int]:
    """Exact row times from the Epoch and Nanoseconds columns (not from r.timestamps)."""
    return (np.asarray(r["Epoch"], dtype=np.int64) * NS
            + np.asarray(r["Nanoseconds"], dtype=np.int64)).tolist()


def assert_rows(r: engine.Result, want: tuple[list[int], list[int]]) -> None:
    t, seq = want
    assert times_of(r) == t
    assert r["Seq"].tolist() == seq
    assert r["Price"].tolist() == [s * 0.25 for s in seq]
    assert r.timestamps.dtype == np.dtype("datetime64[ns]")
    assert r.timestamps.view(np.int64).tolist() == t
    assert ((r["Nanoseconds"] >= 0) & (r["Nanoseconds"] < NS)).all()


def year_file(db: engine.Database, key: str, year: int) -> Any:
    bucket = db.catalog.get(parse_key(key))
    f = db.catalog.year_file(bucket, year)
    assert f is not None
    return f


def read_slots(path: str, nslots: int) -> np.ndarray:
    """The slot array of a year file, read from the raw bytes (docs/format.md layout)."""
    with open(path, "rb") as fh:
        fh.seek(HEADER_SIZE)
        return np.frombuffer(fh.read(nslots * SLOT_DTYPE.itemsize), dtype=SLOT_DTYPE)


BLOCK_HEADER = struct.Struct("<4sHHIIIII")  # docs/format.md "Tick buckets": 28 bytes
ENTRY_DTYPE = np.dtype([("slot", "<u4"), ("rows", "<u4"), ("prev", "<i8"),
                        ("prev_bytes", "<u4"), ("prev_rows", "<u4")])


def block_directory(fh: Any, offset: int, nbytes: int) -> np.ndarray:
    """The directory of the tick block at `offset`, decoded from the raw bytes (docs layout:
    28-byte header, then a zstd frame starting with `entries` 24-byte directory entries)."""
    import zstandard

    fh.seek(offset)
    buf = fh.read(nbytes)
    magic, _, _, entries, _, _, frame_bytes, _ = BLOCK_HEADER.unpack_from(buf, 0)
    assert magic == b"MKTK" and BLOCK_HEADER.size + frame_bytes == nbytes
    raw = zstandard.ZstdDecompressor().decompress(buf[BLOCK_HEADER.size :])
    return np.frombuffer(raw, dtype=ENTRY_DTYPE, count=entries)


def share(nbytes: int, directory: np.ndarray, slot: int) -> int:
    """docs/format.md: an interval's share of a block's bytes, apportioned by rows."""
    cum = np.concatenate(([0], np.cumsum(directory["rows"].astype(np.int64))))
    k = int(np.flatnonzero(directory["slot"] == slot)[0])
    return int(nbytes * cum[k + 1] // cum[-1] - nbytes * cum[k] // cum[-1])


def chain_bytes(path: str, slots: np.ndarray) -> int:
    """Live bytes: each interval's share of every block its chain reaches, walked on disk."""
    total = 0
    with open(path, "rb") as fh:
        for rec in slots[slots["_slot"] != 0]:
            slot = int(rec["_slot"]) - 1
            head, nbytes = int(rec["head"]), int(rec["head_bytes"])
            for _ in range(int(rec["nblobs"])):
                d = block_directory(fh, head, nbytes)
                total += share(nbytes, d, slot)
                e = d[d["slot"] == slot][0]
                head, nbytes = int(e["prev"]), int(e["prev_bytes"])
            assert (head, nbytes) == (0, 0)
    return total


def minutes_in_year(year: int) -> int:
    return ((dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days) * 1440


def flip(path: str, offset: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ mask]))


@contextlib.contextmanager
def reopened(db: engine.Database, **kw: Any) -> Iterator[engine.Database]:
    """Close `db` and open its root again (closed when the block ends)."""
    db.close()
    again = engine.open(db.root, **kw)
    try:
        yield again
    finally:
        again.close()


@pytest.fixture
def open_db(tmp_path: Any) -> Iterator[Callable[..., engine.Database]]:
    """`open_db(name="db", **kw)`: open (and later close) a database under tmp_path."""
    handles: list[engine.Database] = []

    def opener(name: str = "db", **kw: Any) -> engine.Database:
        db = engine.open(os.fspath(tmp_path / name), **kw)
        handles.append(db)
        return db

    yield opener
    for h in handles:
        h.close()


# -- creation and validation ------------------------------------------------------------------

def test_write_variable_true_creates_a_tick_bucket(db: engine.Database) -> None:
    m = Model()
    db.write(KEY, m.add([T10 + 5, T10]), variable=True)
    info = db.info(KEY)
    assert info["kind"] == "variable"
    assert list(info["columns"]) == ["Epoch", "Price", "Seq", "Nanoseconds"]
    assert info["columns"]["Nanoseconds"] == "i4"
    assert info["rows"] == 2
    assert_rows(db.read(KEY), m.select())


def test_create_variable_true_then_a_plain_write_follows_the_bucket(db: engine.Database) -> None:
    db.create(KEY, {"Price": "f8", "Seq": "i8"}, variable=True)
    assert db.info(KEY)["kind"] == "variable"
    db.create(KEY, {"Price": "f8", "Seq": "i8"}, variable=True)  # same definition: a no-op
    m = Model()
    db.write(KEY, m.add([T10 + 999_999_999, T10 + 1]))
    assert_rows(db.read(KEY), m.select())
    with pytest.raises(engine.BucketExistsError):
        db.create(KEY, {"Price": "f8", "Seq": "i8"})  # fixed: a different definition


def test_a_plain_write_follows_an_existing_tick_bucket(db: engine.Database) -> None:
    m = Model()
    db.write(KEY, m.add([T10]), variable=True)
    db.write(KEY, m.add([T10 + 7]))
    db.write(KEY, m.add([T10 + 3]), variable=None)
    assert_rows(db.read(KEY), m.select())


def test_a_new_bucket_without_variable_is_fixed(db: engine.Database, root: str,
                                                snapshot: Callable[[str], Any]) -> None:
    before = snapshot(root)
    with pytest.raises(SchemaError, match="Nanoseconds"):
        db.write(KEY, ticks([T10], [0]))
    assert db.list_keys() == []
    assert snapshot(root) == before
    data = ticks([T10], [0])
    del data["Nanoseconds"]
    db.write(KEY, data)
    assert db.info(KEY)["kind"] == "fixed"
    assert "Nanoseconds" not in db.read(KEY).columns


def test_variable_contradicting_the_bucket_is_an_error(db: engine.Database, root: str,
                                                       snapshot: Callable[[str], Any]) -> None:
    db.write(KEY, ticks([T10], [0]), variable=True)
    fixed = {"Epoch": np.array([JAN_2_2024]), "Close": np.array([1.0])}
    db.write("AAPL/1Min/OHLCV", fixed)
    db.checkpoint()
    before = snapshot(root)
    with pytest.raises(SchemaError, match="variable=False"):
        db.write(KEY, ticks([T10 + 1], [1]), variable=False)
    with pytest.raises(SchemaError, match="variable=True"):
        db.write("AAPL/1Min/OHLCV", fixed, variable=True)
    assert snapshot(root) == before
    assert len(db.read(KEY)) == 1


def _bad_inputs() -> list[tuple[str, dict[str, Any]]]:
    good = ticks([T10, T10 + 1, T10 + 2], [0, 1, 2])
    out: list[tuple[str, dict[str, Any]]] = []

    def case(name: str, **changes: Any) -> None:
        data = dict(good)
        for k, v in changes.items():
            if v is None:
                del data[k]
            else:
                data[k] = v
        out.append((name, data))

    case("nanoseconds negative", Nanoseconds=np.array([0, -1, 5], dtype=np.int32))
    case("nanoseconds one second", Nanoseconds=np.array([0, NS, 5], dtype=np.int64))
    case("nanoseconds far out", Nanoseconds=np.array([0, 1 << 40, 5], dtype=np.int64))
    case("nanoseconds uint64 huge", Nanoseconds=np.array([0, 2**64 - 1, 5], dtype=np.uint64))
    case("nanoseconds missing", Nanoseconds=None)
    case("nanoseconds float", Nanoseconds=np.array([0.0, 1.0, 2.0]))
    case("nanoseconds float whole", Nanoseconds=np.array([0, 1, 2], dtype=np.float32))
    case("nanoseconds bool", Nanoseconds=np.array([True, False, True]))
    case("nanoseconds text", Nanoseconds=np.array(["1", "2", "3"]))
    epoch64 = (np.array([T10, T10 + 1, T10 + 2], dtype=np.int64)).view("datetime64[ns]")
    case("nanoseconds beside datetime64 epoch", Epoch=epoch64)

    case("float epoch", Epoch=np.array([1.0, 2.0, 3.0]) + JAN_2_2024 + 36000)
    case("nanoseconds of another length", Nanoseconds=np.array([0, 1], dtype=np.int32))
    case("epoch past 2261", Epoch=np.array([JAN_2_2024, 9_250_000_000, JAN_2_2024]))
    case("epoch before 1900", Epoch=np.array([JAN_2_2024, -2_208_988_801, JAN_2_2024]))
    case("datetime64 epoch with NaT", Nanoseconds=None,
         Epoch=np.array([T10, T10, -(2**63)], dtype=np.int64).view("datetime64[ns]"))
    case("datetime64 epoch out of range", Nanoseconds=None,
         Epoch=np.array(["2024-01-02", "2300-01-01", "2024-01-02"], dtype="datetime64[s]"))
    return out


@pytest.mark.parametrize(("name", "data"), _bad_inputs(), ids=[n for n, _ in _bad_inputs()])
@pytest.mark.parametrize("existing", [False, True], ids=["new bucket", "existing bucket"])
def test_bad_tick_times_write_nothing(db: engine.Database, root: str,
                                     snapshot: Callable[[str], Any], name: str,
                                     data: dict[str, Any], existing: bool) -> None:
    if existing:
        db.write(KEY, ticks([T10 - NS], [99]), variable=True)
        db.checkpoint()
    before = snapshot(root)
    with pytest.raises(InvalidInputError):
        db.write(KEY, data, variable=True)
    if existing:
        with pytest.raises(InvalidInputError):
            db.write(KEY, data)
    assert snapshot(root) == before
    assert db.list_keys() == ([KEY] if existing else [])
    if existing:
        assert times_of(db.read(KEY)) == [T10 - NS]


@pytest.mark.parametrize("dtype", ["<i8", "<u4", "<i4", "<u8", "<i2"])
def test_integer_nanoseconds_are_accepted_when_they_fit(db: engine.Database, dtype: str) -> None:
    hi = 32_767 if dtype == "<i2" else 999_999_999
    data = ticks([T10, T10 + hi], [0, 1])
    data["Nanoseconds"] = data["Nanoseconds"].astype(dtype)
    db.write(KEY, data, variable=True)
    r = db.read(KEY)
    assert r["Nanoseconds"].dtype == np.int32
    assert times_of(r) == [T10, T10 + hi]


def test_datetime64_epoch_is_split_exactly(db: engine.Database) -> None:
    t = [T10 + 999_999_999, T10 - 1, T10 + 59 * NS + 999_999_999, T10 + 1, T10]
    data = {"Epoch": np.array(t, dtype=np.int64).view("datetime64[ns]"),
            "Price": np.arange(5, dtype=np.float64) * 0.25, "Seq": np.arange(5)}
    db.write(KEY, data, variable=True)
    r = db.read(KEY)
    order = sorted(range(5), key=lambda i: t[i])
    assert times_of(r) == sorted(t)
    assert r["Seq"].tolist() == order
    assert r["Epoch"].tolist() == [x // NS for x in sorted(t)]
    assert r["Nanoseconds"].tolist() == [x % NS for x in sorted(t)]


def test_coarser_datetime64_units_are_exact(db: engine.Database) -> None:
    t_us = np.array([T10 // 1000 + 1, T10 // 1000 + 999_999], dtype="datetime64[us]")
    db.write(KEY, {"Epoch": t_us, "Price": [0.0, 0.25], "Seq": [0, 1]}, variable=True)
    assert times_of(db.read(KEY)) == [T10 + 1000, T10 + 999_999_000]


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York", "Asia/Kolkata"])
def test_pandas_datetime_index_is_split_exactly(db: engine.Database, tz: str | None) -> None:
    t = [T10 + 999_999_999, T10, T10 + 123_456_789, T10 - 1, T10 + 123_456_789]
    index = pd.DatetimeIndex(np.array(t, dtype=np.int64).view("datetime64[ns]"))
    if tz is not None:
        index = index.tz_localize("UTC").tz_convert(tz)
    frame = pd.DataFrame({"Price": np.arange(5) * 0.25, "Seq": np.arange(5)}, index=index)
    db.write(KEY, frame, variable=True)
    r = db.read(KEY)
    order = sorted(range(5), key=lambda i: t[i])
    assert times_of(r) == sorted(t)
    assert r["Seq"].tolist() == order
    back = r.to_pandas()
    assert back.index.tz is not None
    assert back.index.tz_convert("UTC").tz_localize(None).asi8.tolist() == sorted(t)


def test_pandas_frame_with_epoch_and_nanoseconds_columns(db: engine.Database) -> None:
    m = Model()
    frame = pd.DataFrame(m.add([T10 + 5, T10 + NS - 1, T10]))
    db.write(KEY, frame, variable=True)
    assert_rows(db.read(KEY), m.select())


# -- column order and exact times -------------------------------------------------------------

def test_reads_return_epoch_then_the_columns_then_nanoseconds(db: engine.Database) -> None:
    db.create(KEY, {"Size": "i4", "Price": "f8", "Venue": "U4"}, variable=True)
    db.write(KEY, {"Epoch": [JAN_2_2024], "Nanoseconds": [7], "Venue": ["ARCA"],
                   "Price": [1.5], "Size": [10]})
    r = db.read(KEY)
    assert r.columns == ["Epoch", "Size", "Price", "Venue", "Nanoseconds"]
    assert list(r.array.dtype.names) == r.columns
    assert r["Epoch"].dtype == np.int64
    assert r["Nanoseconds"].dtype == np.int32
    assert r.timestamps.dtype == np.dtype("datetime64[ns]")
    assert r.timestamps.tolist() == [JAN_2_2024 * NS + 7]
    assert (r["Size"][0], r["Price"][0], r["Venue"][0]) == (10, 1.5, "ARCA")


def _awkward_times(base_s: int) -> list[int]:
    """Values that MarketStore's 32-bit tick fraction gets wrong, around `base_s` seconds."""
    b = base_s * NS
    return [
        b, b + 1, b + 999_999_999, b + 999_999_996, b + 999_999_995,  # second-flip values
        b + 49 * NS + 999_999_995, b + 50 * NS, b + 57 * NS + 140_000_000,
        b + 59 * NS + 999_999_999, b + 60 * NS, b + 60 * NS - 1,
        b + 3_599 * NS + 999_999_999, b + 3_600 * NS, b + 86_399 * NS + 999_999_999,
        b + 86_400 * NS, b + 86_400 * NS + 1, b + 43_200 * NS + 500_000_000,
        b + 3 * 86_400 * NS + 999_999_999,
    ]


@pytest.mark.parametrize("tf", ["1Sec", "1Min", "1H", "1D", "5Min", "4H"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_every_timestamp_comes_back_exactly(open_db: Callable[..., engine.Database], tf: str,
                                            tz: str) -> None:
    db = open_db(timezone=tz)
    key = f"AAPL/{tf}/TRADE"
    m = Model()
    times = _awkward_times(JAN_2_2024) + [
        -1, 0, 1, -NS, -86_400 * NS + 1,  # around 1970, also negative epochs
        -2_208_988_800 * NS + 86_400 * NS,  # 1900-01-02
        1_710_054_000 * NS - 1, 1_710_054_000 * NS,  # 2024-03-10 07:00 UTC: NY springs forward
        1_730_613_600 * NS - 1, 1_730_613_600 * NS,  # 2024-11-03 06:00 UTC: NY falls back
    ]
    db.write(key, m.add(times), variable=True)
    assert_rows(db.read(key), m.select())
    for t in times:  # each one alone, by an exact range
        r = db.read(key, np.datetime64(t, "ns"), np.datetime64(t, "ns"))
        assert set(times_of(r)) == {t}
        assert len(r) == sum(1 for x in times if x == t)


def test_new_york_1d_ticks_are_labelled_at_local_midnight(
        open_db: Callable[..., engine.Database]) -> None:
    """1D intervals are local calendar days (23 h and 25 h around DST); the year file follows
    the local year; each tick is stored as an offset from its local midnight."""
    ny = zoneinfo.ZoneInfo("America/New_York")
    db = open_db(timezone="America/New_York")
    key = "AAPL/1D/TRADE"

    def local(*a: int, fold: int = 0, ns: int = 0) -> int:
        return int(dt.datetime(*a, tzinfo=ny, fold=fold).timestamp()) * NS + ns

    times = [
        local(2023, 12, 31, 23, 59, 59, ns=999_999_999),  # 2024-01-01 04:59:59.999999999Z
        local(2024, 1, 1), local(2024, 1, 1, 0, 0, 0, ns=1),
        local(2024, 3, 9, 23, 59, 59, ns=999_999_999), local(2024, 3, 10),
        local(2024, 3, 10, 1, 59, 59, ns=999_999_999), local(2024, 3, 10, 3),  # spring forward
        local(2024, 3, 10, 23, 59, 59, ns=999_999_999),
        local(2024, 11, 3, 1, 30), local(2024, 11, 3, 1, 30, fold=1),  # the same wall time twice
        local(2024, 11, 3, 23, 59, 59, ns=999_999_999), local(2024, 11, 4),
        local(2024, 12, 31, 23, 59, 59, ns=999_999_999),
    ]
    m = Model()
    db.write(key, m.add(times[::-1]), variable=True)
    assert_rows(db.read(key), m.select())
    assert db.info(key)["years"] == [2023, 2024]
    # Each local day read alone by [local midnight, next local midnight - 1 ns].
    days = sorted({dt.datetime.fromtimestamp(t // NS, ny).date() for t in times})
    for day in days:
        lo = local(day.year, day.month, day.day)
        nxt = day + dt.timedelta(days=1)
        hi = local(nxt.year, nxt.month, nxt.day) - 1
        assert_rows(db.read(key, np.datetime64(lo, "ns"), np.datetime64(hi, "ns")),
                    m.select(lo, hi))
    # On disk: slot = local day of the year, offset = time - local midnight.
    from mkts.engine.ticks import read_interval

    for t in times:
        d = dt.datetime.fromtimestamp(t // NS, ny).date()
        f = year_file(db, key, d.year)
        slot = (d - dt.date(d.year, 1, 1)).days
        rec = f.slots[slot]
        assert int(rec["_slot"]) == slot + 1
        rows = read_interval(f, f.header.schema, slot, rec)
        assert t - local(d.year, d.month, d.day) in rows.ns.tolist()


# -- order ------------------------------------------------------------------------------------

def test_ties_keep_write_order_across_calls_and_duplicates_are_kept(db: engine.Database) -> None:
    m = Model()
    db.write(KEY, m.add([T10 + 5, T10 + 5]), variable=True)
    db.write(KEY, m.add([T10 + 5]))
    db.write(KEY, m.add([T10 + 9, T10 + 5, T10 + 1]))
    db.write(KEY, m.add([T10 + 5, T10 + 5]))
    r = db.read(KEY)
    assert_rows(r, m.select())
    assert r["Seq"].tolist() == [5, 0, 1, 2, 4, 6, 7, 3]
    # Exact duplicates (same time, same values) are all kept.
    dup = ticks([T10 + 2] * 3, [50, 50, 50])
    db.write(KEY, dup)
    assert (db.read(KEY)["Seq"] == 50).sum() == 3


def test_unsorted_input_is_sorted_stably(db: engine.Database) -> None:
    rng = np.random.default_rng(11)
    t = T10 + rng.integers(0, 5, 200) * 250_000_000 + rng.integers(0, 3, 200) * 60 * NS
    m = Model()
    db.write(KEY, m.add(t), variable=True)
    assert_rows(db.read(KEY), m.select())


# -- ranges and limits ------------------------------------------------------------------------

def test_start_and_end_are_inclusive_to_the_nanosecond(db: engine.Database) -> None:
    m = Model()
    t2 = T10 + 2 * NS
    db.write(KEY, m.add([t2 - 1, t2, t2 + 1, t2 + NS - 1, t2 + NS]), variable=True)
    r = db.read(KEY, end="2024-01-02T10:00:02")
    assert times_of(r) == [t2 - 1, t2]
    assert_rows(db.read(KEY, end=JAN_2_2024 + 36_002), m.select(end=t2))
    assert_rows(db.read(KEY, start="2024-01-02T10:00:02.000000001"), m.select(start=t2 + 1))
    assert_rows(db.read(KEY, "2024-01-02T10:00:02.000000001", "2024-01-02T10:00:02.999999999"),
                m.select(t2 + 1, t2 + NS - 1))
    assert_rows(db.read(KEY, pd.Timestamp(t2, unit="ns"), pd.Timestamp(t2, unit="ns")),
                m.select(t2, t2))
    assert_rows(db.read(KEY, np.datetime64(t2 + 1, "ns"), np.datetime64(t2 + NS, "ns")),
                m.select(t2 + 1, t2 + NS))
    assert len(db.read(KEY, np.datetime64(t2 + 2, "ns"), np.datetime64(t2 + NS - 2, "ns"))) == 0
    assert len(db.read(KEY, np.datetime64(t2 + 1, "ns"), np.datetime64(t2, "ns"))) == 0


def test_limit_counts_rows_from_the_end_or_from_the_start(db: engine.Database) -> None:
    m = Model()
    times = [T10 + i * 20 * NS + (i % 4) for i in range(30)] + [T10 + 40 * NS] * 3
    db.write(KEY, m.add(times), variable=True)
    for limit in [0, 1, 2, 3, 4, 5, 7, 32, 33, 34, 100]:
        assert_rows(db.read(KEY, limit=limit), m.select(limit=limit))
        assert_rows(db.read(KEY, limit=limit, limit_from_start=True),
                    m.select(limit=limit, from_start=True))
        lo, hi = T10 + 40 * NS, T10 + 300 * NS
        assert_rows(db.read(KEY, np.datetime64(lo, "ns"), np.datetime64(hi, "ns"), limit=limit),
                    m.select(lo, hi, limit))
        assert_rows(db.read(KEY, np.datetime64(lo, "ns"), np.datetime64(hi, "ns"), limit=limit,
                            limit_from_start=True), m.select(lo, hi, limit, True))


def test_ranges_and_limits_across_year_boundaries(db: engine.Database) -> None:
    y2023 = 1_672_531_200 * NS
    y2024 = 1_704_067_200 * NS
    y2025 = 1_735_689_600 * NS
    m = Model()
    times = [y2023 - 1, y2023, y2023 + 1, y2024 - NS, y2024 - 1, y2024 - 1, y2024, y2024 + 1,
             y2025 - 1, y2025, y2024 + 61 * NS, y2024 - 61 * NS, y2025 + 59 * NS + 999_999_999]
    db.write(KEY, m.add(times[:5]), variable=True)
    db.write(KEY, m.add(times[5:]))
    assert db.info(KEY)["years"] == [2022, 2023, 2024, 2025]
    assert_rows(db.read(KEY), m.select())
    points: list[int | None] = [None, y2023 - 1, y2023, y2024 - 1, y2024, y2024 + 1, y2025]
    for lo in points:
        for hi in points:
            for limit in [None, 1, 2, 3, 6]:
                for from_start in [False, True]:
                    r = db.read(KEY, None if lo is None else np.datetime64(lo, "ns"),
                                None if hi is None else np.datetime64(hi, "ns"), limit=limit,
                                limit_from_start=from_start)
                    assert_rows(r, m.select(lo, hi, limit, from_start))


def test_projections_keep_nanoseconds_last(db: engine.Database) -> None:
    m = Model()
    db.write(KEY, m.add([T10 + 3, T10 + NS - 1]), variable=True)
    want_t, want_seq = m.select()
    cases = {
        ("Seq",): ["Epoch", "Seq", "Nanoseconds"],
        ("Seq", "Price"): ["Epoch", "Seq", "Price", "Nanoseconds"],
        ("Nanoseconds", "Price"): ["Epoch", "Price", "Nanoseconds"],
        ("Price", "Nanoseconds", "Seq"): ["Epoch", "Price", "Seq", "Nanoseconds"],
        ("Epoch",): ["Epoch", "Nanoseconds"],
        ("Nanoseconds",): ["Epoch", "Nanoseconds"],
    }
    for cols, want in cases.items():
        r = db.read(KEY, columns=list(cols))
        assert r.columns == want, cols
        assert list(r.array.dtype.names) == want
        assert times_of(r) == want_t
        assert r.timestamps.view(np.int64).tolist() == want_t
        if "Seq" in want:
            assert r["Seq"].tolist() == want_seq
    assert db.read(KEY, columns="Seq").columns == ["Epoch", "Seq", "Nanoseconds"]
    with pytest.raises(SchemaError, match="Volume"):
        db.read(KEY, columns=["Volume"])
    with pytest.raises(SchemaError):
        db.read(KEY, columns=["Seq"])["Price"]


@pytest.mark.parametrize("tf", ["1Sec", "1Min"])
def test_five_ticks_within_one_second(open_db: Callable[..., engine.Database], tf: str) -> None:
    db = open_db()
    key = f"AAPL/{tf}/TRADE"
    s = T10 + 17 * NS
    m = Model()
    times = [s + 999_999_999, s + 250_000_000, s, s + 250_000_000, s + 1]
    db.write(key, m.add(times), variable=True)
    assert_rows(db.read(key), m.select())
    edges = sorted({x + d for x in times for d in (-1, 0, 1)})
    for lo in edges:
        for hi in edges:
            for limit in [None, 0, 1, 2, 4, 6]:
                for from_start in [False, True]:
                    r = db.read(key, np.datetime64(lo, "ns"), np.datetime64(hi, "ns"),
                                limit=limit, limit_from_start=from_start)
                    assert_rows(r, m.select(lo, hi, limit, from_start))


def test_several_calls_into_one_interval_merge_in_time_and_write_order(
        db: engine.Database) -> None:
    m = Model()
    batches = [
        [T10 + 30 * NS, T10 + 10 * NS],  # two rows
        [T10 + 20 * NS],  # between them
        [T10 + 10 * NS, T10 + 40 * NS, T10],  # a tie, a later and an earlier row
        [T10 + 59 * NS + 999_999_999],
        [T10 + 10 * NS] * 4,
        [T10 + i * NS for i in range(60)],
    ]
    for i, b in enumerate(batches):
        db.write(KEY, m.add(b), variable=True)
        assert_rows(db.read(KEY), m.select())
        assert db.info(KEY)["rows"] == len(m.rows), i
    with reopened(db) as db2:
        assert_rows(db2.read(KEY), m.select())


def test_many_single_tick_appends_interleaved_with_out_of_order_ticks(
        open_db: Callable[..., engine.Database]) -> None:
    db = open_db(sync="off")
    rng = np.random.default_rng(5)
    m = Model()
    n = 600
    for i in range(n):
        if i % 10 == 9:  # an older tick, sometimes tied with an existing one
            t = m.rows[int(rng.integers(0, len(m.rows)))][0] if i % 20 == 19 else \
                T10 + int(rng.integers(0, i * 50_000_000))
        else:
            t = T10 + i * 50_000_000  # 20 ticks a second; 1Min interval gets 1200 max
        db.write(KEY, m.add([t]), variable=True)
        if i % 150 == 149:
            assert_rows(db.read(KEY), m.select())
    f = year_file(db, KEY, 2024)
    occupied = f.slots[f.slots["_slot"] != 0]
    assert (occupied["nblobs"] <= np.array([int(x).bit_length() for x in occupied["nrows"]])).all()
    assert int(occupied["nrows"].sum()) == n
    assert_rows(db.read(KEY), m.select())
    with reopened(db) as db2:
        assert_rows(db2.read(KEY), m.select())
        assert db2.info(KEY)["rows"] == n


def test_a_million_random_ticks_with_duplicated_times_match_a_stable_sort(
        db: engine.Database) -> None:
    rng = np.random.default_rng(2024)
    n = 1_000_000
    t = T10 + rng.integers(0, 6 * 3600 * NS, n)  # six hours: ~2800 ticks per 1Min interval
    dup = rng.random(n) < 0.2
    t[dup] = t[rng.integers(0, n, int(dup.sum()))]
    seq = np.arange(n, dtype=np.int64)
    cuts = [0, 300_000, 550_000, 800_000, n]  # four calls over overlapping time ranges
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        db.write(KEY, ticks(t[a:b], seq[a:b]), variable=True)
    order = np.argsort(t, kind="stable")
    want_t, want_seq = t[order], seq[order]
    r = db.read(KEY)
    assert len(r) == n
    assert np.array_equal(r.timestamps.view(np.int64), want_t)
    assert np.array_equal(r["Seq"], want_seq)
    assert np.array_equal(r["Price"], want_seq * 0.25)
    assert db.info(KEY)["rows"] == n
    # A few ranges and limits, against the same stable sort.
    for lo_i, hi_i, limit, from_start in [(1000, 5000, None, False), (0, n - 1, 777, False),
                                          (123_456, 654_321, 1000, True), (5, 5, None, False)]:
        lo, hi = int(want_t[lo_i]), int(want_t[hi_i])
        a = int(np.searchsorted(want_t, lo, "left"))
        b = int(np.searchsorted(want_t, hi, "right"))
        sel = want_seq[a:b]
        if limit is not None:
            sel = sel[:limit] if from_start else sel[-limit:]
        rr = db.read(KEY, np.datetime64(lo, "ns"), np.datetime64(hi, "ns"), limit=limit,
                     limit_from_start=from_start)
        assert np.array_equal(rr["Seq"], sel)
    assert np.array_equal(db.read(KEY, limit=10)["Seq"], want_seq[-10:])


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_concurrent_writers_into_one_interval_keep_commit_order_on_ties(
        open_db: Callable[..., engine.Database], sync: str) -> None:
    """Group commit plans several transactions before applying them (and interval mode
    applies them later still): ties must follow the transaction numbers."""
    db = open_db(sync=sync, sync_interval_ms=60_000)
    db.create(KEY, {"Price": "f8", "Seq": "i8"}, variable=True)
    written: list[tuple[int, int, int, int]] = []  # (time, txn, position, seq)
    lock = threading.Lock()

    def writer(w: int) -> None:
        for i in range(40):
            s = w * 1000 + i
            times = [T10 + (i % 3), T10 + 7] if i % 2 else [T10 + 7]
            txn = db.write(KEY, ticks(times, [s] * len(times)))
            with lock:
                written.extend((t, txn, p, s) for p, t in enumerate(times))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    want = sorted(written)  # by time, then commit order, then position in the call
    r = db.read(KEY)
    assert times_of(r) == [x[0] for x in want]
    assert r["Seq"].tolist() == [x[3] for x in want]
    with reopened(db) as db2:
        assert db2.read(KEY)["Seq"].tolist() == [x[3] for x in want]


@pytest.mark.slow
def test_a_million_ticks_in_many_unsorted_batches_into_a_1sec_bucket(
        open_db: Callable[..., engine.Database]) -> None:
    """Every 1Sec interval receives ~30 appends out of time order (chains, merges)."""
    db = open_db(sync="off")
    key = "AAPL/1Sec/TRADE"
    rng = np.random.default_rng(99)
    n = 1_000_000
    t = T10 + rng.integers(0, 3600 * NS, n)
    dup = rng.random(n) < 0.2
    t[dup] = t[rng.integers(0, n, int(dup.sum()))]
    seq = np.arange(n, dtype=np.int64)
    for part in np.array_split(np.arange(n), 30):
        db.write(key, ticks(t[part], seq[part]), variable=True)
    order = np.argsort(t, kind="stable")

    def check(d: engine.Database) -> None:
        r = d.read(key)
        assert np.array_equal(r.timestamps.view(np.int64), t[order])
        assert np.array_equal(r["Seq"], seq[order])

    check(db)
    assert db.info(key)["garbage_bytes"] > 0
    db.compact(key)
    assert db.info(key)["garbage_bytes"] == 0
    check(db)
    with reopened(db) as db2:
        check(db2)
        assert db2.info(key)["rows"] == n


# -- reopen and replay ------------------------------------------------------------------------

def _write_history(db: engine.Database, m: Model) -> list[int]:
    """A history with chains, merges, several intervals and a year boundary; returns txns."""
    y2024 = 1_704_067_200 * NS
    txns = [db.write(KEY, m.add([T10 + 5, T10 + 5, T10 - 1]), variable=True)]
    for i in range(12):
        txns.append(db.write(KEY, m.add([T10 + (i % 4) * NS, T10 + 61 * NS + i])))
    txns.append(db.write(KEY, m.add([y2024 - 1, y2024, T10 + 5, T10 + 3 * 86_400 * NS])))
    txns.append(db.write(KEY, m.add([T10 + 5] * 3)))
    return txns


def _log_records(root: str) -> int:
    from mkts.wal import OsFileSystem, WriteAheadLog

    log = WriteAheadLog.open(os.path.join(root, "wal"), OsFileSystem(), readonly=True)
    try:
        return sum(1 for _ in log.records())
    finally:
        log.close()


def test_data_is_identical_after_close_and_reopen(db: engine.Database) -> None:
    m = Model()
    _write_history(db, m)
    before = db.read(KEY).array.copy()
    info = db.info(KEY)
    with reopened(db) as db2:
        assert db2.read(KEY).array.tobytes() == before.tobytes()
        assert_rows(db2.read(KEY), m.select())
        again = db2.info(KEY)
        assert (again["rows"], again["live_bytes"], again["garbage_bytes"]) == (
            info["rows"], info["live_bytes"], info["garbage_bytes"])
    with engine.open(db.root, readonly=True) as ro:
        assert_rows(ro.read(KEY), m.select())


def test_replaying_the_log_never_duplicates_ticks(tmp_path: Any) -> None:
    """The year files already hold what the log redoes: replay (once, twice, or onto files
    from the middle of the history) must leave exactly the modelled rows."""
    root, mid, crash = (os.fspath(tmp_path / n) for n in ("db", "mid", "crash"))
    log_full = os.fspath(tmp_path / "log-full")
    m = Model()
    db = engine.open(root)
    try:
        txns = _write_history(db, m)
        part_one = m.select()
        shutil.copytree(root, mid)  # year files and log after part one, handle still open
        txns += [db.write(KEY, m.add([T10 + 5, T10 + 2 * NS])), db.write(KEY, m.add([T10]))]
        shutil.copytree(root, crash)  # as if the process died here
        shutil.copytree(os.path.join(root, "wal"), log_full)
    finally:
        db.close()
    assert len(set(txns)) == len(txns)
    assert _log_records(crash) == len(txns)  # the copy really holds an unretired log

    # 1. Replay onto year files that already hold every transaction.
    with engine.open(crash) as db2:
        assert db2.info(KEY)["rows"] == len(m.rows)
        assert_rows(db2.read(KEY), m.select())
    # 2. Replay the same log a second time.
    shutil.rmtree(os.path.join(crash, "wal"))
    shutil.copytree(log_full, os.path.join(crash, "wal"))
    assert _log_records(crash) == len(txns)
    with engine.open(crash) as db3:
        assert db3.info(KEY)["rows"] == len(m.rows)
        assert_rows(db3.read(KEY), m.select())
    with engine.open(crash) as db4:  # and nothing is left to replay
        assert_rows(db4.read(KEY), m.select())
    # 3. The middle copy replays its own log; then, given the full log, it catches up.
    with engine.open(mid) as db5:
        assert db5.info(KEY)["rows"] == len(part_one[0])
        assert_rows(db5.read(KEY), part_one)
    shutil.rmtree(os.path.join(mid, "wal"))
    shutil.copytree(log_full, os.path.join(mid, "wal"))
    with engine.open(mid) as db6:
        assert db6.info(KEY)["rows"] == len(m.rows)
        assert_rows(db6.read(KEY), m.select())


# -- compaction and info ----------------------------------------------------------------------

def _check_bytes(db: engine.Database, key: str, year: int) -> tuple[int, int]:
    """(live, garbage) of one year file, measured on disk independently of info()."""
    f = year_file(db, key, year)
    nslots = minutes_in_year(year)
    data_start = HEADER_SIZE + nslots * SLOT_DTYPE.itemsize
    assert f.data_start == data_start
    size = os.path.getsize(f.path)
    live = chain_bytes(f.path, read_slots(f.path, nslots))
    return live, size - data_start - live


def test_info_reports_live_and_garbage_bytes_consistent_with_the_file(
        db: engine.Database) -> None:
    m = Model()
    for i in range(40):
        db.write(KEY, m.add([T10 + i * NS, T10 + 90 * NS - i]), variable=True)
    info = db.info(KEY)
    live, garbage = _check_bytes(db, KEY, 2024)
    assert (info["live_bytes"], info["garbage_bytes"]) == (live, garbage)
    assert garbage > 0  # merged-away blobs
    assert info["rows"] == 80


def test_compact_keeps_values_and_drops_garbage(db: engine.Database) -> None:
    m = Model()
    y2024 = 1_704_067_200 * NS
    for i in range(60):
        db.write(KEY, m.add([T10 + (i % 7) * NS + 3, y2024 - 1 - (i % 3) * NS]), variable=True)
    db.write("AAPL/1Min/OHLCV", {"Epoch": [JAN_2_2024], "Close": [1.0]})
    before = db.read(KEY).array.copy()
    info0 = db.info(KEY)
    assert info0["garbage_bytes"] > 0
    out = db.compact(KEY)
    assert out["before"] == info0["live_bytes"] + info0["garbage_bytes"]
    info1 = db.info(KEY)
    assert db.read(KEY).array.tobytes() == before.tobytes()
    assert info1["garbage_bytes"] == 0
    assert info1["live_bytes"] <= info0["live_bytes"]
    assert out["after"] == info1["live_bytes"]
    assert info1["rows"] == len(m.rows)
    for year in (2023, 2024):
        live, garbage = _check_bytes(db, KEY, year)
        assert garbage == 0
        f = year_file(db, KEY, year)
        slots = read_slots(f.path, minutes_in_year(year))
        assert (slots[slots["_slot"] != 0]["nblobs"] == 1).all()
    assert not [n for n in os.listdir(os.path.dirname(year_file(db, KEY, 2024).path))
                if n.endswith(".tmp")]
    assert db.compact("AAPL/1Min/OHLCV") == {"before": 0, "after": 0}
    # Writing after compaction appends and merges as before; reopening keeps it all.
    db.write(KEY, m.add([T10 + 3, T10 + 2]))
    assert_rows(db.read(KEY), m.select())
    live, garbage = _check_bytes(db, KEY, 2024)
    assert (db.info(KEY)["live_bytes"], db.info(KEY)["garbage_bytes"]) == (
        live + _check_bytes(db, KEY, 2023)[0], garbage)
    with reopened(db) as db2:
        assert_rows(db2.read(KEY), m.select())
        db2.compact(KEY)
        assert db2.info(KEY)["garbage_bytes"] == 0
        assert_rows(db2.read(KEY), m.select())


# -- damaged files ----------------------------------------------------------------------------

def _damaged_setup(db: engine.Database) -> tuple[Model, str, int]:
    """Ticks in three intervals written separately (so each has blocks of its own: a damaged
    block only affects the intervals it holds); the middle one (10:01) gets a chain of two."""
    m = Model()
    db.write(KEY, m.add([T10]), variable=True)
    db.write(KEY, m.add([T10 + 120 * NS]))
    db.write(KEY, m.add([T10 + 60 * NS + 1, T10 + 60 * NS + 2]))
    db.write(KEY, m.add([T10 + 60 * NS]))
    f = year_file(db, KEY, 2024)
    slot = (JAN_2_2024 + 36_060 - 1_704_067_200) // 60
    assert int(f.slots[slot]["nblobs"]) == 2
    return m, f.path, slot


@pytest.mark.parametrize("where", ["magic", "flags", "entries", "rows", "raw size",
                                   "frame bytes", "checksum", "payload", "last byte",
                                   "older block payload", "older block header"])
def test_a_damaged_block_raises_a_named_error(db: engine.Database, where: str) -> None:
    m, path, slot = _damaged_setup(db)
    f = year_file(db, KEY, 2024)
    rec = f.slots[slot]
    head, nbytes = int(rec["head"]), int(rec["head_bytes"])
    with open(path, "rb") as fh:
        e = block_directory(fh, head, nbytes)[0]
        older, older_bytes = int(e["prev"]), int(e["prev_bytes"])
    h = BLOCK_HEADER.size
    offset = {"magic": head, "flags": head + 4, "entries": head + 8, "rows": head + 13,
              "raw size": head + 17, "frame bytes": head + 21, "checksum": head + 25,
              "payload": head + h + (nbytes - h) // 2, "last byte": head + nbytes - 1,
              "older block payload": older + h + (older_bytes - h) // 2,
              "older block header": older + 9}[where]
    root = db.root
    db.close()
    flip(path, offset)
    with engine.open(root) as db2:
        with pytest.raises(CorruptFileError) as exc:
            db2.read(KEY)
        assert path in str(exc.value)
        with pytest.raises(CorruptFileError):
            db2.read(KEY, np.datetime64(T10 + 60 * NS, "ns"), np.datetime64(T10 + 60 * NS, "ns"))
        # Undamaged intervals still read exactly.
        lo, hi = T10 + 120 * NS, T10 + 180 * NS
        assert_rows(db2.read(KEY, np.datetime64(lo, "ns"), np.datetime64(hi, "ns")),
                    m.select(lo, hi))
        assert_rows(db2.read(KEY, end=np.datetime64(T10 + 59 * NS, "ns")),
                    m.select(end=T10 + 59 * NS))
        # Compaction refuses to copy damage, and leaves the file as it was.
        size = os.path.getsize(path)
        with pytest.raises(CorruptFileError):
            db2.compact(KEY)
        assert os.path.getsize(path) == size
        assert_rows(db2.read(KEY, np.datetime64(lo, "ns"), np.datetime64(hi, "ns")),
                    m.select(lo, hi))


def test_a_damaged_shared_block_fails_every_interval_it_holds(db: engine.Database) -> None:
    """One write's intervals share a block: damage to it is reported for each of them (naming
    the file and slot), and intervals in other blocks still read exactly."""
    m = Model()
    db.write(KEY, m.add([T10, T10 + 60 * NS, T10 + 120 * NS]), variable=True)
    db.write(KEY, m.add([T10 + 180 * NS]))
    f = year_file(db, KEY, 2024)
    first = (JAN_2_2024 + 36_000 - 1_704_067_200) // 60
    recs = f.slots[first : first + 4]
    assert len(set(recs["head"][:3].tolist())) == 1 and recs["head"][3] != recs["head"][0]
    head, nbytes = int(recs["head"][0]), int(recs["head_bytes"][0])
    root, path = db.root, f.path
    db.close()
    flip(path, head + BLOCK_HEADER.size + (nbytes - BLOCK_HEADER.size) // 2)
    with engine.open(root) as db2:
        for i in range(3):
            t = T10 + i * 60 * NS
            with pytest.raises(CorruptFileError, match=f"slot {first + i}\\b") as exc:
                db2.read(KEY, np.datetime64(t, "ns"), np.datetime64(t + 59 * NS, "ns"))
            assert path in str(exc.value)
        lo = T10 + 180 * NS
        assert_rows(db2.read(KEY, np.datetime64(lo, "ns")), m.select(lo))


@pytest.mark.parametrize("change", ["head past eof", "head inside slots", "head negative",
                                    "head zero", "head bytes zero", "head bytes short",
                                    "head bytes long", "too many blobs", "too few blobs",
                                    "row count", "slot number"])
def test_a_damaged_slot_raises_a_named_error(db: engine.Database, change: str) -> None:
    _, path, slot = _damaged_setup(db)
    root = db.root
    db.close()
    slot_at = HEADER_SIZE + slot * SLOT_DTYPE.itemsize
    with open(path, "r+b") as fh:
        fh.seek(slot_at)
        rec = np.frombuffer(fh.read(SLOT_DTYPE.itemsize), dtype=SLOT_DTYPE).copy()
        size = os.path.getsize(path)
        if change == "head past eof":
            rec["head"] = size + 4096
        elif change == "head inside slots":
            rec["head"] = HEADER_SIZE + 10 * SLOT_DTYPE.itemsize
        elif change == "head negative":
            rec["head"] = -100
        elif change == "head zero":
            rec["head"] = 0
        elif change == "head bytes zero":
            rec["head_bytes"] = 0
        elif change == "head bytes short":
            rec["head_bytes"] -= 1
        elif change == "head bytes long":
            rec["head_bytes"] += 1
        elif change == "too many blobs":
            rec["nblobs"] += 1
        elif change == "too few blobs":
            rec["nblobs"] -= 1
        elif change == "row count":
            rec["nrows"] += 1
        else:
            rec["_slot"] += 1
        fh.seek(slot_at)
        fh.write(rec.tobytes())
    with engine.open(root) as db2:
        with pytest.raises(CorruptFileError) as exc:
            db2.read(KEY)
        assert path in str(exc.value)


def test_writing_into_a_damaged_interval_fails_and_writes_nothing(
        db: engine.Database, snapshot: Callable[[str], Any]) -> None:
    m, path, slot = _damaged_setup(db)
    root = db.root
    f = year_file(db, KEY, 2024)
    head = int(f.slots[slot]["head"])
    db.close()
    flip(path, head + 40)
    with engine.open(root) as db2:
        db2.checkpoint()
        before = snapshot(root)
        with pytest.raises(CorruptFileError):
            db2.write(KEY, ticks([T10 + 60 * NS + 5], [1000]))
        assert snapshot(root) == before
        # Other intervals still take writes.
        db2.write(KEY, m.add([T10 + 120 * NS + 1]))
        lo = T10 + 120 * NS
        assert_rows(db2.read(KEY, np.datetime64(lo, "ns")), m.select(lo))
