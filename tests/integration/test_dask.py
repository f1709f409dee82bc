"""`mkts.read_dask` on a dask.distributed LocalCluster of two worker processes.

The oracle is the engine itself: every computed frame must equal `db.read(...).to_pandas()`
(plus the Symbol column) for fixed and tick buckets, ranges that cut years and projections.
Partition reads are counted from the workers' own `mkts.dask` debug log, fetched with
`client.run`, so pruning is checked where the reads happen.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from mkts import engine

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

import pandas as pd  # noqa: E402 - after the skips: both come with dask[dataframe]

import mkts  # noqa: E402

# distributed warns (in this process) when its scratch directory takes over a second to
# set up, as it can on a busy shared disk; that is no failure of ours.
SLOW_SCRATCH = "ignore:Creating scratch directories is taking a surprisingly long time:UserWarning"
pytestmark = pytest.mark.filterwarnings(SLOW_SCRATCH)

HOUR_START = 1_656_633_600  # 2022-07-01 00:00 UTC; two years of hourly bars: 2022..2024
HOURS = 2 * 365 * 24
SYMBOLS = ("AAPL", "MSFT", "IBM")
BARS = "{}/1H/OHLCV"
TICKS = "AAPL/1Min/TRADES"
NEW_YEAR_2023_NS = 1_672_531_200 * 1_000_000_000
_READ_LOG = "mkts-test-reads"


def _bars(sym_index: int) -> dict[str, np.ndarray]:
    n = np.arange(HOURS)
    return {"Epoch": HOUR_START + 3600 * n, "Open": (n + sym_index).astype("f4"),
            "Close": (n * 2 + sym_index).astype("f8"), "Volume": n * 10 + sym_index}


def _ticks() -> dict[str, np.ndarray]:
    """Bursty ticks around the 2022/2023 new year, exact nanoseconds, some times repeated,
    and a few in 2024 (three year files)."""
    rng = np.random.default_rng(3)
    t = NEW_YEAR_2023_NS + np.sort(rng.integers(-3_600 * 10**9, 3_600 * 10**9, 4_000))
    t[100:103] = t[100]  # equal times keep write order
    later = NEW_YEAR_2023_NS + 400 * 86_400 * 10**9 + np.arange(50) * 1_000_003
    t = np.concatenate([t, later])
    return {"Epoch": t.astype("datetime64[ns]"), "Price": rng.normal(100, 1, len(t)),
            "Size": np.arange(len(t), dtype="i4")}


@pytest.fixture(scope="module")
def universe(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = os.fspath(tmp_path_factory.mktemp("dask") / "db")
    with engine.open(root, sync="off") as db:
        for i, s in enumerate(SYMBOLS):
            db.write(BARS.format(s), _bars(i))
        db.write(TICKS, _ticks(), variable=True)
        db.write("AAPL/1D/OHLCV", {"Epoch": np.array([HOUR_START]), "Close": np.array([1.0])})
    return root


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    scratch = os.fspath(tmp_path_factory.mktemp("dask-scratch"))
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      local_directory=scratch) as cluster, Client(cluster) as c:
        def install() -> None:
            import logging.handlers

            log = logging.getLogger("mkts.dask")
            handler = logging.handlers.BufferingHandler(1_000_000)
            handler.set_name(_READ_LOG)
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
            log.propagate = False

        c.run(install)
        yield c


def _reads(client: Any) -> list[tuple[str, int, list[str]]]:
    """(key, year, columns read) of every partition read on the workers since the last call."""
    def take() -> list[tuple[str, int, list[str]]]:
        log = logging.getLogger("mkts.dask")
        handler: Any = next(h for h in log.handlers if h.get_name() == _READ_LOG)
        out = [(r.args[0], r.args[1], list(r.args[3])) for r in handler.buffer]
        handler.buffer.clear()
        return out

    return sorted(x for per_worker in client.run(take).values() for x in per_worker)


def _engine_frame(root: str, key: str, start: Any = None, end: Any = None,
                  columns: list[str] | None = None) -> Any:
    """The oracle: the engine's own read as pandas, with the Symbol column read_dask adds."""
    with engine.open(root, readonly=True) as db:
        df = db.read(key, start, end, columns=columns).to_pandas()
    df.insert(0, "Symbol", pd.array([key.split("/")[0]] * len(df), dtype="string"))
    return df


