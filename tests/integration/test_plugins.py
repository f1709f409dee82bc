"""The plugin contracts (plugins/base.py): loading by module path, entry point or MarketStore
name; when and how triggers fire; background workers; the feed worker; `mkts.open`."""

from __future__ import annotations

import logging
import os
import re
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.waiting import wait_until

import mkts
from mkts import config, engine
from mkts.plugins import aggfuncs, base, feed, ondiskagg, stream
from mkts.plugins.errors import PluginError
from mkts.plugins.loader import load_trigger, load_worker

T0 = 1_704_204_000  # 2024-01-02 14:00 UTC


def bars(n: int, start: int = T0, value: float = 1.0) -> dict[str, np.ndarray]:
    return {"Epoch": start + 60 * np.arange(n, dtype=np.int64),
            "Open": np.full(n, value), "High": np.full(n, value + 1),
            "Low": np.full(n, value - 1), "Close": np.full(n, value),
            "Volume": np.arange(1, n + 1, dtype=np.int64)}


class Recorder:
    """A trigger that records what it is given, where and when."""

    def __init__(self, db_reads: str | None = None) -> None:
        self.calls: list[tuple[str, Any, dict[str, np.ndarray]]] = []
        self.threads: set[str] = set()
        self.started_with: Any = None
        self.start_calls = 0
        self.read_in_fire: list[int] = []
        self._read = db_reads

    def start(self, db: Any) -> None:
        self.started_with = db
        self.start_calls += 1

    def fire(self, key_path: str, records: Any) -> None:
        assert self.started_with is not None, "fire before start"
        self.threads.add(threading.current_thread().name)
        self.calls.append((key_path, records, records.columns()))
        if self._read:
            self.read_in_fire.append(len(self.started_with.read(self._read)))


# -- the loader ----------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "cls"), [
    ("ondiskagg.so", ondiskagg.OnDiskAgg), ("mkts.plugins.ondiskagg", ondiskagg.OnDiskAgg),
    ("stream.so", stream.StreamTrigger), ("mkts.plugins.stream", stream.StreamTrigger)])
def test_bundled_triggers_load_by_module_path_and_marketstore_name(module: str,
                                                                   cls: type) -> None:
    cfg = {"destinations": ["5Min"]} if cls is ondiskagg.OnDiskAgg else {}
    t = load_trigger(module, cfg)
    assert isinstance(t, cls) and isinstance(t, base.Trigger)


def test_feed_loads_as_a_worker() -> None:
    w = load_worker("mkts.plugins.feed", {"symbols": ["X"]})
    assert isinstance(w, feed.Feed) and isinstance(w, base.BgWorker)


def test_the_contracts_are_the_engines_own_protocols() -> None:
    """One definition: plugins.base re-exports what the engine types its seams with."""
    assert base.Trigger is engine.Trigger and base.BgWorker is engine.BgWorker


def _package(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def test_entry_points_name_plugins(tmp_path: Path, monkeypatch: Any) -> None:
    _package(tmp_path, "acme_plugins", """\
        class T:
            def __init__(self, config): self.config = config
            def fire(self, key_path, records): pass
        def NewTrigger(config): return T(config)
        class W:
            def run(self): pass
        def make_worker(config): return W()
        """)
    dist = tmp_path / "acme_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[mkts.triggers]\nacme = acme_plugins\n\n[mkts.bgworkers]\nacmefeed = acme_plugins:make_worker\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    t = load_trigger("acme", {"x": 1})
    assert type(t).__name__ == "T" and t.config == {"x": 1}
    assert type(load_worker("acmefeed", {})).__name__ == "W"


def test_unknown_module_is_an_error_naming_the_plugin() -> None:
    with pytest.raises(PluginError, match=r"trigger plugin 'nope\.nothing'.*was not found"):
        load_trigger("nope.nothing", {})
    with pytest.raises(PluginError, match=r"background worker plugin 'ondiskagg_typo'"):
        load_worker("ondiskagg_typo", {})


def test_file_paths_are_not_plugin_names() -> None:
    with pytest.raises(PluginError, match="file paths are not loaded"):
        load_trigger("./ondiskagg.so/x", {})


def test_plugins_are_never_imported_from_the_current_directory(tmp_path: Path,
                                                               monkeypatch: Any) -> None:
    _package(tmp_path, "cwd_trigger_xyz", """\
        raise RuntimeError("imported from the current directory")
        """)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *[p for p in sys.path if p not in ("", str(tmp_path))]])
    with pytest.raises(PluginError, match="was not found"):
        load_trigger("cwd_trigger_xyz", {})
    assert "" in sys.path  # restored


