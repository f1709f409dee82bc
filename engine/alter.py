"""Column changes on disk (docs/format.md "Column changes"): the logged change of a bucket's
columns (WAL op 4), applying it to `bucket.hdr`, and migrating a year file written with an
older schema to the bucket's current one before a write goes into it.

What a change means for a schema is engine/columns.py's; when a change is logged and a
migration runs (after a checkpoint, commits held) is the database's (engine/database.py).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mkts.engine import columns
from mkts.engine.catalog import TEMPLATE_NAME, Bucket, Catalog
from mkts.engine.columns import SchemaWrite, translate
from mkts.engine.durable import atomic_write
from mkts.engine.errors import InvalidInputError
from mkts.engine.header import decode_header, encode_header
from mkts.engine.schema import VARIABLE
from mkts.engine.ticks import compact_year_file
from mkts.engine.yearfile import YearFile

__all__ = ["plan_change", "apply_change", "migrate_year", "stale_years", "OPS"]

OPS = ("add", "drop", "rename")
_CHUNK = 1 << 20  # slots migrated per step: memory stays bounded on a 1Sec year


def plan_change(bucket: Bucket, op: str, args: tuple[Any, ...]) -> SchemaWrite:
    """The SchemaWrite that makes `op` ("add" name dtype fill | "drop" name | "rename" old
    new) of `bucket`'s columns; SchemaError (nothing changed) when it is not allowed."""
    key = str(bucket.key)
    schema, table = bucket.schema, bucket.columns
    try:
        if op == "add":
            name, dtype, fill = args
            new = columns.add_column(schema, table, name, dtype, fill, key)
        elif op == "drop":
            new = columns.drop_column(schema, table, args[0], key)
        elif op == "rename":
            new = columns.rename_column(schema, table, args[0], args[1], key)
        else:
            raise InvalidInputError(f"column change {op!r} must be one of {', '.join(OPS)}")
    except InvalidInputError as exc:  # name the bucket in every message
        if str(exc).startswith(key):
            raise
        raise type(exc)(f"{key}: {exc}") from None
    header = encode_header(new[0], 0, 0, 0, bucket.timezone, new[1])
    return SchemaWrite(bucket.key, new[0], new[1], header)


def apply_change(catalog: Catalog, w: SchemaWrite) -> None:
    """Replace the bucket's `bucket.hdr` with the logged bytes, durably (temporary file,
    fsync, rename, fsync of the directory), and take the new schema. Idempotent: replaying
    the record again writes the same bytes."""
    bucket = catalog.get(w.key)
    atomic_write(catalog.fs, os.path.join(bucket.path, TEMPLATE_NAME), w.header)
    bucket.schema = w.schema
    bucket.table = w.table
    catalog.find_stale(bucket)


def migrate_year(catalog: Catalog, bucket: Bucket, year: int) -> None:
    """Rewrite `year` of `bucket` in the bucket's current schema (rows keep their values,
    added columns their fill) as `<YYYY>.bin.tmp`, fsync it, rename it over the year file and
    fsync the directory: a crash leaves the old or the new file. The caller has checkpointed
    (no log record refers to the old layout) and holds commits and readers off."""
    fs = catalog.fs
    with catalog.pinned(bucket, year) as f:
        assert f is not None
        path, tmp = f.path, f.path + ".tmp"
        if fs.exists(tmp):
            fs.unlink(tmp)
        if bucket.schema.kind == VARIABLE:
            compact_year_file(fs, f, bucket.schema, tmp, table=bucket.table)
        else:
            _migrate_fixed(fs, f, bucket, tmp)
    catalog.cache.drop(bucket.files, year)
    fs.replace(tmp, path)
    fs.fsync_dir(bucket.path)
    bucket.stale.pop(year, None)
    bucket.touched.add(year)  # new bytes: the file record's checksum is redone


def _migrate_fixed(fs: Any, f: YearFile, bucket: Bucket, tmp: str) -> None:
    h = f.header
    schema = bucket.schema
    head = encode_header(schema, h.year, h.nslots, h.year_start, h.timezone, bucket.table,
                         base_generation=h.base_generation)  # an overlay stays one
    new = decode_header(head, tmp)
    out = fs.open(tmp, create=True)
    try:
        out.pwrite(head, 0)
        out.truncate(new.file_size)
        target = YearFile(tmp, new, out)
        occ = f.occupied()
        src, dst = (h.schema, h.columns), (schema, bucket.columns)
        for a in range(0, len(occ), _CHUNK):
            idx = occ[a : a + _CHUNK]
            recs = translate(np.array(f.slots[idx]), src, dst, schema.record_dtype)
            target.write_slots(idx, recs.data.cast("B"))
        out.sync()
    finally:
        out.close()


def stale_years(bucket: Bucket, years: Any) -> list[int]:
    """Those of `years` whose file has an older schema than the bucket (to migrate)."""
    stale = bucket.stale
    return sorted({int(y) for y in years if int(y) in stale}) if stale else []
