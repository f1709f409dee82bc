"""The plugin contracts: what a trigger or a background worker is, and what mkts promises it.

Owns the documentation of the contracts; the two Protocols themselves are the engine's
(`mkts.engine.Trigger`, `mkts.engine.BgWorker`, defined in `engine.contracts`) and are
re-exported here. Loading lives in `plugins.loader`, running them in `engine.dispatch`
(triggers) and `engine.background` (workers).

Triggers
--------
A trigger module exposes ``NewTrigger(config: dict) -> Trigger``. It raises (any exception;
`PluginError` preferred) when the config is wrong; the loader turns that into a startup error
naming the plugin. The trigger object has:

``start(db)`` (optional)
    Called once with the `engine.Database` when the trigger is attached: before its first
    ``fire``, replayed ones included. Keep the handle: triggers read and write through it.
``fire(key_path, records)``
    Called for every transaction that wrote to a bucket matching the trigger's ``on:`` pattern,
    once per year file the transaction touched.

    * **When**: after the transaction is applied, so everything it wrote is readable through
      ``db.read``; writes are delivered in commit order (so per-bucket order holds).
    * **Thread**: the single dispatcher thread ``mkts-triggers``, never the writer's thread.
      A slow trigger delays later triggers, not writers. ``db.wait_for_triggers()`` waits
      until every queued ``fire`` has returned, including fires caused by writes made inside
      ``fire`` (it is no durability barrier; ``db.checkpoint()`` is).
    * **Arguments**: ``key_path`` is the year file relative to the root,
      ``"AAPL/1Min/OHLCV/2024.bin"``; ``records`` is an `engine.records.Records`:
      ``records.key`` (the bucket key; ``str(records.key)`` is ``"AAPL/1Min/OHLCV"``),
      ``.year``, ``.txn``, ``.replayed``, ``.slots`` (slot index of each record),
      ``.rows`` (the stored rows), ``.epochs`` (each row's label in epoch seconds) and
      ``.columns()`` (``{name: array}``, ``Epoch`` first; tick buckets add ``Nanoseconds``).
      Records are in write order, not sorted. ``records.removed`` is None, or, for a
      range delete or update, ``(start_ns, end_ns)``: the records carry no rows, and every
      row of the year file whose time (interval label for bars) lies in that inclusive
      range of nanoseconds is gone (docs/plugins.md "Deletes and updates"). Such records
      are never merged by ``coalesce``; a trigger keeping derived data recomputes what
      overlaps the range.
    * **Replay**: transactions replayed from the write-ahead log at startup fire again, with
      ``records.replayed == True``. Delivery is therefore *at least once*: a transaction whose
      triggers had already run before a crash may fire again, so ``fire`` must be idempotent
      (recompute from what is in the database rather than accumulate).
    * **Errors**: an exception from ``fire`` is logged with its traceback and counted in
      ``db.stats()["trigger_errors"]``; the write that caused it has committed and stays
      committed, and later fires still run.
    * **Writing**: ``db.write``/``db.write_many`` from ``fire`` go through the normal write
      path (log, apply, fire the triggers matching *their* buckets). Do not call
      ``db.wait_for_triggers()`` from ``fire``; it does not wait there.
``stop()`` (optional)
    Called once at close, after the last ``fire``.
``coalesce`` (optional attribute, default False)
    When true, ``fire`` may receive the records of several consecutive transactions to one
    year file in a single call: joined in write order (a slot written twice appears twice),
    ``records.txn`` the last transaction, replayed and live records never joined. The
    dispatcher takes every event queued since its last round at once, so a trigger that
    recomputes from the database pays once for a burst of writes.
``coalesce_window_s`` (optional attribute, seconds, default 0)
    For a coalescing trigger: how long its events wait, after the first of them, for more
    to arrive before the merged fire. ``db.wait_for_triggers()`` and close cut the wait
    short; other triggers and subscribers are not held back.

``sources(key)`` (optional)
    For a bucket key (``"AAPL/1D/OHLCV"``): the key pattern of the buckets whose writes make
    this trigger write ``key`` (``"AAPL/*/OHLCV"``), or None when it never writes ``key``.
    Asked once per key, on any thread; the answer may depend only on the key and the config.
    A read of ``key`` then first waits until the trigger's ``fire`` has returned for every
    write acknowledged before the read to a bucket matching the pattern that the trigger
    listens to (bounded by ``coalesce_window_s`` plus the work), and ``db.destroy`` of such a
    base destroys ``key`` with it, all or nothing (docs/plugins.md "Buckets a trigger
    maintains"). Triggers are not told of destroys.

``columns_changed(key, names, op, args)`` (optional)
    Called, under the database's lock and before anything is written, when the columns
    ``names`` of bucket ``key`` (one the trigger listens to) are about to change by ``op``
    (``"add"`` with ``(name, dtype, fill)``, ``"drop"`` with ``(name,)``, ``"rename"`` with
    ``(old, new)``). Returns the changes to make, in the same transaction, to the buckets it
    maintains (``[(bucket key, op, args)]``), or raises ``SchemaError`` to refuse the change
    (docs/plugins.md "Column changes of a base"). Column changes never call ``fire``.

``on:`` is a key pattern over ``SYMBOL/TIMEFRAME/ATTRGROUP`` (``engine.patterns``, the
language of ``db.query``): ``*`` matches every value of a part, ``AA*`` is a glob inside one
part, ``AAPL,MSFT`` a list; the match is anchored, so ``*/1Min/OHLC`` does not match
``AAPL/1Min/OHLCV``.

Background workers
------------------
A worker module exposes ``NewBgWorker(config: dict) -> BgWorker``. The worker has an
optional ``start(db)`` (called once after replay), ``run()`` (started on a thread of its own
after ``start``, before the server accepts queries) and an optional ``stop()`` (called at
close; ``run()`` should return promptly afterwards). An exception from ``run()`` is logged
and counted in ``db.stats()["worker_errors"]``; the database keeps running.

Query functions
---------------
A function module exposes ``NewFunction(args: FunctionArgs) -> Function`` and declares its
parameters as module attributes: ``REQUIRED`` and ``OPTIONAL`` (tuples of parameter names,
default empty) and ``INIT_ARGS`` (the least number of single-quoted literals, default 0). It
is found by name (case-insensitive) in the entry-point group ``mkts.functions`` only, never
by a module path (a server must not import what a request names)::

    [project.entry-points."mkts.functions"]
    vwap = "mypkg.vwap"

* **Construction**, once per call string per read, on the reader's thread: ``args.name`` (as
  typed), ``args.literals``, ``args.columns`` (``{parameter: [column, ...]}``, bound as
  docs/plugins.md "Query functions" says). An exception refuses the call: the read raises
  ``FunctionError("init aggfunc during query: <message>")`` before reading anything.
* ``apply(columns, ctx)``: ``columns`` is the input, ``{name: numpy array}`` with ``Epoch``
  first (tick rows add ``Nanoseconds``), in time order unless an earlier function reordered
  it; ``ctx.key`` is the bucket, ``ctx.calendar`` the database calendar (its zone),
  ``ctx.read(key)`` every row of another bucket (None when it does not exist). It returns the
  output the same way (equal-length columns, ``Epoch`` first) and must not modify its input.
  It runs after the range, limit and projection, once per bucket, each call on the previous
  call's output; an exception fails that read only (a ``MktsError`` reaches the client with
  its text).

Configuration (``mkts.yml``)
----------------------------
``module:`` is a dotted module path (``mkts.plugins.ondiskagg``, ``mypkg.mytrigger``; found in
the installed packages, PYTHONPATH or mkts.yml's ``plugin_paths``, never the current
directory on its own), an entry point name in the group ``mkts.triggers`` /
``mkts.bgworkers``, or MarketStore's spelling ``ondiskagg.so`` / ``stream.so`` for the
bundled plugins. ``config:`` is best checked with ``mkts.plugins.settings`` (a frozen
dataclass; errors name the key path in mkts.yml), as the bundled plugins do::

    triggers:
      - module: ondiskagg.so             # = mkts.plugins.ondiskagg
        on: "*/1Min/OHLCV"
        config:
          destinations: [5Min, 15Min, 1H, 1D]
      - module: mkts.plugins.stream
        on: "*/*/*"
    bgworkers:
      - module: mkts.plugins.feed
        name: feed
        config: {symbols: [AAPL, MSFT], interval_s: 1.0}

Embedded use without YAML::

    from mkts import engine
    from mkts.plugins import ondiskagg
    db = engine.open("data", triggers=[("*/1Min/OHLCV",
                                        ondiskagg.NewTrigger({"destinations": ["5Min", "1D"]}))])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mkts.engine import BgWorker, Function, FunctionArgs, FunctionContext, Trigger

__all__ = ["Trigger", "BgWorker", "Function", "FunctionArgs", "FunctionContext", "NewTrigger",
           "NewBgWorker", "NewFunction"]

# `Trigger`, `BgWorker` and `Function` are the engine's own protocols (`mkts.engine.contracts`,
# `mkts.engine.functions`),
# re-exported here so that plugin authors find the contracts in one place.

NewTrigger = Callable[[dict[str, Any]], Trigger]
"""The type of a trigger module's constructor."""

NewBgWorker = Callable[[dict[str, Any]], BgWorker]
"""The type of a background-worker module's constructor."""

NewFunction = Callable[[FunctionArgs], Function]
"""The type of a query-function module's constructor."""
