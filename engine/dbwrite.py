"""The write half of the `Database` API: writes, deletes, updates and transactions, bucket
create/destroy/compact and column changes (with the migration of year files they need), on
engine/writepath.py, engine/corrections.py and the commit pipeline (engine/commit.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mkts.engine import alter, corrections, journal
from mkts.engine.catalog import Bucket
from mkts.engine.columns import SchemaWrite
from mkts.engine.commit import CommitPipeline
from mkts.engine.contracts import Write
from mkts.engine.dbstate import HandleBase
from mkts.engine.errors import BucketExistsError, InvalidInputError, SchemaError
from mkts.engine.header import same_schema
from mkts.engine.keys import BucketKey, parse_key
from mkts.engine.plan import IngestWrite
from mkts.engine.rootmeta import use_format_3
from mkts.engine.schema import FIXED, VARIABLE, Schema
from mkts.engine.ticks import compact_bucket

__all__ = ["WriteAPI"]


class WriteAPI(HandleBase):
    """`Database`'s write calls (engine/database.py mixes them in)."""

    # -- writing ---------------------------------------------------------------------------
    def write(self, key: str, data: Any, *, variable: bool | None = None) -> int:
        """Write rows to one bucket (created from the data's columns on first write).

        One call is one transaction. Returns its transaction number: the write-ahead log's
        number for it, an int >= 1 that increases with every transaction (across reopens
        too), or 0 when `data` held no rows and nothing was written. When it returns, the
        rows are readable and as durable as the sync mode promises (README.md "Durability").
        """
        if variable is None or variable is False:
            pipeline = self._pipeline
            if pipeline is not None and pipeline.failed is None and not self._closed:
                built = self._writes.fast(key, data)
                if built is not None:
                    writes: list[Write] = list(self._writes.bulk.fixed(list(built[1])))
                    if any(type(w) is IngestWrite for w in writes):  # a bulk load
                        return pipeline.commit_built(journal.encode_parts(writes), writes)
                    return pipeline.commit_built(built[0], built[1])
        return self.write_many({key: data}, variable=variable)

    def write_many(self, items: Mapping[str, Any], *, variable: bool | None = None) -> int:
        """Write to several buckets as one transaction: all of it becomes visible and durable
        together, or none of it; invalid input anywhere writes nothing.

        Returns the transaction number, as `write` does (one number for all the buckets; 0
        when no bucket got a row). To mix writes with deletes and updates in one
        transaction, use `transaction()`."""
        pipeline = self._check_writable()
        if not isinstance(items, Mapping):
            raise InvalidInputError("write_many() takes a dict {bucket key: data}")
        with self._meta_lock:
            txn = self._writes.plan(items, variable)
            if txn is None:
                return 0
            if txn.creates:
                with self._rw.write(), pipeline.fatal_io("creating a bucket"):
                    for key, schema in txn.creates:
                        self.catalog.create(key, schema)
            stale = self._writes.stale_targets(txn)
            if stale:  # year files of before a column change: migrate them first
                self._migrate(pipeline, stale)
        # Bulk loads write their sealed files here, outside the lock (docs/format.md
        # "Bulk loads": a write that reached the year first is merged at apply).
        txn.fixed = self._writes.bulk.fixed(txn.fixed)
        # tick bulk loads: the commit leader decides op 7 or ticks (Transaction.build)
        txn.bulk, txn.ticks = self._writes.bulk.split_ticks(txn.ticks, self._dispatcher.wants())
        return pipeline.commit(txn.build)

    def delete(self, key: str, start: Any = None, end: Any = None) -> int:
        """Remove the rows of bucket `key` with start <= time <= end, as one transaction;
        returns how many rows were removed.

        Times follow the read rules (`read`); both ends are optional. A fixed bucket's rows
        go by their interval label (deleting from 10:02 keeps the 10:00 bar of a 5Min
        bucket), a tick bucket's by their nanosecond time. A year file left without rows
        is removed. Durable as the sync mode promises, and applied when it returns (also
        with sync="interval"); triggers hear which range was removed (`Records.removed`)."""
        with self.transaction() as tx:
            tx.delete(key, start, end)
        return sum(tx.removed.values())

    def update(self, key: str, data: Any, *, start: Any = None, end: Any = None,
               variable: bool | None = None) -> int:
        """Replace the rows of bucket `key` in [start, end] by `data`, atomically: the
        delete of that range (`delete`; by default from the first to the last row of
        `data`) and the write of `data` are one transaction, and no reader sees the range
        half-replaced. Returns the transaction number (0 when nothing changed)."""
        with self.transaction() as tx:
            tx.update(key, data, start=start, end=end, variable=variable)
        return tx.txn

    def transaction(self) -> _TransactionScope:
        """`with db.transaction() as tx:` gathers `tx.write(key, data)`,
        `tx.delete(key, start, end)` and `tx.update(key, data, start=, end=)` across
        buckets, in call order, and commits them as one transaction when the block ends
        without an exception (nothing is written if it raises, or if any step is invalid).
        Afterwards `tx.txn` is its number and `tx.removed` the rows each bucket's deletes
        removed ({key: rows})."""
        self._check_writable()
        return _TransactionScope(self)

    def _commit_changes(self, changes: corrections.Changes) -> None:
        pipeline = self._check_writable()
        with self._meta_lock:
            plan = corrections.prepare(self._writes, changes, self.timezone)
            if plan is None:
                return
            if plan.creates:
                with self._rw.write(), pipeline.fatal_io("creating a bucket"):
                    for key, schema in plan.creates:
                        if key not in self.catalog.buckets:
                            self.catalog.create(key, schema)
            # year files of before a column change are migrated first: a delete plans and
            # clears their slots in the bucket's current layout (docs/format.md "Column changes")
            stale = [(b, y) for k in sorted(plan.keys(), key=str)
                     if (b := self.catalog.buckets.get(k)) is not None for y in sorted(b.stale)]
            if stale:
                self._migrate(pipeline, stale)
        changes.txn = pipeline.commit_exclusive(plan.build)
        changes.removed = plan.removed

    def create(self, key: str, columns: Any, *, variable: bool = False) -> None:
        """Create an empty bucket; columns as {"Open": "f4", ...} or a structured dtype.

        Creating a bucket that exists with the same definition is a no-op."""
        pipeline = self._check_writable()
        k = parse_key(key)
        schema = Schema.from_spec(k.tf, VARIABLE if variable else FIXED, columns)
        with self._meta_lock:
            existing = self.catalog.buckets.get(k)
            if existing is not None:
                if same_schema(existing.schema, schema):
                    return
                raise BucketExistsError(
                    f"bucket {k} already exists with columns {existing.schema.describe()} "
                    f"({existing.schema.kind}); destroy it first to change its definition"
                )
            with self._rw.write(), pipeline.fatal_io(f"creating bucket {k}"):
                self.catalog.create(k, schema)

    def destroy(self, key: str) -> list[str]:
        """Delete a bucket and all its data, durably, together with the buckets an attached
        trigger maintains from it (ondiskagg's bars of a 1Min bucket; a trigger's optional
        `sources`, docs/plugins.md "Buckets a trigger maintains"): all of them or none,
        across crashes too. Returns the keys destroyed, `key` first."""
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()  # triggered work for earlier writes first (at-least-once)
        with self._meta_lock:
            self.catalog.get(k)
            keys = [k, *self._dispatcher.derived(k, sorted(self.catalog.buckets))]
            # Checkpoint first so that no log record refers to the buckets any more.
            with pipeline.quiesced(), self._rw.write(), \
                    pipeline.fatal_io(f"destroying bucket {k}"):
                self.catalog.destroy_all(keys)
        return [str(x) for x in keys]

    def compact(self, key: str) -> dict[str, int]:
        """Rewrite a tick bucket's year files without garbage (one blob per interval).

        Each file is replaced atomically: a crash leaves the old or the new file, never a mix.
        Returns {"before": bytes, "after": bytes} of the data regions."""
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()
        with self._meta_lock:
            bucket = self.catalog.get(k)
            if bucket.schema.kind != VARIABLE:
                return {"before": 0, "after": 0}  # fixed buckets hold no garbage
            # Checkpoint first: no log record may refer to offsets in the old files.
            with pipeline.quiesced(), self._rw.write(), \
                    pipeline.fatal_io(f"compacting bucket {k}"):
                before, after = compact_bucket(self._fs, self.catalog, bucket)
                self._writes.forget(k)
                bucket.touched.update(bucket.years)  # new contents: new checksums
                self.catalog.record_files([bucket], settle=True)
        return {"before": before, "after": after}

    # -- column changes (docs/format.md "Column changes") ----------------------------------
    def add_column(self, key: str, name: str, dtype: Any, fill: Any = 0) -> int:
        """Add column `name` of type `dtype` (as in `create`) to bucket `key`, last; rows
        written before it read `fill` (a number the type holds exactly; "" for strings).
        Returns the transaction number. See `rename_column` for what every change promises."""
        return self._alter(key, "add", (name, dtype, fill))

    def drop_column(self, key: str, name: str) -> int:
        """Remove column `name` from bucket `key` (not Epoch, not Nanoseconds, not the last
        one); its values are no longer read. Returns the transaction number."""
        return self._alter(key, "drop", (name,))

    def rename_column(self, key: str, old: str, new: str) -> int:
        """Rename column `old` of bucket `key` to `new`. Returns the transaction number.

        A column change is one transaction, durable in the log when the call returns (in
        every sync mode), and costs the same whatever the bucket holds: no data file is
        rewritten. Every year file, live or not, reads in the new columns at once. Later
        writes must carry the new columns (or leave some out with
        `allow_missing_columns=True`); the first write into a year file written before the
        change rewrites that file once. A bad name or type, a name taken, an unknown column
        or a fill the type cannot hold raise SchemaError (UnknownColumnError for an unknown
        column) and change nothing."""
        return self._alter(key, "rename", (old, new))

    def _alter(self, key: str, op: str, args: tuple[Any, ...]) -> int:
        pipeline = self._check_writable()
        k = parse_key(key)
        self._dispatcher.flush()  # triggered work for earlier writes, with the old columns
        with self._meta_lock:
            changes = self._column_changes(k, op, args)
            # Checkpoint first: no log record may refer to the old columns (replay decodes
            # every record with the bucket's schema as bucket.hdr and op 4 records leave it).
            with pipeline.quiesced():
                with pipeline.fatal_io(f"changing the columns of {k}"):
                    use_format_3(self._fs, self.root, self.timezone)
                return pipeline.commit_quiesced(journal.encode(changes), changes)

    def _column_changes(self, k: BucketKey, op: str, args: tuple[Any, ...]
                        ) -> list[SchemaWrite]:
        """The change of `k` and those the triggers make to the buckets they maintain from
        it (one transaction); SchemaError when a maintained bucket is changed directly."""
        bucket = self.catalog.get(k)
        makers = self._dispatcher.sources_of(k) if self._dispatcher.maintaining else ()
        if makers:
            raise SchemaError(
                f"{k} is maintained by a trigger from its base bucket(s); change the columns "
                "of the base instead (the trigger changes this bucket with it)")
        changes = [alter.plan_change(bucket, op, args)]
        for key_text, dop, dargs in self._dispatcher.column_changes(k, bucket.schema.names,
                                                                    op, args):
            derived = self.catalog.buckets.get(parse_key(key_text))
            if derived is None or derived.key == k:
                continue
            names = derived.schema.names
            if (dop == "drop" and dargs[0] not in names) or (dop == "add" and dargs[0] in names):
                continue  # already as the change would make it
            changes.append(alter.plan_change(derived, dop, dargs))
        return changes

    def _migrate(self, pipeline: CommitPipeline, targets: list[tuple[Bucket, int]]) -> None:
        """Rewrite year files of before a column change in their bucket's columns, each
        swapped in atomically, after a checkpoint (docs/format.md "Column changes")."""
        with pipeline.quiesced(), self._rw.write(), \
                pipeline.fatal_io(f"migrating year files of {targets[0][0].key}"):
            migrated = []
            for bucket, year in targets:
                if year in bucket.stale:
                    alter.migrate_year(self.catalog, bucket, year)
                    self._writes.forget(bucket.key)
                    migrated.append(bucket)
            # no log record says a file was migrated: record the new bytes now, as
            # compaction does, or a crash before the next checkpoint leaves a stale record
            if migrated:
                self.catalog.record_files(list({id(b): b for b in migrated}.values()),
                                          settle=True)


class _TransactionScope(corrections.Changes):
    """What `Database.transaction()` returns: the steps, committed when the block ends."""

    def __init__(self, db: WriteAPI) -> None:
        super().__init__()
        self._db = db

    def __enter__(self) -> _TransactionScope:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._db._commit_changes(self)
