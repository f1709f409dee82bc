"""The fixed-bucket read has two ways to find and gather rows (engine/query.py
`_LiveSlots`): a small range is read with one pread of its slots, a larger one through the
occupancy index (writable handle) or a scan of the file's data extents (read-only handle).
Every way must return exactly what an in-memory oracle says, for any range, limit and
projection, across year boundaries, after overwrites, and for writable handles whose
occupancy index is built, not built, or kept up to date by later writes."""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np
import pytest

from mkts import engine
from mkts.engine import query

DEC_20_2023 = 1_703_030_400  # 2023-12-20 00:00 UTC
JAN1_2024 = 1_704_067_200
JAN1_2025 = 1_735_689_600
KEY = "S/1Min/X"
DAILY = "S/1D/X"
FIVE = "S/5Min/X"


def _rows(epochs: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"Epoch": epochs.astype(np.int64), "F8": rng.normal(size=len(epochs)),
            "I4": rng.integers(-1000, 1000, len(epochs)).astype(np.int32)}


class Oracle:
    """Last write wins per interval label; reads filter and slice a sorted copy."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.rows: dict[int, tuple[float, int]] = {}

    def write(self, data: dict[str, np.ndarray]) -> None:
        labels = data["Epoch"] - data["Epoch"] % self.step
        for e, f, i in zip(labels.tolist(), data["F8"].tolist(), data["I4"].tolist(),
                           strict=True):
            self.rows[e] = (f, i)

    def read(self, start: int | None, end: int | None, limit: int | None,
             from_start: bool) -> list[tuple[int, float, int]]:
        keys = sorted(self.rows)
        if start is not None:
            keys = [k for k in keys if k >= start - start % self.step]
        if end is not None:
            keys = [k for k in keys if k <= end]
        if limit is not None:
            keys = keys[:limit] if from_start else keys[max(0, len(keys) - limit) :]
        return [(k, *self.rows[k]) for k in keys]


def _got(r: engine.Result) -> list[tuple[int, float, int]]:
    """The rows by column; the structured array (whose Epoch is filled in lazily) must say
    the same, and neither may be writable."""
    got = list(zip(r["Epoch"].tolist(), r["F8"].tolist(), r["I4"].tolist(), strict=True))
    a = r.array
    assert list(zip(a["Epoch"].tolist(), a["F8"].tolist(), a["I4"].tolist(), strict=True)) == got
    assert not a.flags.writeable and not r["Epoch"].flags.writeable
    assert not r["F8"].flags.writeable
    return got


def _fill(db: engine.Database) -> dict[str, Oracle]:
    """1Min, 5Min and 1D buckets spanning 2023-12-20 .. 2024-01-10 plus rows at both ends of
    2024, written out of order, with overwrites."""
    rng = np.random.default_rng(7)
    oracles = {KEY: Oracle(60), FIVE: Oracle(300), DAILY: Oracle(86_400)}
    span = np.arange(DEC_20_2023, JAN1_2024 + 10 * 86_400, 60, dtype=np.int64)
    extra = np.array([JAN1_2024, JAN1_2025 - 60, JAN1_2025 - 1, JAN1_2025], dtype=np.int64)
    for seed, key in enumerate((KEY, FIVE, DAILY)):
        epochs = np.concatenate([rng.choice(span, 4000, replace=False), extra])
        for part in np.array_split(rng.permutation(epochs), 5):
            data = _rows(part, seed * 100 + len(part))
            db.write(key, data)
            oracles[key].write(data)
        over = rng.choice(epochs, 300, replace=False)  # overwrite some intervals
        data = _rows(over, seed + 1000)
        db.write(key, data)
        oracles[key].write(data)
    return oracles


def _queries(n: int, seed: int) -> list[tuple[Any, Any, Any, bool]]:
    rng = np.random.default_rng(seed)
    lo, hi = DEC_20_2023 - 86_400, JAN1_2025 + 86_400
    # Whole-bucket reads first (thousands of rows: the large-result code paths).
    out: list[tuple[Any, Any, Any, bool]] = [(None, None, None, False), (lo, hi, None, False),
                                             (None, None, 5000, True), (lo, None, 3999, False),
                                             (JAN1_2024, None, None, False)]
    for _ in range(n):
        kind = rng.integers(0, 5)
        if kind == 0:  # a short range (minutes to a day): the pread path
            s = int(rng.integers(lo, hi))
            e = s + int(rng.integers(0, 86_400))
        elif kind == 1:  # around the year boundary
            s = JAN1_2024 - int(rng.integers(0, 3 * 86_400))
            e = JAN1_2024 + int(rng.integers(-60, 3 * 86_400))
        else:
            s, e = sorted(int(x) for x in rng.integers(lo, hi, 2))
        start = None if rng.random() < 0.1 else s
        end = None if rng.random() < 0.1 else e
        limit = None if rng.random() < 0.5 else int(rng.integers(0, 50))
        out.append((start, end, limit, bool(rng.random() < 0.5)))
    return out


@pytest.fixture(params=["pread always", "pread never", "default"])
def small_read_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    sizes = {"pread always": 1 << 40, "pread never": -1, "default": query.SMALL_READ_BYTES}
    monkeypatch.setattr(query, "SMALL_READ_BYTES", sizes[request.param])
    return str(request.param)


@pytest.fixture(params=[0, 1000, query.SMALL_ROWS], ids=["epochs apart", "mixed", "default"])
def small_rows(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Results of more rows than this get their Epochs as a separate column (query.py
    read_fixed); with 1000 some multi-year reads are above, some below."""
    monkeypatch.setattr(query, "SMALL_ROWS", request.param)
    return int(request.param)


