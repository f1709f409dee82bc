"""Hooks into a running backup for tests: run an action at a chosen step of the copy
(docs/backup.md), so a test can make a seal, a write or a destroy land exactly there
instead of hoping the scheduler puts it there."""

from __future__ import annotations

from typing import Any

import pytest


def during_copy(monkeypatch: pytest.MonkeyPatch, action: Any) -> list[int]:
    """Run `action()` once, after the backup copied the data files and before it captures
    the log (docs/backup.md step 4). The list returned is non-empty once it ran."""
    from mkts.engine import backup

    real = backup.pin_segments
    done: list[int] = []

    def pin(fs: Any, wal_dir: str, a: Any, *, first: bool) -> bool:
        if not first and not done:
            done.append(1)
            action()
        return real(fs, wal_dir, a, first=first)

    monkeypatch.setattr(backup, "pin_segments", pin)
    return done