def _ts(text: str, tz: str = "UTC") -> Any:
    return pd.Timestamp(text).tz_localize(tz)


def test_fixed_bucket_equals_engine_read(universe: str, client: Any) -> None:
    ddf = mkts.read_dask(universe, "AAPL/1H/OHLCV")
    assert ddf.npartitions == 3 and ddf.known_divisions
    assert ddf.divisions == (_ts("2022-01-01"), _ts("2023-01-01"), _ts("2024-01-01"),
                             _ts("2024-12-31 23:59:59.999999999"))
    pd.testing.assert_frame_equal(ddf.compute(), _engine_frame(universe, "AAPL/1H/OHLCV"))


def test_range_that_cuts_years_equals_engine_read(universe: str, client: Any) -> None:
    start, end = "2022-11-15T10:30:00", "2024-02-01T05:00:00"
    ddf = mkts.read_dask(universe, "MSFT/1H/OHLCV", start, end)
    # the first division is the start floored to its interval: the 10:00 bar is in range
    assert ddf.divisions == (_ts("2022-11-15 10:00"), _ts("2023-01-01"), _ts("2024-01-01"),
                             _ts("2024-02-01 05:00"))
    got = ddf.compute()
    pd.testing.assert_frame_equal(got, _engine_frame(universe, "MSFT/1H/OHLCV", start, end))
    assert got.index[0] == _ts("2022-11-15 10:00") and got.index[-1] == _ts("2024-02-01 05:00")


def test_tick_bucket_equals_engine_read_to_the_nanosecond(universe: str, client: Any) -> None:
    pd.testing.assert_frame_equal(mkts.read_dask(universe, TICKS).compute(),
                                  _engine_frame(universe, TICKS))
    t = _ticks()["Epoch"]
    start, end = t[1_000], t[3_000]  # exact tick times on both sides of the new year
    ddf = mkts.read_dask(universe, TICKS, start, end)
    assert ddf.npartitions == 2
    assert ddf.divisions[0].value == int(start.astype(np.int64))
    got = ddf.compute()
    pd.testing.assert_frame_equal(got, _engine_frame(universe, TICKS, start, end))
    assert len(got) == 2_001 and list(got.columns) == ["Symbol", "Price", "Size", "Nanoseconds"]
    assert got.index.asi8.tolist() == t[1_000:3_001].astype(np.int64).tolist()


def test_several_symbols_give_a_partition_per_symbol_year(universe: str, client: Any) -> None:
    ddf = mkts.read_dask(universe, "MSFT,AAPL/1H/OHLCV", "2023-06-01", None)
    assert ddf.npartitions == 4  # MSFT 2023, 2024, then AAPL 2023, 2024: as listed
    assert not ddf.known_divisions  # symbols overlap in time: Dask divisions cannot say so
    want = pd.concat([_engine_frame(universe, BARS.format(s), "2023-06-01")
                      for s in ("MSFT", "AAPL")])
    pd.testing.assert_frame_equal(ddf.compute(), want)
    everyone = mkts.read_dask(universe, "*/1H/OHLCV", columns=["Close"])
    assert everyone.npartitions == 3 * len(SYMBOLS)
    counts = everyone.groupby("Symbol").Close.count().compute()
    assert counts.to_dict() == dict.fromkeys(SYMBOLS, HOURS)


