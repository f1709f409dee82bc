"""The decoded block cache of sealed years (docs/format.md "The decoded block cache"): reads
with it on, off and of a never-sealed copy agree; a re-sealed, deleted or destroyed year is
never served from old entries; its bytes stay within the budget; its settings are checked."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from mkts import config, engine
from mkts.config import ConfigError

KEY = "AAPL/1Min/OHLCV"
TICKS = "AAPL/1Sec/TRADE"
Y2023 = 1_672_531_200  # 2023-01-01 UTC
Y2024 = 1_704_067_200


def _bars(n: int, seed: int, start: int = Y2023 + 86_400 * 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Open", "<f4"), ("Close", "<f8"),
                             ("Volume", "<i8")])
    out["Epoch"] = start + 60 * np.sort(rng.choice(4 * n, n, replace=False))
    out["Open"] = np.round(100 + np.cumsum(rng.normal(0, 0.1, n)), 2)
    out["Close"] = rng.normal(100, 1, n)
    out["Volume"] = rng.integers(1, 10**6, n)
    return out


def _ticks(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    out = np.zeros(n, dtype=[("Epoch", "<i8"), ("Nanoseconds", "<i4"), ("Price", "<f8"),
                             ("Size", "<i8")])
    t = np.sort(rng.integers(0, 86_400 * 10**9 * 30, n)) + (Y2023 + 86_400 * 40) * 10**9
    out["Epoch"], out["Nanoseconds"] = np.divmod(t, 10**9)
    out["Price"] = np.round(rng.normal(50, 2, n), 2)
    out["Size"] = np.arange(n)
    return out


def _fill(db: engine.Database, bars: np.ndarray, ticks: np.ndarray) -> None:
    db.write(KEY, bars)
    db.write(TICKS, ticks, variable=True)


def _same(a: engine.Result, b: engine.Result) -> bool:
    return a.columns == b.columns and a.array.dtype == b.array.dtype and all(
        a[c].tobytes() == b[c].tobytes() for c in a.columns)


def test_random_ranges_read_the_same_with_the_cache_on_off_and_never_sealed(
        tmp_path: Path) -> None:
    bars, ticks = _bars(60_000, 1), _ticks(40_000)
    dbs = {}
    for name, opts in (("on", {}), ("off", {"block_cache_mb": 0}), ("live", {})):
        db = engine.open(tmp_path / name, seal_after_days=0, bulk_load_rows=0, **opts)  # type: ignore[arg-type]
        _fill(db, bars, ticks)
        if name != "live":
            assert db.seal(year=2023)
        dbs[name] = db
    # an overlay on part of the sealed year: merged after the cached sealed rows
    for db in dbs.values():
        db.update(KEY, bars[100:110])
        db.delete(KEY, int(bars["Epoch"][500]), int(bars["Epoch"][520]))
    rng = np.random.default_rng(7)
    span = (Y2023, int(bars["Epoch"][-1]) + 60)
    tspan = (int(ticks["Epoch"][0]), int(ticks["Epoch"][-1]) + 1)
    for _ in range(40):
        key, (lo, hi) = (KEY, span) if rng.random() < 0.6 else (TICKS, tspan)
        a, b = sorted(int(x) for x in rng.integers(lo, hi, 2))
        limit = int(rng.integers(1, 5000)) if rng.random() < 0.3 else None
        cols = ["Open"] if key == KEY and rng.random() < 0.3 else None
        for _twice in range(2):  # the second read of "on" copies cached chunks
            got = {n: db.read(key, a, b, limit=limit, columns=cols) for n, db in dbs.items()}
            assert _same(got["on"], got["live"]) and _same(got["off"], got["live"])
    stats = dbs["on"].stats()
    assert stats["block_cache_hits"] > 0 and stats["block_cache_misses"] > 0
    assert dbs["off"].stats()["block_cache_hits"] == 0
    for db in dbs.values():
        db.close()


def test_a_resealed_deleted_or_destroyed_year_is_never_served_from_old_entries(
        root: str) -> None:
    db = engine.open(root, seal_after_days=0, bulk_load_rows=0)
    first = _bars(30_000, 2)
    db.write(KEY, first)
    db.seal(year=2023)
    assert np.array_equal(db.read(KEY).array, first)
    assert np.array_equal(db.read(KEY).array, first)  # from the cache
    changed = first.copy()
    changed["Close"][::3] += 1.5
    db.write(KEY, changed)  # into the overlay, then merged by the re-seal
    db.seal(year=2023)
    assert np.array_equal(db.read(KEY).array, changed)
    db.delete(KEY, Y2023, Y2024 - 1)
    assert len(db.read(KEY)) == 0
    db.destroy(KEY)
    other = _bars(30_000, 3)  # same size, same times: a new file at the same path
    other["Epoch"] = first["Epoch"]
    db.write(KEY, other)
    db.seal(year=2023)
    assert np.array_equal(db.read(KEY).array, other)
    assert np.array_equal(db.read(KEY).array, other)
    db.close()


def test_the_cache_holds_at_most_its_budget_after_reading_more(root: str) -> None:
    db = engine.open(root, seal_after_days=0, bulk_load_rows=0, block_cache_mb=1)
    keys = [f"S{i}/1Min/OHLCV" for i in range(4)]
    for i, k in enumerate(keys):
        db.write(k, _bars(40_000, 10 + i))  # about 1 MiB of decoded values each
    db.seal(year=2023)
    for k in keys * 2:
        db.read(k)
    s = db.stats()
    assert s["block_cache_capacity"] == 1 << 20
    assert 0 < s["block_cache_bytes"] <= 1 << 20
    assert s["block_cache_evictions"] > 0
    db.close()


def test_results_are_copies_and_cached_chunks_are_read_only(root: str) -> None:
    db = engine.open(root, seal_after_days=0, bulk_load_rows=0)
    bars = _bars(20_000, 4)
    db.write(KEY, bars)
    db.seal(year=2023)
    db.read(KEY)
    got = db.read(KEY)  # every chunk from the cache
    assert np.array_equal(got.array, bars)
    cache = db.catalog.block_cache
    assert cache is not None and len(cache._map) > 0
    for a in cache._map.values():
        assert not a.flags.writeable
        assert not any(np.shares_memory(a, got[c]) for c in got.columns)
    db.close()


def test_a_readonly_handle_and_concurrent_readers_use_the_cache(root: str) -> None:
    db = engine.open(root, seal_after_days=0, bulk_load_rows=0)
    bars = _bars(50_000, 5)
    db.write(KEY, bars)
    db.seal(year=2023)
    db.close()
    ro = engine.open(root, readonly=True)
    errors: list[str] = []

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(30):
            i, j = sorted(int(x) for x in rng.integers(0, len(bars), 2))
            got = ro.read(KEY, int(bars["Epoch"][i]), int(bars["Epoch"][j])).array
            if not np.array_equal(got, bars[i : j + 1]):
                errors.append(f"rows {i}..{j}")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ro.stats()["block_cache_hits"] > 0
    ro.close()


@pytest.mark.parametrize("bad", [-1, 1.5, True, "64"])
def test_a_bad_block_cache_size_is_refused_naming_the_key(root: str, bad: object) -> None:
    with pytest.raises(engine.InvalidInputError, match="block_cache_mb"):
        engine.open(root, block_cache_mb=bad)  # type: ignore[arg-type]


def test_block_cache_mb_comes_from_mkts_yml_and_is_checked() -> None:
    cfg = config.from_dict({"root_directory": "d", "storage": {"block_cache_mb": 8}})
    assert cfg.engine_options()["block_cache_mb"] == 8
    with pytest.raises(ConfigError, match="block_cache_mb"):
        config.from_dict({"root_directory": "d", "storage": {"block_cache_mb": -1}})
