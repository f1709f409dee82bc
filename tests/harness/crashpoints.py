"""Crash points for in-process crash tests: SimulatedCrash and a helper to run up to one.

FaultFS.crash_at(op, nth) arms the point and raises SimulatedCrash from inside the FS call;
what survives is decided afterwards by FaultFS.crash(mode, rng) (faultfs.py, crashmodes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.faultfs import FaultFS

__all__ = ["SimulatedCrash", "run_to_crash"]


class SimulatedCrash(BaseException):
    """The simulated machine died at this point.

    A BaseException, like KeyboardInterrupt, so that product code's `except Exception` cannot
    swallow it. Once raised, the FaultFS is frozen: every later call on it raises
    SimulatedCrash again (so cleanup code in `finally` blocks cannot change the disk either),
    except File.close() and unlock(), which do nothing."""


def run_to_crash(
    fs: FaultFS,
    workload: Callable[[FaultFS], object],
    op: str,
    nth: int,
    *,
    path: str | None = None,
) -> bool:
    """Run `workload(fs)` with a crash armed after the nth completed `op` (optionally only
    calls whose path matches the glob `path`). True if it crashed; False if the workload
    finished first (the point is then disarmed). Enumerate every point with
    `for k in range(1, fs0.counts[op] + 1)` after one clean run on `fs0`."""
    fs.crash_at(op, nth, path=path)
    try:
        workload(fs)
    except SimulatedCrash:
        return True
    fs.clear_faults()
    return False