def test_pieces_grouped_into_partitions_equal_the_engine_reads(universe: str,
                                                               client: Any) -> None:
    _reads(client)
    ddf = mkts.read_dask(universe, "*/1H/OHLCV", pieces_per_partition=2)
    assert ddf.npartitions == 5  # 9 pieces (3 symbols x 3 years), two per partition
    assert not ddf.known_divisions
    want = pd.concat([_engine_frame(universe, BARS.format(s)) for s in sorted(SYMBOLS)])
    pd.testing.assert_frame_equal(ddf.compute(), want)
    assert sorted((k, y) for k, y, _ in _reads(client)) == sorted(
        (BARS.format(s), y) for s in SYMBOLS for y in (2022, 2023, 2024))  # each piece once
    close = mkts.read_dask(universe, "*/1H/OHLCV", "2023-06-01", columns=["Close"],
                           pieces_per_partition=4)
    assert close.npartitions == 2
    pd.testing.assert_frame_equal(close.compute(), pd.concat(
        [_engine_frame(universe, BARS.format(s), "2023-06-01", columns=["Close"])
         for s in sorted(SYMBOLS)]))


def test_grouped_tick_pieces_keep_their_nanoseconds(universe: str, client: Any) -> None:
    ddf = mkts.read_dask(universe, TICKS, pieces_per_partition=3)
    assert ddf.npartitions == 1
    got = ddf.compute()
    pd.testing.assert_frame_equal(got, _engine_frame(universe, TICKS))
    assert list(got.columns) == ["Symbol", "Price", "Size", "Nanoseconds"]


