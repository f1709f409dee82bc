"""The options of an open database and their defaults, defined once.

`engine.open`'s keyword defaults and the `wal:` section of mkts.yml (mkts/config.py) both come
from `DEFAULTS`; a test keeps them and the commented mkts.yml in step. What the options do is
the engine's (commit.py for sync, wal/recovery.py for recovery); only their values live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from mkts.wal.recovery import DEFAULT_RECOVERY, RECOVERY_MODES, RecoveryMode

__all__ = ["SyncMode", "SYNC_MODES", "RecoveryMode", "RECOVERY_MODES", "EngineOptions",
           "DEFAULTS"]

SyncMode = Literal["always", "interval", "off"]
"""When write() returns: after the log fsync, with an fsync every sync_interval_ms, or never
fsyncing until a checkpoint (README "Durability")."""
SYNC_MODES: tuple[str, ...] = get_args(SyncMode)


@dataclass(frozen=True)
class EngineOptions:
    """`engine.open(root, **options)`'s keyword options with their defaults (`readonly`,
    `fs`, `triggers` and `workers` are arguments, not settings)."""

    timezone: str | None = None  # the root's own; UTC for a new root
    sync: SyncMode = "always"
    sync_interval_ms: int = 100
    checkpoint_interval_s: float = 60.0
    max_wal_mb: int = 256
    recovery: RecoveryMode = DEFAULT_RECOVERY
    max_open_files: int | None = None  # derived from RLIMIT_NOFILE (docs/format.md "Open files")
    allow_missing_columns: bool = False  # a write may leave out columns: they take their fill
    # A year closed this many days is sealed at a checkpoint, in the background (0: never;
    # docs/format.md "Sealing, re-sealing and the swap").
    seal_after_days: float = 7.0
    # A write of at least this many rows into a closed year its fixed bucket does not hold
    # is written sealed directly (docs/format.md "Bulk loads"; 0: never).
    bulk_load_rows: int = 10_000
    # MiB of decoded column chunks of sealed files kept for repeated reads (0: none;
    # docs/format.md "The decoded block cache").
    block_cache_mb: int = 64


DEFAULTS = EngineOptions()