@pytest.mark.parametrize(("name", "body", "message"), [
    ("badplug_raise", "raise ImportError('needs libfoo')",
     "importing 'badplug_raise' failed: ImportError: needs libfoo"),
    ("badplug_dep", "import not_installed_dependency_zz", "a module it needs is missing"),
    ("badplug_noctor", "x = 1", "has no NewTrigger(config) function"),
    ("badplug_ctor", "def NewTrigger(config): raise ValueError('destinations missing')",
     "NewTrigger(config) failed: ValueError: destinations missing"),
    ("badplug_nofire", "def NewTrigger(config): return object()",
     "has no fire(key_path, records) method"),
])
def test_loader_errors_name_the_plugin(tmp_path: Path, monkeypatch: Any, name: str, body: str,
                                       message: str) -> None:
    _package(tmp_path, name, body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(PluginError) as exc:
        load_trigger(name, {})
    assert f"trigger plugin '{name}'" in str(exc.value)
    assert message in str(exc.value)


def test_bundled_constructor_errors_name_the_plugin() -> None:
    with pytest.raises(PluginError, match=re.escape(
            "trigger plugin 'ondiskagg.so': config.destinations: is required")):
        load_trigger("ondiskagg.so", {})
    with pytest.raises(PluginError, match=re.escape(
            "background worker plugin 'mkts.plugins.feed': config.interval_s: must be a number, "
            "not str 'fast'")):
        load_worker("mkts.plugins.feed", {"interval_s": "fast"})


# -- trigger dispatch contracts ------------------------------------------------------------


def test_fire_gets_the_year_file_path_and_the_records_after_they_are_readable(root: str) -> None:
    rec = Recorder(db_reads="AAPL/1Min/OHLCV")
    with engine.open(root, triggers=[("*/1Min/OHLCV", rec)]) as db:
        assert rec.started_with is db and rec.start_calls == 1
        db.write("AAPL/1Min/OHLCV", bars(3))
        db.flush()
        (key_path, records, cols), = rec.calls
        assert key_path == "AAPL/1Min/OHLCV/2024.bin"
        assert str(records.key) == "AAPL/1Min/OHLCV" and records.year == 2024
        assert records.replayed is False and len(records) == 3
        assert list(cols) == ["Epoch", "Open", "High", "Low", "Close", "Volume"]
        assert cols["Epoch"].tolist() == (T0 + 60 * np.arange(3)).tolist()
        assert records.slots.tolist() == ((T0 - 1_704_067_200) // 60 + np.arange(3)).tolist()
        assert rec.read_in_fire == [3]  # the write was readable when fire ran
        assert rec.threads == {"mkts-triggers"}


def test_on_is_anchored(root: str) -> None:
    ohlc, ohlcv, sym = Recorder(), Recorder(), Recorder()
    with engine.open(root, triggers=[("*/1Min/OHLC", ohlc), ("*/1Min/OHLCV", ohlcv),
                                     ("AAPL/*/*", sym)]) as db:
        db.write("AAPL/1Min/OHLCV", bars(1))
        db.write("XAAPL/1Min/OHLC", bars(1))
        db.flush()
        assert [c[0] for c in ohlc.calls] == ["XAAPL/1Min/OHLC/2024.bin"]
        assert [c[0] for c in ohlcv.calls] == ["AAPL/1Min/OHLCV/2024.bin"]
        assert [c[0] for c in sym.calls] == ["AAPL/1Min/OHLCV/2024.bin"]


def test_fires_are_in_commit_order_and_one_per_year_file(root: str) -> None:
    rec = Recorder()
    with engine.open(root, sync="off", triggers=[("*/*/*", rec)]) as db:
        for i in range(20):
            db.write("A/1Min/OHLCV", bars(1, T0 + 60 * i))
        db.write("A/1Min/OHLCV", bars(2, 1_704_067_140))  # 2023-12-31 23:59 and 2024-01-01
        db.flush()
        txns = [c[1].txn for c in rec.calls]
        assert txns[:20] == sorted(txns[:20])
        assert [c[0] for c in rec.calls[20:]] == ["A/1Min/OHLCV/2023.bin", "A/1Min/OHLCV/2024.bin"]


class Raising:
    def fire(self, key_path: str, records: Any) -> None:
        raise RuntimeError("trigger bug")


def test_raising_trigger_is_logged_counted_and_the_write_stands(root: str, caplog: Any) -> None:
    after = Recorder()
    with caplog.at_level(logging.ERROR, logger="mkts.triggers"), \
            engine.open(root, triggers=[("*/*/*", Raising()), ("*/*/*", after)]) as db:
        txn = db.write("A/1Min/OHLCV", bars(2))
        db.write("A/1Min/OHLCV", bars(1, T0 + 600))
        assert txn > 0
        db.flush()
        assert db.stats()["trigger_errors"] == 2
        assert len(db.read("A/1Min/OHLCV")) == 3
        assert len(after.calls) == 2  # later triggers still ran
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        assert failures and failures[0].exc_info is not None  # with its traceback
        assert "trigger bug" in caplog.text


class SlowWriter:
    """Sleeps, then writes a derived bucket: flush() must wait for that write."""

    def __init__(self) -> None:
        self.db: Any = None

    def start(self, db: Any) -> None:
        self.db = db

    def fire(self, key_path: str, records: Any) -> None:
        time.sleep(0.2)  # a slow trigger: flush() must not return before this write
        c = records.columns()
        self.db.write(f"{records.key.symbol}/1Min/COPY", {"Epoch": c["Epoch"], "V": c["Close"]})


@pytest.mark.parametrize("wait", ["wait_for_triggers", "flush"])  # flush: the older name
@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_wait_for_triggers_waits_for_writes_made_by_triggers(root: str, sync: str,
                                                              wait: str) -> None:
    seen = Recorder()
    with engine.open(root, sync=sync, sync_interval_ms=5000,
                     triggers=[("*/1Min/OHLCV", SlowWriter()), ("*/1Min/COPY", seen)]) as db:
        db.write("A/1Min/OHLCV", bars(4))
        assert getattr(db, wait)(timeout=10)
        assert len(db.read("A/1Min/COPY")) == 4
        assert len(seen.calls) == 1  # the trigger's own write fired its triggers too


@pytest.mark.parametrize("wait", ["wait_for_triggers", "flush"])
def test_wait_for_triggers_timeout_returns_false(root: str, wait: str) -> None:
    class Stuck:
        release = threading.Event()

        def fire(self, key_path: str, records: Any) -> None:
            self.release.wait(5)

    stuck = Stuck()
    with engine.open(root, triggers=[("*/*/*", stuck)]) as db:
        db.write("A/1Min/OHLCV", bars(1))
        assert getattr(db, wait)(timeout=0.05) is False
        stuck.release.set()
        assert getattr(db, wait)(timeout=5) is True


@pytest.mark.parametrize("sync", ["always", "interval", "off"])
def test_checkpoint_waits_for_the_triggers_of_writes_made_by_triggers(root: str,
                                                                      sync: str) -> None:
    """checkpoint() waits as wait_for_triggers() does: under sync="interval" too, the
    triggers of a trigger's own write have run before the log is retired."""
    seen = Recorder()
    with engine.open(root, sync=sync, sync_interval_ms=5000, checkpoint_interval_s=3600,
                     triggers=[("*/1Min/OHLCV", SlowWriter()), ("*/1Min/COPY", seen)]) as db:
        db.write("A/1Min/OHLCV", bars(4))
        db.checkpoint()
        assert len(seen.calls) == 1
        assert len(db.read("A/1Min/COPY")) == 4


# -- background workers --------------------------------------------------------------------


class Worker:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.order: list[str] = []
        self.stopped = threading.Event()
        self.thread = ""

    def start(self, db: Any) -> None:
        self.db = db
        self.order.append("start")

    def run(self) -> None:
        self.order.append("run")
        self.thread = threading.current_thread().name
        self.db.write("W/1Min/OHLCV", bars(1))
        if self.fail:
            raise RuntimeError("worker bug")
        self.stopped.wait(10)

    def stop(self) -> None:
        self.order.append("stop")
        self.stopped.set()


def test_worker_starts_runs_on_its_own_thread_and_stops_at_close(root: str) -> None:
    w = Worker()
    db = engine.open(root, workers=[w])
    assert wait_until(lambda: w.thread), "the worker's run() did not start"
    assert w.order == ["start", "run"] and w.thread.startswith("mkts-worker")
    t = time.monotonic()
    db.close()
    assert w.order == ["start", "run", "stop"] and time.monotonic() - t < 5


def test_raising_worker_is_logged_and_the_database_keeps_running(root: str, caplog: Any) -> None:
    w = Worker(fail=True)
    with caplog.at_level(logging.ERROR, logger="mkts.engine"), engine.open(root, workers=[w]) as db:
        # the count goes up just before the traceback is logged: wait for both
        assert wait_until(lambda: db.stats()["worker_errors"] > 0 and "worker bug" in caplog.text)
        assert db.stats()["worker_errors"] == 1
        db.write("A/1Min/OHLCV", bars(1))
        assert len(db.read("W/1Min/OHLCV")) == 1 and len(db.read("A/1Min/OHLCV")) == 1


# -- the feed worker -----------------------------------------------------------------------


class Finishing:
    """Runs a worker and sets `done` when its run() has returned."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.done = threading.Event()

    def start(self, db: Any) -> None:
        self.inner.start(db)

    def run(self) -> None:
        try:
            self.inner.run()
        finally:
            self.done.set()

    def stop(self) -> None:
        self.inner.stop()


def test_feed_writes_synthetic_bars_at_its_pace(root: str) -> None:
    f = feed.NewBgWorker({"symbols": ["AAPL", "MSFT"], "interval_s": 0.0, "bars_per_write": 30,
                          "max_bars": 390, "start": "2024-03-15"})
    w = Finishing(f)
    with engine.open(root, sync="off", workers=[w]) as db:
        assert w.done.wait(20), "the feed did not stop by itself after max_bars"
        assert f.writes == 13  # 390 minutes, 30 per write, then it stops
        for sym in ("AAPL", "MSFT"):
            r = db.read(f"{sym}/1Min/OHLCV")
            assert 370 < len(r) <= 390  # one session, a few synthetic gaps
            assert r["Epoch"][0] >= 1_710_509_400  # 2024-03-15 09:30 New York


def test_feed_continues_prices_across_generated_chunks(root: str) -> None:
    f = feed.NewBgWorker({"symbols": ["AAPL"], "interval_s": 0.0, "bars_per_write": 2000,
                          "max_bars": 30 * 390})
    w = Finishing(f)
    with engine.open(root, sync="off", workers=[w]) as db:
        assert w.done.wait(30), "the feed did not stop by itself after max_bars"
        r = db.read("AAPL/1Min/OHLCV")
        jumps = np.abs(np.asarray(r["Open"][1:]) / np.asarray(r["Close"][:-1]) - 1)
        assert len(r) > 10_000 and jumps.max() < 0.01  # no restart of the walk at a chunk edge


def test_feed_stops_promptly(root: str) -> None:
    f = feed.NewBgWorker({"symbols": ["AAPL"], "interval_s": 60})
    db = engine.open(root, sync="off", workers=[f])
    assert wait_until(lambda: f.writes >= 1), "the feed's first write did not happen"
    t = time.monotonic()
    db.close()
    assert time.monotonic() - t < 2 and f.writes == 1


def test_feed_replays_a_csv_file(root: str, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("Epoch,Symbol,Open,High,Low,Close,Volume\n"
                   "2024-01-02T14:01:00Z,AAPL,2,3,1,2.5,20\n"
                   f"{T0},AAPL,1,2,0.5,1.5,10\n"
                   f"{T0},MSFT,5,6,4,5.5,50\n")
    f = feed.NewBgWorker({"csv": str(csv), "interval_s": 0})
    w = Finishing(f)
    with engine.open(root, sync="off", workers=[w]) as db:
        assert w.done.wait(10), "the feed did not stop at the end of the file"
        assert f.writes == 2  # one write per minute in the file
        a = db.read("AAPL/1Min/OHLCV")
        assert a["Epoch"].tolist() == [T0, T0 + 60] and a["Close"].tolist() == [1.5, 2.5]
        assert a["Volume"].dtype == np.int64
        assert db.read("MSFT/1Min/OHLCV")["Open"].tolist() == [5.0]


@pytest.mark.parametrize(("cfg", "message"), [
    ({"symbols": []}, "symbols: [] must be a non-empty list of names"),
    ({"symbols": 0}, "symbols: 0 must be a positive count or a list of names"),
    ({"symbols": "AAPL"}, "symbols: must be a list (text each) or an integer, not str 'AAPL'"),
    ({"symbols": ["AAPL", 3]}, "symbols[1]: must be text, not int 3"),
    ({"interval_s": -1}, "interval_s: -1 must be at least 0"),
    ({"bars_per_write": 1.5}, "bars_per_write: must be an integer, not float 1.5"),
    ({"start": "yesterday"}, "start: 'yesterday' is not a date like 2024-01-02"),
    ({"csv": "/no/such/file.csv"}, "csv: '/no/such/file.csv' does not exist"),
    ({"key": "AAPL/1Min"}, "key: 'AAPL/1Min' must look like '{symbol}/1Min/OHLCV'"),
    ({"speed": 2}, "speed: unknown key; did you mean seed?"),
])
def test_feed_config_errors_name_the_key(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(PluginError) as exc:
        feed.NewBgWorker(cfg)
    assert str(exc.value).startswith("feed config: ") and message in str(exc.value)
    assert isinstance(exc.value, config.ConfigError)


# -- mkts.open -----------------------------------------------------------------------------


def _yml(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "mkts.yml"
    p.write_text("root_directory: db\ntimezone: America/New_York\nwal: {sync: 'off'}\n" +
                 textwrap.dedent(body))
    return p


def test_mkts_open_loads_triggers_and_starts_workers(tmp_path: Path) -> None:
    p = _yml(tmp_path, """\
        triggers:
          - module: ondiskagg.so
            on: "*/1Min/OHLCV"
            config: {destinations: [5Min, 1D]}
          - module: stream.so
            on: "*/*/*"
        bgworkers:
          - module: mkts.plugins.feed
            name: feed
            config: {symbols: [AAPL], interval_s: 0, bars_per_write: 60, max_bars: 120,
                     start: "2024-03-15"}
        """)
    with mkts.open(p) as db:
        assert db.root == os.fspath(tmp_path / "db") and db.timezone == "America/New_York"
        assert isinstance(db.triggers[0], ondiskagg.OnDiskAgg)
        hub = stream.hub_of(db)
        assert hub is not None
        # the feed (max_bars 120) is loaded from the config, so its thread cannot be joined
        # here: wait for its last row, then for the triggers
        assert wait_until(lambda: "AAPL/1Min/OHLCV" in db.list_keys()
                          and len(db.read("AAPL/1Min/OHLCV")) >= 120, timeout=20)
        assert db.flush(timeout=20)
        base = db.read("AAPL/1Min/OHLCV")
        assert len(base) == 120
        cols = {c: np.asarray(base[c]) for c in base.columns}
        five = aggfuncs.aggregate(cols, db.calendar, "5Min")
        assert db.read("AAPL/5Min/OHLCV")["Close"].tolist() == five["Close"].tolist()
        assert db.read("AAPL/1D/OHLCV")["Epoch"].tolist() == [1_710_475_200]  # 03-15 00:00 NY


def test_mkts_open_with_the_repository_default_config_works(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "mkts.yml"
    p = tmp_path / "mkts.yml"
    p.write_text(src.read_text())
    with mkts.open(p) as db:
        db.write("AAPL/1Min/OHLCV", bars(10))
        db.flush()
        assert db.list_keys() == ["AAPL/15Min/OHLCV", "AAPL/1D/OHLCV", "AAPL/1H/OHLCV",
                                  "AAPL/1Min/OHLCV", "AAPL/5Min/OHLCV"]


def test_mkts_open_accepts_a_config_object_and_a_mapping(tmp_path: Path) -> None:
    cfg = config.from_dict({"root_directory": str(tmp_path / "a"), "wal": {"sync": "off"}})
    with mkts.open(cfg) as db:
        assert db.sync_mode == "off" and db.triggers == []
    with mkts.open({"root_directory": str(tmp_path / "b")}) as db:
        assert db.root == str(tmp_path / "b")
    with pytest.raises(TypeError, match="mkts.yml path"):
        mkts.open(42)  # type: ignore[arg-type]


def test_mkts_open_fails_before_opening_when_a_plugin_cannot_load(tmp_path: Path) -> None:
    p = _yml(tmp_path, """\
        triggers:
          - {module: ondiskagg.so, on: "*/1Min/OHLCV", config: {destinations: [5Min]}}
          - {module: no_such_plugin_mod, on: "*/*/*"}
        """)
    with pytest.raises(PluginError, match="no_such_plugin_mod"):
        mkts.open(p)
    assert not (tmp_path / "db").exists()
    with pytest.raises(config.ConfigError, match=r"triggers\[0\]\.on"):
        mkts.open(_yml(tmp_path, "triggers: [{module: stream.so}]\n"))


@pytest.mark.parametrize(("body", "message"), [
    ("""\
        triggers:
          - {module: stream.so, on: "*/*/*"}
          - {module: ondiskagg.so, on: "*/1Min/OHLCV", config: {destinations: [5Min], batch_ms: 5000}}
        """, "triggers[1].config.batch_ms: 5000 must be from 0 to 1000 (milliseconds"),
    ("""\
        triggers:
          - {module: mkts.plugins.ondiskagg, on: "*/1Min/OHLCV", config: {destinations: [5Min, 1M]}}
        """, "triggers[0].config.destinations[1]: '1M' is not a timeframe"),
    ("""\
        triggers:
          - {module: stream.so, on: "*/*/*", config: {max_pending: many}}
        """, "triggers[0].config.max_pending: must be an integer, not str 'many'"),
    ("""\
        bgworkers:
          - {module: mkts.plugins.feed, config: {symbols: [AAPL], interval_s: -2}}
        """, "bgworkers[0].config.interval_s: -2 must be at least 0"),
])
def test_plugin_config_errors_name_the_key_path_in_mkts_yml(tmp_path: Path, body: str,
                                                            message: str) -> None:
    p = _yml(tmp_path, body)
    with pytest.raises(config.ConfigError) as exc:
        mkts.open(p)
    assert str(exc.value).startswith(f"{p}: ")
    assert message in str(exc.value)
    assert not (tmp_path / "db").exists()  # refused before anything was opened


def test_mkts_check_names_a_bad_ondiskagg_key_too(tmp_path: Path) -> None:
    from mkts import wiring

    cfg = config.load(_yml(tmp_path, """\
        triggers:
          - {module: ondiskagg.so, on: "*/1Min/OHLCV", config: {destinations: [5Min], filtr: XNYS}}
        """))
    with pytest.raises(config.ConfigError, match=re.escape(
            "triggers[0].config.filtr: unknown key; did you mean filter?")):
        wiring.aggregation_specs(cfg)


def test_mkts_open_sets_the_log_level(tmp_path: Path) -> None:
    p = _yml(tmp_path, "log_level: debug\n")
    before = logging.getLogger("mkts").level
    try:
        with mkts.open(p):
            assert logging.getLogger("mkts").level == logging.DEBUG
    finally:
        logging.getLogger("mkts").setLevel(before)