@pytest.mark.parametrize("handle", ["writer", "reopened writer", "readonly"])
def test_every_read_path_matches_the_oracle(root: str, small_read_bytes: str, small_rows: int,
                                            handle: str) -> None:
    with engine.open(root) as db:
        oracles = _fill(db)
        if handle == "writer":
            for key, o in oracles.items():
                for q in _queries(60, hash(key) % 1000):
                    assert _got(db.read(key, q[0], q[1], limit=q[2], limit_from_start=q[3])) \
                        == o.read(*q), (key, q)
            return
    with engine.open(root, readonly=handle == "readonly") as db:
        for key, o in oracles.items():
            for q in _queries(60, hash(key) % 1000 + 1):
                assert _got(db.read(key, q[0], q[1], limit=q[2], limit_from_start=q[3])) \
                    == o.read(*q), (key, q)


def test_paths_agree_after_writes_to_a_year_already_read(root: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer's occupancy index, built by a large read, follows later writes (appends,
    back-fills, overwrites): the pread path (which never uses it) must agree with it."""
    rng = np.random.default_rng(3)
    o = Oracle(60)
    day = JAN1_2024 + 40 * 86_400
    with engine.open(root) as db:
        first = _rows(np.arange(day, day + 3600, 60), 1)
        db.write(KEY, first)
        o.write(first)
        db.read(KEY)  # builds the index
        for i in range(30):
            e = np.sort(rng.choice(np.arange(day - 7200, day + 7200, 60), 5, replace=False))
            data = _rows(e, i)
            db.write(KEY, data)
            o.write(data)
            for size in (1 << 40, -1):
                monkeypatch.setattr(query, "SMALL_READ_BYTES", size)
                assert _got(db.read(KEY, day - 7200, day + 7200)) == o.read(
                    day - 7200, day + 7200, None, False)


def test_columns_projection_is_the_same_on_both_paths(db: engine.Database,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = _rows(np.arange(JAN1_2024, JAN1_2024 + 600, 60), 5)
    db.write(KEY, data)
    results = []
    for size in (1 << 40, -1):
        monkeypatch.setattr(query, "SMALL_READ_BYTES", size)
        r = db.read(KEY, JAN1_2024, JAN1_2024 + 300, columns=["I4"])
        assert r.columns == ["Epoch", "I4"]
        results.append((r["Epoch"].tolist(), r["I4"].tolist(), r.array.dtype.names))
    assert results[0] == results[1]
    assert results[0][0] == list(range(JAN1_2024, JAN1_2024 + 301, 60))


def test_empty_and_reversed_ranges_are_empty_on_both_paths(db: engine.Database,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    db.write(KEY, _rows(np.array([JAN1_2024 + 600]), 1))
    for size in (1 << 40, -1):
        monkeypatch.setattr(query, "SMALL_READ_BYTES", size)
        assert len(db.read(KEY, JAN1_2024, JAN1_2024 + 540)) == 0  # only holes
        assert len(db.read(KEY, JAN1_2024 + 700, JAN1_2024 + 600)) == 0  # start > end
        assert len(db.read(KEY, JAN1_2024, JAN1_2024 + 600, limit=0)) == 0
        assert db.read(KEY, JAN1_2024 + 600, JAN1_2024 + 600)["F8"].shape == (1,)


def test_a_short_read_after_reopening_does_not_scan_the_whole_year(root: str) -> None:
    """A cold one-day read must cost the I/O of that day, not of the year: it must not build
    the year file's occupancy index (which reads every data extent of the file)."""
    with engine.open(root, bulk_load_rows=0) as db:  # the subject is the live year file
        db.write(KEY, _rows(np.arange(JAN1_2024, JAN1_2024 + 200 * 86_400, 600), 2))
    with engine.open(root) as db:
        day = JAN1_2024 + 100 * 86_400
        r = db.read(KEY, day, day + 86_399)
        assert r["Epoch"].tolist() == list(range(day, day + 86_400, 600))
        f = next(iter(db.catalog.buckets.values())).files[2024]
        assert f._occ is None
        assert len(db.read(KEY)) == 200 * 144  # a full read builds it
        assert f._occ is not None


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize("size", [1 << 40, -1], ids=["pread", "index or scan"])
@pytest.mark.parametrize("check_rows", [0, 1 << 20], ids=["ufunc check", "bytes check"])
def test_a_misplaced_record_is_corrupt_on_both_paths(root: str, readonly: bool, size: int,
                                                     check_rows: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    t = JAN1_2024 + 3600
    with engine.open(root) as db:
        db.write(KEY, _rows(np.array([t, t + 60, t + 120]), 1))
    path = os.path.join(root, "S", "1Min", "X", "2024.bin")
    with open(path, "rb") as fh:
        header = int.from_bytes(fh.read(16)[12:16], "little")
    record = 24  # _slot i8 + F8 + I4, padded to 8
    with open(path, "r+b") as fh:
        fh.seek(header + 61 * record)
        fh.write(struct.pack("<q", 99))  # slot 61 claims to be slot 98
    monkeypatch.setattr(query, "SMALL_READ_BYTES", size)
    monkeypatch.setattr(query, "SMALL_ROWS", check_rows)
    with engine.open(root, readonly=readonly) as db:
        with pytest.raises(engine.CorruptFileError, match="slot"):
            db.read(KEY, t, t + 3600)
        assert db.read(KEY, t + 120, t + 180)["Epoch"].tolist() == [t + 120]


@pytest.mark.parametrize("size", [1 << 40, -1], ids=["pread", "scan"])
def test_readonly_short_read_sees_rows_written_after_it(root: str, size: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "SMALL_READ_BYTES", size)
    t = JAN1_2024 + 86_400
    with engine.open(root) as writer:
        writer.write(KEY, _rows(np.array([t]), 1))
        with engine.open(root, readonly=True) as reader:
            assert reader.read(KEY, t - 600, t + 600)["Epoch"].tolist() == [t]
            writer.write(KEY, _rows(np.array([t - 60, t + 60]), 2))
            assert reader.read(KEY, t - 600, t + 600)["Epoch"].tolist() == [t - 60, t, t + 60]


def test_structured_array_epochs_whichever_is_asked_first(db: engine.Database,
                                                          small_rows: int) -> None:
    """The Epoch column is computed by the read; the structured array gets it on first use,
    also when several threads ask at once, and with a projection."""
    import threading

    epochs = np.arange(JAN1_2024 - 3000 * 60, JAN1_2024 + 1500 * 60, 60)
    db.write(KEY, _rows(epochs, 9))
    first = db.read(KEY)
    assert first.array["Epoch"].tolist() == epochs.tolist()  # array first
    assert first["Epoch"].tolist() == epochs.tolist()
    projected = db.read(KEY, columns=["I4"])
    assert projected["Epoch"].tolist() == epochs.tolist()  # column first
    assert projected.array.dtype.names == ("Epoch", "I4")
    assert projected.array["Epoch"].tolist() == epochs.tolist()
    assert projected.to_pandas().index.asi8.tolist() == (epochs * 10**9).tolist()
    shared = db.read(KEY, limit=4000)  # 2500 rows of 2023, 1500 of 2024
    seen: list[list[int]] = []
    barrier = threading.Barrier(4)

    def grab() -> None:
        barrier.wait()
        seen.append(shared.array["Epoch"].tolist())

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [epochs[-4000:].tolist()] * 4


def test_a_short_first_read_requests_its_bytes_before_the_header(root: str,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """Opening a year file for a short read hints the kernel to fetch that range first, so
    the header read and the range read overlap (a cold read waits for one I/O, not two).
    A long read or an already open file asks for nothing; the rows are the same."""
    from mkts.wal.fs import OsFile

    asked: list[tuple[str, int, int]] = []
    real = OsFile.prefetch

    def spy(self: OsFile, offset: int, length: int) -> None:
        asked.append((os.path.basename(self.path), offset, length))
        real(self, offset, length)

    monkeypatch.setattr(OsFile, "prefetch", spy)
    day = JAN1_2024 + 10 * 86_400
    with engine.open(root) as db:
        db.write(KEY, _rows(np.arange(day - 86_400, day + 2 * 86_400, 60), 4))
    with engine.open(root) as db:
        r = db.read(KEY, day, day + 86_399)
        assert r["Epoch"].tolist() == list(range(day, day + 86_400, 60))
        header = db.catalog.year_header(next(iter(db.catalog.buckets.values())), 2024)
        slot = (day - JAN1_2024) // 60
        assert asked == [("2024.bin", header.header_size + slot * header.record_size,
                          1440 * header.record_size)]
        db.read(KEY, day + 86_400, day + 2 * 86_400)  # the file is open already
        assert len(asked) == 1
    with engine.open(root) as db:
        assert len(db.read(KEY)) == 3 * 1440  # a whole year: no hint for the range
    assert len(asked) == 1