def test_one_bucket_in_groups_keeps_known_divisions(universe: str, client: Any) -> None:
    ddf = mkts.read_dask(universe, "AAPL/1H/OHLCV", pieces_per_partition=2)
    assert ddf.npartitions == 2 and ddf.known_divisions
    assert ddf.divisions[1] == _ts("2024-01-01")  # the first piece of the second partition
    _reads(client)
    got = ddf.loc["2024-03-01":"2024-03-02"].compute()
    assert len(got) == 48
    assert [(k, y) for k, y, _ in _reads(client)] == [("AAPL/1H/OHLCV", 2024)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_pieces_per_partition_must_be_a_positive_whole_number(universe: str, bad: Any) -> None:
    with pytest.raises(engine.InvalidInputError, match="pieces_per_partition"):
        mkts.read_dask(universe, "*/1H/OHLCV", pieces_per_partition=bad)


def test_default_grouping_only_for_several_buckets_and_enough_pieces() -> None:
    from mkts.dask_io import MAX_GROUP, MIN_PARTITIONS, group_size

    assert group_size(100, 1, None) == 1  # one bucket: a partition per year
    assert group_size(2 * MIN_PARTITIONS - 1, 40, None) == 1
    assert group_size(100, 100, None) == 100 // MIN_PARTITIONS
    assert group_size(100_000, 100_000, None) == MAX_GROUP
    assert group_size(100, 100, 7) == 7 and group_size(3, 1, 5) == 5


def test_column_projection_reads_only_those_columns(universe: str, client: Any) -> None:
    _reads(client)
    ddf = mkts.read_dask(universe, "IBM/1H/OHLCV", columns=["Volume", "Open"])
    assert list(ddf.columns) == ["Symbol", "Volume", "Open"]
    pd.testing.assert_frame_equal(
        ddf.compute(), _engine_frame(universe, "IBM/1H/OHLCV", columns=["Volume", "Open"]))
    assert {tuple(c) for _, _, c in _reads(client)} == {("Epoch", "Volume", "Open")}
    # a later selection is pushed down into the workers' reads by Dask's optimizer
    total = mkts.read_dask(universe, "IBM/1H/OHLCV")["Volume"].sum().compute()
    assert total == int(_bars(2)["Volume"].sum())
    assert {tuple(c) for _, _, c in _reads(client)} == {("Epoch", "Volume")}


def test_loc_reads_only_the_partitions_it_needs(universe: str, client: Any) -> None:
    ddf = mkts.read_dask(universe, "AAPL/1H/OHLCV")
    _reads(client)
    part = ddf.loc["2023-03-01":"2023-03-05"]
    assert part.npartitions == 1
    got = part.compute()
    pd.testing.assert_frame_equal(
        got, _engine_frame(universe, "AAPL/1H/OHLCV", "2023-03-01", "2023-03-05T23:59:59"))
    assert [(k, y) for k, y, _ in _reads(client)] == [("AAPL/1H/OHLCV", 2023)]
    across = ddf.loc["2023-12-31 22:00":"2024-01-01 01:00"].compute()
    assert len(across) == 4
    assert [(k, y) for k, y, _ in _reads(client)] == [("AAPL/1H/OHLCV", 2023),
                                                      ("AAPL/1H/OHLCV", 2024)]


def test_start_and_end_plan_only_the_years_they_overlap(universe: str, client: Any) -> None:
    _reads(client)
    ddf = mkts.read_dask(universe, "*/1H/OHLCV", "2023-05-01", "2023-06-01")
    assert ddf.npartitions == len(SYMBOLS)
    # May, and all of 1 June: a date-only end includes its whole day
    assert len(ddf.compute()) == len(SYMBOLS) * (31 * 24 + 24)
    assert _reads(client) == [(BARS.format(s), 2023, ["Epoch", "Open", "Close", "Volume"])
                              for s in sorted(SYMBOLS)]


def test_empty_partitions_keep_the_meta_dtypes(universe: str, client: Any) -> None:
    meta = mkts.read_dask(universe, TICKS)._meta
    # a range inside the 2023 year file that holds no ticks
    gap = mkts.read_dask(universe, TICKS, "2023-06-01", "2023-07-01")
    assert gap.npartitions == 1
    got = gap.compute()
    assert len(got) == 0 and dict(got.dtypes) == dict(meta.dtypes)
    assert str(got.index.dtype) == "datetime64[ns, UTC]" and got.index.name == "Epoch"
    # a range outside every year file: no partition to plan, one empty one instead
    none = mkts.read_dask(universe, "*/1H/OHLCV", "2030-01-01", columns=["Close"])
    got = none.compute()
    assert none.npartitions == 1 and len(got) == 0
    assert list(got.columns) == ["Symbol", "Close"] and str(got.Close.dtype) == "float64"


def test_non_utc_root_divides_at_local_new_year(tmp_path: Any, client: Any) -> None:
    root = os.fspath(tmp_path / "ny")
    tz = "America/New_York"
    days = pd.date_range("2023-12-20", "2024-01-10", freq="D", tz=tz)
    with engine.open(root, timezone=tz) as db:
        db.write("SPY/1D/OHLCV", {"Epoch": days.as_unit("s").asi8,
                                  "Close": np.arange(len(days), dtype="f8")})
    ddf = mkts.read_dask(root, "SPY/1D/OHLCV")
    assert ddf.divisions[1] == _ts("2024-01-01", tz)
    got = ddf.compute()
    assert str(got.index.dtype) == f"datetime64[ns, {tz}]"
    pd.testing.assert_frame_equal(got, _engine_frame(root, "SPY/1D/OHLCV"))
    assert ddf.get_partition(1).compute().index[0] == _ts("2024-01-01", tz)


def test_graph_carries_only_path_key_year_and_range(universe: str) -> None:
    import cloudpickle

    ddf = mkts.read_dask(universe, "*/1H/OHLCV")
    graph = dict(ddf.__dask_graph__())
    blob = cloudpickle.dumps(graph)
    assert len(blob) < 1_500 * ddf.npartitions  # no data, no handles: a few strings each
    assert b"mkts.dask_io" in blob and os.fsencode(universe) in blob


def test_unusable_patterns_are_named_errors(universe: str, tmp_path: Any) -> None:
    with pytest.raises(KeyError, match="NOPE"):
        mkts.read_dask(universe, "NOPE/1H/OHLCV")
    with pytest.raises(ValueError, match="one timeframe"):
        mkts.read_dask(universe, "AAPL/*/OHLCV")
    with pytest.raises(KeyError, match="Nope"):
        mkts.read_dask(universe, "AAPL/1H/OHLCV", columns=["Nope"])
    with pytest.raises(engine.InvalidInputError, match="does not exist"):
        mkts.read_dask(universe + "-missing", "AAPL/1H/OHLCV")
    mixed = os.fspath(tmp_path / "mixed")
    with engine.open(mixed) as db:
        db.write("A/1H/OHLCV", {"Epoch": np.array([HOUR_START]), "Close": np.array([1.0])})
        db.write("B/1H/OHLCV", {"Epoch": np.array([HOUR_START]), "Last": np.array([1.0])})
    with pytest.raises(engine.SchemaError, match="B/1H/OHLCV"):
        mkts.read_dask(mixed, "*/1H/OHLCV")


def test_workers_see_rows_years_and_buckets_added_after_a_read(tmp_path: Any,
                                                               client: Any) -> None:
    """Workers keep their read-only handle for a few seconds: later rows, a new year file and
    a new bucket must still be read (the handle is replaced when it does not know them)."""
    root = os.fspath(tmp_path / "growing")
    with engine.open(root) as db:
        db.write("AAPL/1H/OHLCV", {k: v[:100] for k, v in _bars(0).items()})
        assert len(mkts.read_dask(root, "AAPL/1H/OHLCV").compute()) == 100
        db.write("AAPL/1H/OHLCV", _bars(0))  # more 2022 rows, and the 2023 and 2024 files
        db.write("MSFT/1H/OHLCV", _bars(1))
        got = mkts.read_dask(root, "*/1H/OHLCV").compute()
        want = pd.concat([_engine_frame(root, BARS.format(s)) for s in ("AAPL", "MSFT")])
        pd.testing.assert_frame_equal(got, want)


def test_pieces_cut_the_range_at_local_year_starts() -> None:
    """The plan is pure: year bounds from the calendar, the first bar floored to its interval."""
    from mkts.scale import plan_pieces

    keys = ["MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV", "AAPL/1D/OHLCV", "AMZN/1Min/TRADES"]
    assert engine.parse_pattern("MSFT,A*/1Min/*").select(keys) == [
        "MSFT/1Min/OHLCV", "AAPL/1Min/OHLCV", "AMZN/1Min/TRADES"]
    assert engine.parse_pattern("*/*D/OHLCV").select(keys) == ["AAPL/1D/OHLCV"]
    cal = engine.get_calendar("Asia/Kolkata")  # +05:30: years start at 18:30 UTC
    ns = 1_000_000_000
    start = _ts("2023-06-01 10:00:30", "Asia/Kolkata").value
    infos = {"X/1Min/OHLCV": {"kind": "fixed", "timeframe": "1Min", "years": [2022, 2023, 2024]},
             "X/1Min/TRADES": {"kind": "variable", "timeframe": "1Min", "years": [2023]}}
    pieces = plan_pieces(cal, infos, start, None)
    assert [(p.key, p.year, p.whole_year) for p in pieces] == [
        ("X/1Min/OHLCV", 2023, False), ("X/1Min/OHLCV", 2024, True),
        ("X/1Min/TRADES", 2023, False)]
    fixed23, fixed24, ticks23 = pieces
    assert fixed23.start_ns == ticks23.first_ns == start
    assert fixed23.first_ns == start - 30 * ns  # the 10:00 bar holds 10:00:30
    assert fixed23.end_ns + 1 == fixed24.start_ns == fixed24.first_ns == \
        _ts("2024-01-01", "Asia/Kolkata").value
    assert fixed24.end_ns == _ts("2025-01-01", "Asia/Kolkata").value - 1


def test_sealed_years_read_as_they_did_live(universe: str, tmp_path: Any, client: Any) -> None:
    """docs/format.md "The three states of a year": partitions of sealed years equal the
    partitions the live years gave (fixed and ticks, whole years and a range)."""
    import shutil

    sealed = os.fspath(tmp_path / "sealed")
    shutil.copytree(universe, sealed)
    with engine.open(sealed) as db:
        assert db.seal(year=2022) and db.seal(year=2023)
    for key, kw in ((BARS.format("MSFT"), {}), (TICKS, {}),
                    (BARS.format("IBM"), {"start": _ts("2022-12-30"), "end": _ts("2023-01-02")})):
        pd.testing.assert_frame_equal(mkts.read_dask(sealed, key, **kw).compute(),
                                      mkts.read_dask(universe, key, **kw).compute())
