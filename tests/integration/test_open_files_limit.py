"""A database of more bucket-years than the process may open files (docs/format.md "Open
files"): with RLIMIT_NOFILE = 256 in a real subprocess, 2,000 buckets are written (one
write_many and single writes), read back, replayed at a reopen, read by a read-only handle
and served by a real `mkts start` under the same limit."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pymarketstore as pymkts
import pytest
import requests
from server.serverproc import ServerProcess, server_env, write_config

NOFILE = 256
BUCKETS = 2000  # half in one write_many, half in single writes
T0 = 1_704_187_800  # 2024-01-02 09:30 UTC


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


CHILD = textwrap.dedent(f"""
    import os, sys
    import numpy as np
    import mkts

    N, T0 = {BUCKETS}, {T0}
    DT = np.dtype([("Epoch", "<i8"), ("Close", "<f8"), ("Volume", "<i8")])

    def key(i):
        return f"S{{i:04d}}/1Min/OHLCV"

    def rows(i):
        return np.array([(T0, i + 0.5, i), (T0 + 86400 * 30, -i - 0.5, -i)], dtype=DT)

    def check(db):
        for i in range(N):
            r = db.read(key(i))
            assert list(r["Close"]) == [i + 0.5, -i - 0.5], (key(i), list(r["Close"]))
        got = db.query("*/1Min/OHLCV", limit=1)
        assert len(got) == N and all(len(r) == 1 for r in got.values())
        ticks = db.read("TICK/1Sec/TRADE")
        assert len(ticks) == 2 * 20

    root, phase = sys.argv[1], sys.argv[2]
    if phase == "write":
        db = mkts.open(root, sync="off")
        # 2,000 year files behind one handle that may keep about a hundred open.
        db.write_many({{key(i): rows(i) for i in range(N // 2)}})
        for i in range(N // 2, N):
            db.write(key(i), rows(i))
        for y in range(20):  # a tick bucket with 20 year files, planned against open files
            t = T0 + 366 * 86400 * (y - 10)
            db.write("TICK/1Sec/TRADE", {{"Epoch": np.array([t, t]),
                     "Nanoseconds": np.array([5, 6], dtype=np.int32),
                     "Price": np.array([1.0, 2.0])}}, variable=True)
        check(db)
        s = db.stats()
        assert s["failed"] is None, s["failed"]
        assert s["open_files"] <= s["max_open_files"] < 128, s
        assert s["file_evictions"] > 0, s
        print("ok", phase, flush=True)
        os._exit(0)  # no close: the next open replays every transaction
    elif phase == "reopen":
        with mkts.open(root) as db:
            assert db.stats()["failed"] is None
            check(db)
        with mkts.open(root, readonly=True) as ro:
            check(ro)
        print("ok", phase)
""")


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory where there is one: creating 2,000 buckets durably is ~10,000
    fsyncs, minutes on a slow disk, and this test is about descriptors, not the disk."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    if base is None:
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="mkts-nofile-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run(root: Path, phase: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), phase], env=server_env(),
                          preexec_fn=_limit, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and f"ok {phase}" in proc.stdout, \
        f"{phase} under RLIMIT_NOFILE={NOFILE} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"


def test_more_buckets_than_descriptors_write_read_reopen_and_serve(fast_dir: Path) -> None:
    root = fast_dir / "db"
    _run(root, "write")
    _run(root, "reopen")

    config = write_config(fast_dir, triggers=[], wal={"sync": "always"})
    srv = ServerProcess(config, preexec_fn=_limit).wait_ready()
    try:
        assert requests.get(srv.url + "/heartbeat", timeout=10).status_code == 200
        client = pymkts.Client(srv.rpc_url)
        symbols = [f"S{i:04d}" for i in range(0, BUCKETS, 7)]
        reply = client.query(pymkts.Params(symbols, "1Min", "OHLCV"))
        frames = reply.by_symbols()
        assert sorted(frames) == symbols
        for s in symbols:
            i = int(s[1:])
            assert list(frames[s].df()["Close"]) == [i + 0.5, -i - 0.5]
        more = np.array([(T0 + 60, 9.5, 9)],
                        dtype=[("Epoch", "i8"), ("Close", "f8"), ("Volume", "i8")])
        client.write(more, "S0001/1Min/OHLCV")
        got = client.query(pymkts.Params("S0001", "1Min", "OHLCV")).first().df()
        assert list(got["Close"]) == [1.5, 9.5, -1.5]
    finally:
        rc = srv.stop()
    assert rc == 0, srv.stderr()
    assert "stopped cleanly" in srv.stderr()
