"""The benchmarks must not rot: run every pytest-benchmark scenario once and the side-by-side
runner on mkts and raw numpy, both on tiny data (MKTS_BENCH_SIZE=smoke). No timing is
asserted; only that they ran and produced the expected report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (scenario, case) rows the comparison must report for each engine.
EXPECTED = {
    ("1", "bulk write"),
    ("2", "1-row appends, durable"),
    ("2", "100-row appends, durable"),
    ("2", "1-row appends, not durable"),
    ("2", "100-row appends, not durable"),
    ("3", "full symbol-year read, warm"),
    ("3", "full symbol-year read, cold"),
    ("4", "one-day read, warm"),
    ("4", "one-day read, cold"),
    ("5", "multi-symbol read, warm"),
    ("6", "tick ingest"),
    ("6", "tick day read, warm"),
    ("6", "tick day read, cold"),
    ("7", "bars: bytes per row (apparent)"),
    ("7", "ticks: bytes per tick (allocated)"),
}
MKTS_ONLY = {
    ("2", "1-row appends, 1 writer thread"),
    ("2", "1-row appends, 4 writer threads"),
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["MKTS_BENCH_SIZE"] = "smoke"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_compare_runner_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--quick", "--only", "mkts,raw",
         "--size", "smoke", "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads((out / "compare-smoke.json").read_text())
    engines = {e["engine"]: e for e in report["engines"]}
    assert set(engines) == {"mkts", "raw"}
    for e in engines.values():
        assert e["available"] and not e.get("error") and not e["checks_failed"], e
        assert e["rss_peak_mb"] > 0
    got = {(r["scenario"], r["case"], r["engine"]) for r in report["rows"]}
    for engine in ("mkts", "raw"):
        missing = {(s, c) for s, c in EXPECTED if (s, c, engine) not in got}
        assert not missing, f"{engine} is missing rows {sorted(missing)}"
    assert all((s, c, "mkts") in got for s, c in MKTS_ONLY)
    # the minimal group commit baseline, measured in the mkts worker beside its threads
    assert all((s, c, "raw") in got for s, c in MKTS_ONLY)
    # the sealed full-year read beside its same-round ceilings (benchmarks/sealceil.py)
    assert {c for s, c, e in got if s == "9" and e == "mkts" and "same rounds" in c} >= {
        "sealed full-year read, same rounds: the read (db.read)",
        "sealed full-year read, same rounds: the read, block cache off (db.read)",
        "sealed full-year read, same rounds: numpy: copy of the result's bytes"}
    # the sealed warm reads with the block cache and without, in the same run
    assert {c for s, c, e in got if s == "9" and e == "mkts" and "warm" in c} >= {
        "sealed full symbol-year read, warm, block cache on",
        "sealed full symbol-year read, warm, block cache off",
        "sealed one-day read, warm, block cache on, repeated",
        "sealed one-day read, warm, block cache off"}
    assert any(r["scenario"] == "6b" for r in report["rows"])
    assert any(r["scenario"] == "2b" and r["engine"] == "raw" for r in report["rows"])
    raw_rows = [r for r in report["rows"] if r["engine"] == "raw"]
    assert all("vs_mkts" in r for r in raw_rows if (r["scenario"], r["case"]) in EXPECTED)
    md = (out / "compare-smoke.md").read_text()
    assert md.startswith("# mkts side-by-side benchmark (smoke)")
    for needle in ("| bulk write | mkts |", "| bulk write | raw numpy |",
                   "| one-day read, warm | mkts |", "| tick ingest | raw numpy |",
                   "## Peak memory", "## Goals", "posix_fadvise",
                   "minimal group commit, os.write + fdatasync"):
        assert needle in md, needle


def test_pytest_benchmark_scenarios_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-disable", "-q",
         "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'bt'}"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert " passed" in last and "failed" not in last and "error" not in last, last


def test_functions_runner_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.functions", "--size", "smoke", "--rounds", "2",
         "--tick-rounds", "2"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for goal in ("candlecandler / read (goal <= 2)", "tickcandler / read (goal <= 2)",
                 "pandas / db.resample (goal >= 1)"):
        assert goal in proc.stdout, proc.stdout
