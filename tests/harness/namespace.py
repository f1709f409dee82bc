"""The rename guard: engine/, wal/ and plugins/ import only as mkts.engine, mkts.wal and
mkts.plugins. The repository root can still be on sys.path (`python -m pytest` from a
checkout, PYTHONPATH=.), where `import engine` or the plugin module "plugins.feed" would
silently work and hide a leftover of the rename; tests/conftest.py installs this finder for
the test run, and it refuses the bare names with the right one."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

OLD_NAMES = ("engine", "wal", "plugins")


class OldNameFinder(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: `engine`, `wal`, `plugins` and their submodules are not
    found, with a message naming the mkts.* module meant."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in OLD_NAMES:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: since the rename it is mkts.{fullname} "
                f"(tests/harness/namespace.py)", name=fullname)
        return None


def install() -> OldNameFinder:
    """Put a new OldNameFinder first on sys.meta_path and return it (for `uninstall`)."""
    stale = [m for m in sys.modules if m.partition(".")[0] in OLD_NAMES]
    if stale:
        raise RuntimeError(f"modules imported under their old names before the guard: {stale}")
    finder = OldNameFinder()
    sys.meta_path.insert(0, finder)
    return finder


def uninstall(finder: OldNameFinder) -> None:
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
