"""The one progress bar: tqdm on stderr when it is wanted and installed, else nothing.

Used by the long-running commands (CSV import, check, export, rebuild of aggregates); it
lives here, below the application, so that the bundled plugins' `rebuild` can use it too.
Whether a bar is wanted (a terminal, `--progress`) is the caller's decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Progress", "progress_bar", "track"]

_T = TypeVar("_T")


class Progress:
    """A bar to advance with `update(n)` and end with `close()` (or use `with`). Without
    tqdm, or when not wanted, every call does nothing."""

    __slots__ = ("_bar",)

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def note(self, text: str) -> None:
        """Show `text` after the counts (what is being worked on)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, *, unit: str = "it", bytes_: bool = False,
                 enabled: bool = True) -> Progress:
    """A bar of `total` units labelled `desc` (`bytes_`: sizes in B/kB/MB). It disappears
    when closed (tqdm's leave=False), so the command's own summary line is what stays."""
    if not enabled:
        return Progress()
    try:
        from tqdm import tqdm
    except ImportError:
        return Progress()
    return Progress(tqdm(total=total, desc=desc, unit="B" if bytes_ else unit,
                         unit_scale=bytes_, leave=False))


def track(items: Iterable[_T], total: int, desc: str, *, unit: str = "it",
          enabled: bool = True) -> Iterator[_T]:
    """Iterate `items`, advancing a bar of `total` by one per item."""
    with progress_bar(total, desc, unit=unit, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.update(1)
