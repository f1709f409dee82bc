"""Online backup (docs/backup.md): a copy made while writers write holds the database as of
the transaction it names, passes `mkts check`, opens as a root (restore), and a second
backup into the same destination copies only what changed, never touching the first."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.backuphooks import during_copy
from harness.waiting import wait_until

import mkts
from mkts import engine
from mkts.check import check_root
from mkts.engine import backup as backup_module
from mkts.engine.backup import MANIFEST, backup_root
from mkts.wal.crc import crc32c
from mkts.wal.fs import OsFileSystem

REPO = Path(__file__).resolve().parents[2]
T0 = 1_699_999_200  # 2023-11-14 22:00 UTC: a whole hour
Y2024 = 1_704_067_200


def _bar(epoch: int, value: float) -> dict[str, np.ndarray]:
    return {"Epoch": np.array([epoch], "i8"), "Close": np.array([value], "f8")}


def _tick(epoch: int, ns: int, price: float) -> dict[str, np.ndarray]:
    return {"Epoch": np.array([epoch], "i8"), "Nanoseconds": np.array([ns], "i4"),
            "Price": np.array([price], "f8")}


class Writer:
    """Writes fixed bars (overwriting), ticks, new buckets and new years on a thread, and
    remembers which transaction wrote what: the model of the source at any transaction."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.log: list[tuple[int, str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            key = f"S{i % 5}/1Min/OHLCV"
            epoch = (T0 if i % 3 else Y2024) + 60 * (i % 50)  # overwrites, two years
            txn = self.db.write(key, _bar(epoch, float(i)))
            self.log.append((txn, key, (epoch, float(i))))
            tkey = f"T{i % 2}/1Sec/TICK"
            txn = self.db.write(tkey, _tick(T0 + i // 4, i, float(i)), variable=True)
            self.log.append((txn, tkey, (T0 + i // 4, i, float(i))))
            if i % 40 == 0:  # a bucket created while the backup runs
                nkey = f"N{i}/1H/OHLCV"
                txn = self.db.write(nkey, _bar(T0, float(i)))
                self.log.append((txn, nkey, (T0, float(i))))

    def model(self, upto: int) -> dict[str, Any]:
        """What the source holds after transaction `upto` (of what this writer wrote)."""
        bars: dict[str, dict[int, float]] = {}
        ticks: dict[str, list[tuple[int, int, float]]] = {}
        for txn, key, row in sorted(self.log, key=lambda e: e[0]):
            if txn > upto:
                break
            if "TICK" in key:
                ticks.setdefault(key, []).append(row)
            else:
                bars.setdefault(key, {})[row[0]] = row[1]
        return {"bars": bars, "ticks": ticks}


def _read(db: Any, keys: list[str]) -> dict[str, Any]:
    bars: dict[str, dict[int, float]] = {}
    ticks: dict[str, list[tuple[int, int, float]]] = {}
    for key in keys:
        if key not in db.list_keys():
            continue
        r = db.read(key)
        if "TICK" in key:
            rows = list(zip(np.asarray(r["Epoch"]).tolist(), np.asarray(r["Nanoseconds"]).tolist(),
                            np.asarray(r["Price"]).tolist(), strict=True))
            if rows:
                ticks[key] = rows
        elif len(r):
            bars[key] = dict(zip(np.asarray(r["Epoch"]).tolist(), np.asarray(r["Close"]).tolist(),
                                 strict=True))
    return {"bars": bars, "ticks": ticks}


def _keys(w: Writer) -> list[str]:
    return sorted({k for _, k, _ in w.log})


def _written(w: Writer, n: int) -> None:
    assert wait_until(lambda: len(w.log) >= n, timeout=30), f"{n} writes"


def test_backup_while_writing_equals_source_at_its_txn(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db = mkts.open(tmp_path / "db", sync="off")  # what is logged is what counts here
    w = Writer(db)
    take = backup_module._take
    during: list[int] = []

    def take_while_writing(*args: Any, **kwargs: Any) -> Any:
        if not during:  # the first file copied: writes land while the copy runs
            during.append(len(w.log))
            _written(w, during[0] + 20)
        return take(*args, **kwargs)

    monkeypatch.setattr(backup_module, "_take", take_while_writing)
    w.thread.start()
    try:
        _written(w, 200)
        result = db.backup(tmp_path / "bk")
        _written(w, len(w.log) + 100)  # writing went on after the backup's transaction
    finally:
        w.stop.set()
        w.thread.join()
    db.close()
    assert during and result.txn > result.base_txn > 0
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        got = _read(copy, _keys(w))
    assert got == w.model(result.txn)
    assert got != w.model(max(t for t, _, _ in w.log))  # the source went on past it
    report = check_root(str(tmp_path / "bk"))
    assert report.errors == [] and report.wal_pending == 0


def test_restore_is_opening_the_copy_and_writing_goes_on_after_its_txn(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
        txn = db.write("AAPL/1Min/OHLCV", _bar(T0 + 60, 2.0))
        result = db.backup(tmp_path / "bk")
        db.write("AAPL/1Min/OHLCV", _bar(T0 + 120, 3.0))
    assert result.txn == txn
    with mkts.open(tmp_path / "bk") as restored:
        assert np.asarray(restored.read("AAPL/1Min/OHLCV")["Close"]).tolist() == [1.0, 2.0]
        assert restored.write("AAPL/1Min/OHLCV", _bar(T0 + 180, 4.0)) == txn + 1


def test_backup_of_a_root_open_in_another_handle_without_checkpoint(tmp_path: Path) -> None:
    """`mkts backup` beside a running writer: no checkpoint is taken; the records since the
    writer's last one are replayed in the copy."""
    db = mkts.open(tmp_path / "db", checkpoint_interval_s=3600)
    try:
        for i in range(20):
            last = db.write("AAPL/1Min/OHLCV", _bar(T0 + 60 * i, float(i)))
        result = backup_root(str(tmp_path / "db"), str(tmp_path / "bk"))
    finally:
        db.close()
    assert result.txn == last and result.base_txn < last
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert len(copy.read("AAPL/1Min/OHLCV")) == 20


def _age(root: Path, seconds: int = 3600) -> None:
    """Make every data file look written long ago (out of the racy-mtime window)."""
    past = time.time_ns() - seconds * 1_000_000_000
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n.endswith(".bin"):
                os.utime(os.path.join(dirpath, n), ns=(past, past))


def test_second_backup_copies_only_changed_files(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        for i in range(10):
            db.write(f"S{i}/1Min/OHLCV", _bar(T0, float(i)))
        db.checkpoint()
        _age(tmp_path / "db")
        first = db.backup(tmp_path / "bk")
        db.write("S3/1Min/OHLCV", _bar(T0 + 60, 33.0))
        second = db.backup(tmp_path / "bk")
    assert first.files_copied >= 10 and first.files_linked == 0
    assert second.files_linked == 9
    assert second.bytes_copied < first.bytes_copied
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert np.asarray(copy.read("S3/1Min/OHLCV")["Close"]).tolist() == [3.0, 33.0]
        assert np.asarray(copy.read("S4/1Min/OHLCV")["Close"]).tolist() == [4.0]
    assert check_root(str(tmp_path / "bk")).errors == []


def _crc(path: Path) -> int:
    return int(crc32c(path.read_bytes()))


@pytest.mark.parametrize("decodable", [True, False])
def test_incremental_backup_never_writes_into_the_previous_backup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decodable: bool) -> None:
    """A file that looks unchanged (same inode, size, mtime) but that a logged transaction
    writes is copied, not linked: the replay must not reach the old backup's file. When the
    backup cannot tell which files the records write (a record it cannot decode on its own,
    as after a column change), it copies every linked year file."""
    if not decodable:
        from mkts.engine import journal

        real = journal.decode

        def decode(payload: Any, schema_of: Any, where: str = "") -> Any:
            if " in " not in where:  # the backup's own look at the records, not the replay
                raise ValueError("cannot decode this record alone")
            return real(payload, schema_of, where)

        monkeypatch.setattr(journal, "decode", decode)
    src = tmp_path / "db"
    db = mkts.open(src, checkpoint_interval_s=3600)
    try:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
        db.checkpoint()
        _age(src)
        backup_root(str(src), str(tmp_path / "bk"))
        year = src / "AAPL/1Min/OHLCV/2023.bin"
        st = year.stat()
        kept = tmp_path / "kept.bin"  # the first backup's file, whatever name it has later
        os.link(tmp_path / "bk/AAPL/1Min/OHLCV/2023.bin", kept)
        before = _crc(kept)
        txn = db.write("AAPL/1Min/OHLCV", _bar(T0 + 60, 2.0))
        os.utime(year, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide the write from the stat
        second = backup_root(str(src), str(tmp_path / "bk"))
    finally:
        db.close()
    assert second.txn == txn
    assert _crc(kept) == before
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert np.asarray(copy.read("AAPL/1Min/OHLCV")["Close"]).tolist() == [1.0, 2.0]


def test_bucket_compacted_during_the_copy_is_copied_again(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A file replaced outside the log during the copy (compaction rewrites it) makes the
    backup start again; the copy then holds the compacted file."""
    src = tmp_path / "db"
    db = mkts.open(src)
    try:
        for i in range(5):  # the same interval again and again: garbage to reclaim
            db.write("T/1Sec/TICK", _tick(T0, i, float(i)), variable=True)
        compacted: list[dict[str, int]] = []
        during_copy(monkeypatch, lambda: compacted.append(db.compact("T/1Sec/TICK")))
        result = backup_root(str(src), str(tmp_path / "bk"))
    finally:
        db.close()
    assert compacted[0]["after"] < compacted[0]["before"]
    assert result.attempts == 2
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert np.asarray(copy.read("T/1Sec/TICK")["Price"]).tolist() == [0.0, 1.0, 2.0, 3.0,
                                                                           4.0]
    assert check_root(str(tmp_path / "bk")).errors == []


@pytest.mark.parametrize("case", ["inside", "foreign", "not_a_root"])
def test_backup_refuses_a_bad_destination_and_changes_nothing(tmp_path: Path, case: str) -> None:
    src = tmp_path / "db"
    with mkts.open(src) as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
    dest = tmp_path / "bk"
    root = src
    if case == "inside":
        dest = src / "bk"
    elif case == "foreign":
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")
    else:
        root = tmp_path / "empty"
        root.mkdir()
    with pytest.raises(engine.InvalidInputError) as exc:
        backup_root(str(root), str(dest))
    assert str(dest if case != "not_a_root" else root) in str(exc.value)
    if case == "foreign":
        assert sorted(os.listdir(dest)) == ["notes.txt"]
    else:
        assert not dest.exists()
    assert not any(n.endswith(".mkts-backup-new") for n in os.listdir(dest.parent))


def test_backup_destination_holds_a_manifest_and_no_leftovers(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
        db.backup(tmp_path / "bk")
        db.backup(tmp_path / "bk")
    assert (tmp_path / "bk" / MANIFEST).is_file()
    assert sorted(os.listdir(tmp_path)) == ["bk", "db"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "mkts.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_backup_names_the_transaction_and_the_copy_passes_check(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        txn = db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
    res = _cli("backup", str(tmp_path / "db"), str(tmp_path / "bk"))
    assert res.returncode == 0, res.stderr
    assert f"as of transaction {txn} in {tmp_path / 'bk'}" in res.stdout
    assert "restore: open" in res.stdout
    res = _cli("check", "--root", str(tmp_path / "bk"))
    assert res.returncode == 0 and res.stdout.rstrip().endswith(": ok"), res.stderr


def test_cli_backup_into_a_foreign_directory_is_one_error_line(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "notes.txt").write_text("mine")
    res = _cli("backup", str(tmp_path / "db"), str(tmp_path / "bk"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds no mkts backup" in lines[0]


def test_backup_of_a_damaged_log_fails_and_leaves_the_destination(tmp_path: Path) -> None:
    src = tmp_path / "db"
    with mkts.open(src) as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
        first = db.backup(tmp_path / "bk")
    db = mkts.open(src, checkpoint_interval_s=3600)
    try:
        for i in range(3):
            db.write("AAPL/1Min/OHLCV", _bar(T0 + 60 * (i + 1), float(i)))
        seg = sorted((src / "wal").glob("*.wal"))[-1]
        with open(seg, "r+b") as fh:  # a byte of the first record's payload: mid-log damage
            fh.seek(40 + 20 + 4)
            b = fh.read(1)
            fh.seek(40 + 20 + 4)
            fh.write(bytes([b[0] ^ 0xFF]))
        with pytest.raises(engine.CorruptWALError):
            backup_root(str(src), str(tmp_path / "bk"))
    finally:
        db.close()
    assert sorted(os.listdir(tmp_path)) == ["bk", "db"]
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert len(copy.read("AAPL/1Min/OHLCV")) == 1 and first.txn >= 1


class _NoExchange(OsFileSystem):
    """A file system that cannot swap two directories in one step; `fail_into` makes the
    rename of the new backup into place fail once (a crash between the two renames)."""

    def __init__(self, fail_into: str | None = None) -> None:
        self.fail_into = fail_into

    def exchange(self, a: str, b: str) -> None:
        raise OSError(errno.EINVAL, "exchange not supported", a)

    def replace(self, src: str, dst: str) -> None:
        if self.fail_into is not None and dst == self.fail_into and "mkts-backup-new" in src:
            self.fail_into = None
            raise OSError(errno.EIO, "simulated crash", src)
        super().replace(src, dst)


def test_swap_by_two_renames_and_a_crash_between_them(tmp_path: Path) -> None:
    src, dest = tmp_path / "db", tmp_path / "bk"
    with mkts.open(src) as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
        backup_root(str(src), str(dest), fs=_NoExchange())
        db.write("AAPL/1Min/OHLCV", _bar(T0 + 60, 2.0))
        db.checkpoint()
        with pytest.raises(OSError, match="simulated crash"):
            backup_root(str(src), str(dest), fs=_NoExchange(fail_into=str(dest)))
        assert not dest.exists()  # cut between the renames: the old backup is aside
        aside = tmp_path / ".bk.mkts-backup-old"
        with mkts.open(aside, readonly=True) as old:  # the previous backup, whole
            assert np.asarray(old.read("AAPL/1Min/OHLCV")["Close"]).tolist() == [1.0]
        backup_root(str(src), str(dest), fs=_NoExchange())
        db.write("AAPL/1Min/OHLCV", _bar(T0 + 120, 3.0))
    with mkts.open(dest, readonly=True) as copy:
        assert np.asarray(copy.read("AAPL/1Min/OHLCV")["Close"]).tolist() == [1.0, 2.0]
    assert sorted(os.listdir(tmp_path)) == ["bk", "db"]




def test_buckets_and_years_created_during_the_copy_are_in_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "db"
    with mkts.open(src) as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))

        def create() -> None:
            db.write("NEW/1Min/OHLCV", _bar(T0, 7.0))
            db.write("AAPL/1Min/OHLCV", _bar(Y2024, 2.0))  # a new year file
            db.write("T/1Sec/TICK", _tick(T0, 5, 1.5), variable=True)

        during_copy(monkeypatch, create)
        result = backup_root(str(src), str(tmp_path / "bk"))
        want = _read(db, ["AAPL/1Min/OHLCV", "NEW/1Min/OHLCV", "T/1Sec/TICK"])
    assert result.attempts == 1 and result.txn == 4
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert _read(copy, ["AAPL/1Min/OHLCV", "NEW/1Min/OHLCV", "T/1Sec/TICK"]) == want
    assert check_root(str(tmp_path / "bk")).errors == []


def test_a_bucket_destroyed_during_the_copy_is_not_in_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "db"
    with mkts.open(src) as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
        db.write("GONE/1Min/OHLCV", _bar(T0, 2.0))
        db.write("GONE/1Min/OHLCV", _bar(T0 + 60, 3.0))  # a logged write to the bucket

        during_copy(monkeypatch, lambda: db.destroy("GONE/1Min/OHLCV"))
        result = backup_root(str(src), str(tmp_path / "bk"))
    assert result.attempts == 2
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert copy.list_keys() == ["AAPL/1Min/OHLCV"]
    assert check_root(str(tmp_path / "bk")).errors == []


def test_backup_from_a_readonly_handle_and_not_from_a_closed_one(tmp_path: Path) -> None:
    with mkts.open(tmp_path / "db") as db:
        txn = db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))
    with mkts.open(tmp_path / "db", readonly=True) as ro:
        assert ro.backup(tmp_path / "bk").txn == txn
    with pytest.raises(engine.ClosedError):
        ro.backup(tmp_path / "bk2")
    assert not (tmp_path / "bk2").exists()


def test_a_checkpoint_during_the_copy_does_not_start_it_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint that rewrites file records (and starts a new log base) during the copy:
    the copy goes on and still replays from its own base."""
    src = tmp_path / "db"
    with mkts.open(src) as db:
        db.write("AAPL/1Min/OHLCV", _bar(T0, 1.0))

        def write_and_checkpoint() -> None:
            db.write("AAPL/1Min/OHLCV", _bar(Y2024, 2.0))  # a new year: a new record
            db.checkpoint()
            db.write("AAPL/1Min/OHLCV", _bar(T0 + 60, 3.0))

        during_copy(monkeypatch, write_and_checkpoint)
        result = backup_root(str(src), str(tmp_path / "bk"))
    assert result.attempts == 1 and result.txn == 3 and result.base_txn == 0
    with mkts.open(tmp_path / "bk", readonly=True) as copy:
        assert np.asarray(copy.read("AAPL/1Min/OHLCV")["Close"]).tolist() == [1.0, 3.0, 2.0]
    assert check_root(str(tmp_path / "bk")).errors == []
