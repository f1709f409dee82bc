"""`python -m mkts.wal.inspect`: output and exit status on clean, torn and corrupt logs."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from mkts.wal import OsFileSystem, WriteAheadLog

REPO = Path(__file__).resolve().parents[2]


def _inspect(path: Path) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "mkts.wal.inspect", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _log(tmp_path: Path, payloads: list[bytes], **kw: int) -> Path:
    d = tmp_path / "wal"
    with WriteAheadLog.open(str(d), OsFileSystem(), **kw) as log:
        for p in payloads:
            log.append([p])
    return d


def _seg(d: Path, n: int = 1) -> Path:
    return d / f"{n:020d}.wal"


def test_inspect_clean_segment(tmp_path):
    d = _log(tmp_path, [b"hello", b"", b"x" * 5000])
    rc, out, err = _inspect(_seg(d))
    assert rc == 0, err
    lines = out.splitlines()
    assert "version 1, sequence 1, first_txn 1, flags BASE" in lines[1]
    rows = [line.split() for line in lines if line.split()[0].isdigit()]
    assert rows == [
        ["40", "1", "1", "5", "ok"],
        ["65", "2", "1", "0", "ok"],
        ["85", "3", "1", "5000", "ok"],
    ]
    assert lines[-1].strip() == "end: clean (3 records, last txn 3)"


def test_inspect_clean_directory_of_several_segments(tmp_path):
    d = _log(tmp_path, [b"a" * 100] * 6, segment_max_bytes=250)
    rc, out, _ = _inspect(d)
    assert rc == 0
    assert out.count("segment ") == 3
    assert out.splitlines()[-1] == "log: clean (3 live segments, txns 1..6)"


def test_inspect_torn_segment(tmp_path):
    d = _log(tmp_path, [b"hello", b"world"])
    data = _seg(d).read_bytes()
    _seg(d).write_bytes(data[:-2])
    rc, out, _ = _inspect(_seg(d))
    assert rc == 0
    assert "65" in out and "BAD (record of 5 payload bytes runs 2 bytes past the end)" in out
    assert out.splitlines()[-1].strip().startswith("end: torn tail at offset 65")
    rc, out, _ = _inspect(d)
    assert rc == 0
    assert out.splitlines()[-1].startswith(f"log: torn tail in {_seg(d)} at offset 65")


def test_inspect_corrupt_segment(tmp_path):
    d = _log(tmp_path, [b"hello", b"world", b"again"])
    data = bytearray(_seg(d).read_bytes())
    data[65 + 21] ^= 0x10  # a payload byte of record 2
    _seg(d).write_bytes(bytes(data))
    rc, out, _ = _inspect(_seg(d))
    assert rc == 1
    bad = [line for line in out.splitlines() if "BAD" in line]
    assert bad and bad[0].split()[:4] == ["65", "2", "1", "5"] and "checksum mismatch" in bad[0]
    assert out.splitlines()[-1].strip() == (
        "end: corrupt at offset 65 (checksum mismatch (stored "
        f"{struct.unpack_from('<I', data, 65)[0]:#010x}, computed "
        f"{bad[0].split('computed ')[1].split(')')[0]}); a valid record follows at offset 90)"
    )
    rc, out, _ = _inspect(d)
    assert rc == 1
    assert out.splitlines()[-1].startswith(f"log: corrupt at {_seg(d)} offset 65")


def test_inspect_directory_with_a_txn_gap_is_corrupt(tmp_path):
    d = _log(tmp_path, [b"a" * 100] * 4, segment_max_bytes=250)
    data = _seg(d).read_bytes()
    _seg(d).write_bytes(data[:160])  # drop txn 2, the last record of segment 1
    rc, out, _ = _inspect(d)
    assert rc == 1
    assert f"log: corrupt at {_seg(d, 2)} offset 0" in out and "txn gap" in out


def test_inspect_damaged_header_and_missing_path(tmp_path):
    d = _log(tmp_path, [b"a"])
    data = bytearray(_seg(d).read_bytes())
    data[0] = 0
    _seg(d).write_bytes(bytes(data))
    rc, out, _ = _inspect(_seg(d))
    assert rc == 1 and "header: BAD (bad magic" in out
    assert out.splitlines()[-1].strip() == "end: corrupt at offset 0 (damaged segment header)"
    rc, _, err = _inspect(tmp_path / "nope")
    assert rc == 2 and "no such file" in err


def test_inspect_of_a_checkpointed_log_names_no_empty_txn_range(tmp_path):
    d = tmp_path / "wal"
    with WriteAheadLog.open(str(d), OsFileSystem()) as log:
        for p in (b"a", b"b", b"c"):
            log.append([p])
        log.sync()
        log.checkpoint(3)
    rc, out, _ = _inspect(d)
    assert rc == 0
    assert out.splitlines()[-1] == "log: clean (1 live segments, no transactions after txn 3)"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    rc, out, _ = _inspect(fresh)
    assert out.splitlines()[-1] == "log: clean (0 live segments, no transactions)"
