"""kill -9 during `mkts backup` (docs/backup.md "Interrupting a backup"): a backup into the
destination of an earlier one is killed with SIGKILL at random moments over its whole run;
after every kill the destination opens as the earlier backup or as the new one, whole, and
passes `mkts check`; the next backup completes.

The kill moments come from a seeded rng (MKTS_CRASH_SEED); MKTS_CRASH_RUNS=N runs N kills
(default 10; --run-slow runs 200).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mkts
from mkts.check import check_root

REPO = Path(__file__).resolve().parents[2]
T0 = 1_699_999_200  # 2023-11-14 22:00 UTC
DAY = 86_400


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _state(root: Path) -> dict[str, Any]:
    with mkts.open(root, readonly=True) as db:
        out = {}
        for key in db.list_keys():
            r = db.read(key)
            out[key] = {c: np.asarray(r[c]).tolist() for c in r.columns}
        return out


def _fill(root: Path, rng: np.random.Generator, offset: int) -> None:
    with mkts.open(root, sync="off") as db:
        for i in range(20):
            epochs = T0 + offset + 60 * np.arange(2000) + (i % 2) * 400 * DAY  # 2023 and 2024
            db.write(f"S{i}/1Min/OHLCV", {"Epoch": epochs.astype("i8"),
                                          "Close": rng.random(2000)})
        n = 50_000
        db.write("T/1Sec/TICK", {"Epoch": (T0 + offset + np.arange(n) // 10).astype("i8"),
                                 "Nanoseconds": (np.arange(n) % 10 * 1000).astype("i4"),
                                 "Price": rng.random(n)}, variable=True)


def _age(root: Path) -> None:
    past = time.time_ns() - 3600 * 1_000_000_000
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n.endswith(".bin"):
                os.utime(os.path.join(dirpath, n), ns=(past, past))


def _backup(src: Path, dest: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mkts.cli", "backup", str(src), str(dest)],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _runs(default: int, slow: int, request: pytest.FixtureRequest) -> int:
    if os.environ.get("MKTS_CRASH_RUNS"):
        return int(os.environ["MKTS_CRASH_RUNS"])
    return slow if request.config.getoption("--run-slow") else default


def test_kill9_during_backup_leaves_the_old_or_the_new_backup(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    rng = np.random.default_rng(7)
    src, dest, pristine = tmp_path / "db", tmp_path / "bk", tmp_path / "pristine"
    _fill(src, rng, 0)
    _age(src)  # the next backup links most files: the kills also land in the linking
    proc = _backup(src, dest)
    assert proc.wait(timeout=120) == 0
    old = _state(dest)
    shutil.copytree(dest, pristine, symlinks=True)
    _fill(src, rng, 50 * DAY)  # a new backup holds other rows in new and changed files
    new = _state(src)
    assert new != old

    # how long a whole backup takes, process start included
    scratch = tmp_path / "scratch"
    shutil.copytree(pristine, scratch)
    started = time.monotonic()
    proc = _backup(src, scratch)
    assert proc.wait(timeout=120) == 0
    full = time.monotonic() - started
    assert _state(scratch) == new

    seed = int(os.environ.get("MKTS_CRASH_SEED", "16"))
    rand = random.Random(seed)
    seen = {"old": 0, "new": 0}
    log = []
    for k in range(_runs(10, 200, request)):
        if (dest / "mkts.backup").exists() and seen["new"] and _state(dest) == new:
            shutil.rmtree(dest)
            shutil.copytree(pristine, dest, symlinks=True)
        delay = rand.uniform(full * 0.3, full * 1.1)  # the first part is the interpreter starting
        proc = _backup(src, dest)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        got = _state(dest)
        which = "old" if got == old else "new" if got == new else "neither"
        log.append(f"round {k}: kill after {delay:.3f} s of {full:.3f} s: {which}")
        assert which != "neither", "\n".join(log) + f"\nstore: {dest}"
        seen[which] += 1
        report = check_root(str(dest))
        assert report.errors == [], [str(f) for f in report.errors]
    proc = _backup(src, dest)
    assert proc.wait(timeout=120) == 0
    assert _state(dest) == new
    assert sorted(os.listdir(tmp_path)) == ["bk", "db", "pristine", "scratch"]
    if len(log) >= 10:  # the kills landed on both sides of the swap (seeded rng)
        assert seen["old"] and seen["new"], "\n".join(log)
