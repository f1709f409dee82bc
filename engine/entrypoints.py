"""Looking up installed plugins by name in an entry-point group (importlib.metadata): the one
mechanism behind `module:` names of triggers and workers (plugins.loader) and the names of
query functions (engine.functions). Finds; does not load or call.
"""

from __future__ import annotations

import importlib.metadata

__all__ = ["entry_point"]


def entry_point(group: str, name: str, *, ignore_case: bool = False
                ) -> importlib.metadata.EntryPoint | None:
    """The entry point `name` of `group` (the first one when several packages declare it),
    or None. With `ignore_case`, `COUNT` finds `count`."""
    if not ignore_case:
        matches = list(importlib.metadata.entry_points(group=group, name=name))
        return matches[0] if matches else None
    folded = name.lower()
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name.lower() == folded:
            return ep
    return None
