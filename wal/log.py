"""`WriteAheadLog`: open (with recovery), append, sync, rotate, checkpoint, replay.

The byte layout is wal/format.py (docs/wal.md); judging and repairing what open finds is
wal/recovery.py. Transactions and their payloads mean nothing here: that is the engine's job.
"""

from __future__ import annotations

import os.path
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from mkts.wal.errors import WalError
from mkts.wal.format import (
    FLAG_BASE,
    HEADER_SIZE,
    RT_DATA,
    Payload,
    check_payload_sizes,
    encode_segment_header,
    frame_one,
    frame_parts,
    new_salt,
    record_seed,
    segment_name,
)
from mkts.wal.fs import File, FileSystem
from mkts.wal.recovery import DEFAULT_RECOVERY, recover, write_highest
from mkts.wal.scan import SegmentScan, iter_segment_records

__all__ = ["Record", "WriteAheadLog"]

# Appends of at least this many bytes use File.pwritev when the file has it, instead of
# joining the frames into one buffer first (a 100 MB join costs as much as the write).
_WRITEV_MIN = 256 << 10
_WRITEV_MAX_PARTS = 1024


class Record(NamedTuple):
    """One transaction read back from the log: its number, type, payload and where it lives."""

    txn: int
    rtype: int
    payload: bytes
    segment: str  # path of the segment file
    offset: int  # byte offset of the record header in that file


