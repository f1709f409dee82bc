"""`mkts check` of the write-ahead log: it opens read-only, and every transaction since the
last checkpoint decodes against its buckets' schemas (a column change is followed); those
transactions are noted as pending (replayed at the next writable open)."""

from __future__ import annotations

import os

from mkts import engine
from mkts.checkreport import MAX_PER_KIND, Report
from mkts.engine.columns import SchemaWrite
from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema
from mkts.wal.fs import OsFileSystem


def _check_wal(fs: OsFileSystem, root: str, schemas: dict[BucketKey, Schema],
               report: Report) -> None:
    from mkts.engine import journal
    from mkts.wal import WriteAheadLog

    wal_dir = os.path.join(root, "wal")
    if not os.path.isdir(wal_dir):
        report.note("wal", "no write-ahead log (this root has never been written)")
        return

    def schema_of(key: BucketKey) -> Schema:
        return schemas[key]

    try:
        log = WriteAheadLog.open(wal_dir, fs, readonly=True)
    except engine.MktsError as exc:
        report.error("wal", str(exc))
        return
    try:
        shown = 0
        for rec in log.records():
            report.wal_pending += 1
            try:
                ops = journal.decode(rec.payload, schema_of,
                                     f"txn {rec.txn} in {os.path.basename(rec.segment)} at "
                                     f"offset {rec.offset}")
                for op in ops:  # a column change: later records use the new schema
                    if isinstance(op, SchemaWrite):
                        schemas[op.key] = op.schema
                report.pending.update((str(w.key), int(y)) for w in ops
                                      if (y := getattr(w, "year", None)) is not None)
            except engine.MktsError as exc:
                if shown < MAX_PER_KIND:
                    shown += 1
                    report.error("wal", str(exc))
    except engine.MktsError as exc:
        report.error("wal", str(exc))
    finally:
        log.close()
    if report.wal_pending:
        if report.in_use_by:
            report.note("wal", f"{report.wal_pending} transaction(s) since the last checkpoint "
                               f"(normal: the database is open in pid {report.in_use_by})")
        else:
            report.note("wal", f"{report.wal_pending} transaction(s) were not checkpointed (the "
                               "last process did not close cleanly); they are replayed, with "
                               "their triggers, at the next writable open")
