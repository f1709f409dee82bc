"""The ordering checker: reads a FaultFS trace and reports every call that breaks the
write-ahead rules R3 and R4 of docs/design.md §9 (the labels its messages carry).

- R3, WAL before data: no pwrite to a year file (`*.bin`) happens while a log append (a pwrite
  to a segment past its header) is not yet covered by a successful log fsync; in particular a
  replay at open applies nothing before the log it read is synced.
- R4, checkpoint before log truncation: a segment is unlinked only when every year file
  written since its last fsync has been synced again, and when the newer segment that replaces
  it (if this trace created one) was synced after its last write and its directory fsynced
  after its creation. A year file unlinked (a year a delete removed, WAL op 5) needs no
  sync once its directory was fsynced after the unlink.

Valid for sync="always" and sync="interval" traces of one writer (the engine serialises log,
apply and checkpoint under one lock, so concurrent writers give the same orderings).
"""

from __future__ import annotations

import os.path

from harness.faultfs import TraceEntry

__all__ = ["ordering_violations"]


def _is_segment(path: str) -> bool:
    return path.endswith(".wal") and os.path.basename(os.path.dirname(path)) == "wal"


def ordering_violations(trace: list[TraceEntry]) -> list[str]:
    out: list[str] = []
    unsynced_appends = 0  # log appends not yet covered by a successful log fsync
    replay_pending = False  # an open took the lock and has not synced the log yet
    dirty_bins: set[str] = set()
    wal_dirty: set[str] = set()  # segments written since their last successful sync
    created: dict[str, int] = {}  # segment -> trace index of its creation
    dir_synced: dict[str, int] = {}  # directory -> trace index of its last fsync
    unlinked_bins: set[str] = set()  # year files unlinked, directory not yet fsynced
    for i, e in enumerate(trace):
        failed = i + 1 < len(trace) and trace[i + 1].op == "fault"
        if failed:
            continue
        op, path = e.op, e.path
        if op == "lock":
            replay_pending = True
        elif op == "pwrite" and _is_segment(path):
            wal_dirty.add(path)
            if e.detail[0] > 0:  # type: ignore[index]
                unsynced_appends += 1
        elif op == "sync" and _is_segment(path):
            wal_dirty.discard(path)
            unsynced_appends = 0
            replay_pending = False
        elif op == "pwrite" and path.endswith(".bin"):
            if unsynced_appends:
                out.append(f"#{i} pwrite {path}: {unsynced_appends} log append(s) not yet "
                           "fsynced (R3)")
            elif replay_pending:
                out.append(f"#{i} pwrite {path}: replay applies records before syncing the "
                           "log it read (R3)")
            dirty_bins.add(path)
        elif op == "sync" and path.endswith(".bin"):
            dirty_bins.discard(path)
        elif op == "open" and e.detail == "create" and _is_segment(path):
            created[path] = i
        elif op == "unlink" and path.endswith(".bin"):
            unlinked_bins.add(path)
        elif op == "fsync_dir":
            dir_synced[path] = i
            gone = {p for p in unlinked_bins if os.path.dirname(p) == path}
            dirty_bins -= gone
            unlinked_bins -= gone
        elif op == "unlink" and _is_segment(path):
            if dirty_bins:
                out.append(f"#{i} unlink {path}: year files not synced since written: "
                           f"{sorted(dirty_bins)} (R4)")
            newer = [p for p in created if p > path and os.path.dirname(p) == os.path.dirname(path)]
            for p in newer[-1:]:
                if p in wal_dirty:
                    out.append(f"#{i} unlink {path}: the new segment {p} is not synced (R4)")
                if dir_synced.get(os.path.dirname(p), -1) < created[p]:
                    out.append(f"#{i} unlink {path}: the directory entry of {p} is not synced "
                               "(R4)")
    return out