class WriteAheadLog:
    """A write-ahead log in one directory of segment files (docs/wal.md).

    Durability: `append` only writes (page cache); a record is durable once a later `sync()`
    returned. Ordering: txns are assigned consecutively in `append` order. Thread safety: the
    caller serialises `append`, `checkpoint` and `close`; `sync()` may run concurrently with
    `append` (group commit) and covers every append that returned before it was called.
    Failure: after any OSError from a write, sync, create or delete, the log refuses further
    changes with `WalError` and never retries the failed fsync.
    """

    def __init__(
        self,
        directory: str,
        fs: FileSystem,
        *,
        segment_max_bytes: int,
        readonly: bool,
        scans: list[SegmentScan],
        last_txn: int,
        next_sequence: int,
    ) -> None:
        self._dir = directory
        self._fs = fs
        self._max = segment_max_bytes
        self._readonly = readonly
        self._scans: list[SegmentScan] | None = scans
        self._last_txn = last_txn
        self._next_seq = next_sequence
        self._file: File | None = None
        self._retired: list[File] = []  # rotated-out segments, closed at checkpoint/close
        self._seq = 0
        self._seed = 0
        self._end = 0
        self._older_bytes = 0  # bytes in live segments before the current one
        self._live: list[str] = [s.path for s in scans]
        self._failed: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------------ open
    @classmethod
    def open(
        cls,
        directory: str,
        fs: FileSystem,
        *,
        recovery: str = DEFAULT_RECOVERY,
        segment_max_bytes: int = 64 << 20,
        readonly: bool = False,
    ) -> WriteAheadLog:
        """Open (creating it if needed) and recover the log in `directory`; see docs/wal.md §5.

        A torn tail ends the log and is truncated off (unless `readonly`). Corruption raises
        `CorruptWALError` naming the segment and offset and changes nothing, unless
        `recovery="point_in_time"`, which keeps the valid prefix and sets the rest aside in
        `<directory>/damaged/`. An unknown format version raises `UnsupportedFormatError`."""
        if segment_max_bytes < 1:
            raise ValueError(f"segment_max_bytes must be positive, not {segment_max_bytes}")
        found = recover(fs, directory, mode=recovery, readonly=readonly)
        wal = cls(
            directory,
            fs,
            segment_max_bytes=segment_max_bytes,
            readonly=readonly,
            scans=found.kept,
            last_txn=found.last_txn,
            next_sequence=found.next_sequence,
        )
        if readonly:
            wal._older_bytes = sum(s.valid_end for s in found.kept)
            return wal
        try:
            if found.kept:
                current = found.kept[-1]
                wal._file = fs.open(current.path, write=True)
                wal._seq = current.header.sequence
                wal._seed = record_seed(current.header.salt)
                wal._end = current.valid_end
                wal._older_bytes = sum(s.valid_end for s in found.kept[:-1])
            else:
                wal._switch_to_new_segment(base=True)
        except BaseException:
            wal.close()
            raise
        return wal

    # ------------------------------------------------------------------ reading
    def records(self) -> Iterator[Record]:
        """The valid records found at open, in txn order. Read them before the first
        `checkpoint()` (which deletes the segments they live in)."""
        if self._scans is None:
            raise WalError(
                f"write-ahead log {self._dir}: records() is only available until the "
                "first checkpoint() or close()"
            )
        return self._iter_records(self._scans)

    def _iter_records(self, scans: list[SegmentScan]) -> Iterator[Record]:
        for scan in scans:
            file = self._fs.open(scan.path)
            try:
                for offset, txn, rtype, payload in iter_segment_records(
                    file, scan.valid_end, scan.header, scan.valid_end
                ):
                    yield Record(txn, rtype, payload, scan.path, offset)
            finally:
                file.close()

    @property
    def last_txn(self) -> int:
        """The highest txn in the log (0 for a new log); the next append gets last_txn + 1."""
        return self._last_txn

    @property
    def size_bytes(self) -> int:
        """Bytes in the live segments (headers included)."""
        return self._older_bytes + self._end

    @property
    def directory(self) -> str:
        return self._dir

    # ------------------------------------------------------------------ writing
    def append(self, payloads: Sequence[Payload], rtype: int = RT_DATA) -> int:
        """Frame `payloads` as consecutive txns and write them with one write; returns the last
        txn assigned (last_txn unchanged when `payloads` is empty). Not durable until `sync()`.
        A payload given as a tuple of buffers is logged as their concatenation.
        Rotates to a new segment first when the current one exceeds `segment_max_bytes`."""
        self._check_writable("append")
        if not 1 <= rtype <= 255:
            raise ValueError(f"rtype must be 1..255, not {rtype}")
        if not payloads:
            return self._last_txn
        first = self._last_txn + 1
        if self._end > self._max and self._end > HEADER_SIZE:
            check_payload_sizes(payloads)  # a bad payload fails before any I/O
            try:
                self._rotate()
            except BaseException as exc:
                self._fail(exc)
                raise
        file = self._file
        assert file is not None
        one = payloads[0] if len(payloads) == 1 else None
        if type(one) is bytes and len(one) < _WRITEV_MIN:  # the small single transaction
            frame = frame_one(one, first, rtype, self._seed)  # may raise ValueError
            try:
                file.pwrite(frame, self._end)
            except BaseException as exc:
                self._fail(exc)
                raise
            self._end += len(frame)
            self._last_txn = first
            return first
        parts, total = frame_parts(payloads, first, rtype, self._seed)  # may raise ValueError
        writev = getattr(file, "pwritev", None)
        try:
            if writev is not None and total >= _WRITEV_MIN and len(parts) <= _WRITEV_MAX_PARTS:
                writev(parts, self._end)  # big payloads: one syscall, no joined copy
            else:
                file.pwrite(b"".join(parts), self._end)
        except BaseException as exc:
            self._fail(exc)
            raise
        self._end += total
        self._last_txn = first + len(payloads) - 1
        return self._last_txn

    def sync(self) -> None:
        """Make every append that returned before this call durable (fdatasync). An error is
        fatal for the log: it propagates, and the fsync is never retried."""
        self._check_writable("sync")
        file = self._file
        assert file is not None
        try:
            file.sync()
        except BaseException as exc:
            self._fail(exc)
            raise

    def checkpoint(self, through_txn: int) -> None:
        """Retire every record up to `through_txn`, which the caller has made durable elsewhere.

        `through_txn` must equal `last_txn`. Starts a new base segment durably, then deletes the
        older segments and fsyncs the directory. A crash at any point leaves a log that opens."""
        self._check_writable("checkpoint")
        if through_txn != self._last_txn:
            raise ValueError(
                f"checkpoint({through_txn}): the log ends at txn {self._last_txn}; a checkpoint "
                "must cover every appended txn (through_txn + 1 must be the next txn)"
            )
        self._scans = None
        old = list(self._live)
        try:
            self._switch_to_new_segment(base=True)
            for path in old:  # oldest first: what is left is always a suffix of the old log
                self._fs.unlink(path)
            if old:
                self._fs.fsync_dir(self._dir)
        except BaseException as exc:
            self._fail(exc)
            raise
        self._live = self._live[-1:]
        self._older_bytes = 0
        self._close_retired()

    def close(self) -> None:
        """Close the files; idempotent. Does not sync."""
        if self._closed:
            return
        self._closed = True
        self._scans = None
        file, self._file = self._file, None
        try:
            self._close_retired()
        finally:
            if file is not None:
                file.close()

    # ------------------------------------------------------------------ internals
    def _check_writable(self, what: str) -> None:
        if self._failed is not None:
            raise WalError(
                f"write-ahead log {self._dir} failed earlier and accepts no {what}: "
                f"{self._failed!r}. Close the database and reopen it to recover from the log."
            )
        if self._closed:
            raise WalError(f"write-ahead log {self._dir} is closed")
        if self._readonly:
            raise WalError(f"write-ahead log {self._dir} was opened read-only: no {what}")

    def _fail(self, exc: BaseException) -> None:
        if self._failed is None:
            self._failed = exc

    def _rotate(self) -> None:
        """Sync the current segment (a later segment promises everything before it is durable),
        then start the next one."""
        assert self._file is not None
        self._file.sync()
        self._older_bytes += self._end
        self._switch_to_new_segment(base=False)

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for file in retired:
            file.close()

    def _switch_to_new_segment(self, *, base: bool) -> None:
        """Create the next segment durably (header, fsync, directory fsync), then make it current.

        The previous file stays open (retired) because a concurrent sync() may still hold it."""
        seq = self._next_seq
        self._next_seq = seq + 1
        salt = new_salt()
        header = encode_segment_header(
            seq, self._last_txn + 1, flags=FLAG_BASE if base else 0, salt=salt
        )
        path = os.path.join(self._dir, segment_name(seq))
        file = self._fs.open(path, write=True, create=True)
        try:
            file.pwrite(header, 0)
            file.sync()
            self._fs.fsync_dir(self._dir)
            # Only once the segment is durable, so the mark never names a missing segment.
            write_highest(self._fs, self._dir, seq)
        except BaseException:
            file.close()
            raise
        previous, self._file = self._file, file
        if previous is not None:
            self._retired.append(previous)
        self._seq = seq
        self._seed = record_seed(salt)
        self._end = len(header)
        self._live.append(path)

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"WriteAheadLog({self._dir!r}, last_txn={self._last_txn}, "
            f"segment={self._seq}, size_bytes={self.size_bytes})"
        )
