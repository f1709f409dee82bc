"""benchmarks/raw.py's minimal group commit (the same-run ceiling of mkts' writer threads):
no writer may hang, every payload lands exactly once, and with several writers one
fdatasync makes more than one payload durable."""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

import pytest

from benchmarks import raw

TIMEOUT_S = 60.0


def _run(path: Path, threads: int, **kw: Any) -> raw.GroupCommitRun:
    """raw.group_commit_appends in a daemon thread, failing instead of hanging."""
    got: list[raw.GroupCommitRun] = []

    def target() -> None:
        got.append(raw.group_commit_appends(str(path), threads, **kw))

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(TIMEOUT_S)
    assert not t.is_alive(), f"group commit with {threads} threads hung (> {TIMEOUT_S:g} s)"
    assert got, "group_commit_appends raised"
    return got[0]


@pytest.mark.parametrize("threads", [1, 4, 8])
def test_fixed_count_completes_and_writes_every_payload_once(tmp_path: Path, threads: int
                                                             ) -> None:
    count, payload = 200, 200
    path = tmp_path / "gc.bin"
    res = _run(path, threads, count=count, payload=payload)
    assert res.appends == threads * count
    data = path.read_bytes()
    assert len(data) == threads * count * payload
    # thread i writes bytes of value ord("A") + i: each thread's payloads all landed
    assert collections.Counter(data) == {ord("A") + i: count * payload for i in range(threads)}
    # payloads are never torn: every record is 200 bytes of one thread's value
    assert all(len(set(data[k : k + payload])) == 1 for k in range(0, len(data), payload))
    assert 1 <= res.syncs <= res.appends
    if threads == 1:
        assert res.syncs == res.appends and res.max_batch == 1


def test_four_threads_group_payloads_into_one_fdatasync(tmp_path: Path) -> None:
    res = _run(tmp_path / "gc.bin", 4, count=200)
    assert res.max_batch > 1, res  # at least one fdatasync covered more than one payload
    assert res.syncs < res.appends, res


def test_seconds_bound_stops_every_writer(tmp_path: Path) -> None:
    path = tmp_path / "gc.bin"
    res = _run(path, 4, seconds=0.1)
    assert res.appends > 0 and res.elapsed >= 0.1
    assert path.stat().st_size == res.appends * 200


def test_needs_a_bound(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        raw.group_commit_appends(str(tmp_path / "gc.bin"), 1)
