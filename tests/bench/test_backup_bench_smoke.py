"""The backup benchmark (benchmarks/backup.py) must not rot: run it once on tiny data and
check that it reports every copy it compares. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_backup_benchmark_reports_mkts_beside_plain_copies(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    res = subprocess.run([sys.executable, "-m", "benchmarks.backup", "--size", "smoke",
                          "--repeats", "1", "--workdir", str(tmp_path / "w")],
                         capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT))
    assert res.returncode == 0, res.stderr
    for row in ("| mkts backup (full) |", "| cp -a |", "| shutil.copytree |",
                "| mkts backup (incremental"):
        assert row in res.stdout, res.stdout
