"""The types at the engine's seams: the writes one transaction carries, and what a trigger and
a background worker must offer the engine.

Owns only the types. Running triggers is `engine.dispatch`, running workers
`engine.background`; the full contract for plugin authors (threads, replay, errors, YAML) is
the docstring of `mkts.plugins.base`, which re-exports these protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from mkts.engine.clears import ClearWrite, DropYear
from mkts.engine.columns import SchemaWrite
from mkts.engine.plan import RowWrite, SlotWrite
from mkts.engine.sealswap import SealYear
from mkts.engine.ticks import TickWrite

if TYPE_CHECKING:
    from mkts.engine.dispatch import Records

__all__ = ["Write", "Writes", "Trigger", "BgWorker"]

Write: TypeAlias = (SlotWrite | RowWrite | TickWrite | SchemaWrite | ClearWrite | DropYear
                    | SealYear)
"""One year file's share of a transaction, as planned, logged, applied and published (a
bucket's column change, SchemaWrite, and a seal's swap, SealYear, are logged and applied but
not published to triggers; ClearWrite and DropYear: a range delete's, engine/clears.py)."""

Writes: TypeAlias = Sequence[Write]
"""Everything one transaction writes, in plan (and log) order."""


@runtime_checkable
class Trigger(Protocol):
    """Reacts to committed writes: `fire(key_path, records)` on the dispatcher thread, once
    per year file a matching transaction touched (replayed ones included), after its data is
    readable. An exception from it is logged and counted, never fails the write.

    Optional, looked up by name: ``start(db)`` (once, before the first fire), ``stop()``
    (once at close), the attributes ``coalesce`` and ``coalesce_window_s``, and
    ``sources(key) -> str | None`` (the key pattern of the buckets it writes `key` from:
    reads of `key` wait for its pending work on them, destroying one destroys `key`), and
    ``columns_changed(key, names, op, args)`` (the column changes that follow, for the buckets
    it maintains, from a change of `key`'s columns; docs/plugins.md "Column changes of a
    base").
    """

    def fire(self, key_path: str, records: Records) -> None: ...


@runtime_checkable
class BgWorker(Protocol):
    """Runs beside the database: `run()` on a thread of its own, started after replay. An
    exception from it is logged and counted; the database keeps running.

    Optional, looked up by name: ``start(db)`` (once, before ``run``) and ``stop()`` (at
    close; ``run`` should return promptly afterwards).
    """

    def run(self) -> None: ...
