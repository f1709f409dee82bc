"""Compaction of tick buckets and their byte counts: `compact_bucket` rewrites each year file
without garbage (one block per interval), swapped in atomically; `tick_usage` counts live and
garbage bytes. The blocks are built as a write builds them (engine/tickwrite.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.columns import ColumnTable, translate
from mkts.engine.header import decode_header, encode_header
from mkts.engine.schema import SLOT_FIELD, TICK_BLOCK_COUNT, Schema
from mkts.engine.sealread import merged_ticks
from mkts.engine.tickread import BlockSource, read_rows
from mkts.engine.tickwrite import build_blocks
from mkts.engine.yearfile import YearFile
from mkts.wal.fs import FileSystem

__all__ = ["tick_usage", "compact_bucket", "compact_year_file"]


def tick_usage(catalog: Catalog, bucket: Bucket) -> dict[str, int]:
    """{"live_bytes", "garbage_bytes", "rows"} of the tick bucket's data regions (what
    `compact_bucket` would reclaim is the garbage)."""
    live = garbage = rows = 0
    for y in bucket.sorted_years():
        if y in bucket.sealed:  # sealed: dense, no garbage (an overlay's is not counted)
            live += catalog.sealed_reader(bucket, y).file_size
            rows += len(merged_ticks(catalog, bucket, y, -(2**63), 2**63 - 1, [])[0])
            continue
        with catalog.pinned(bucket, y) as f:
            assert f is not None
            occupied = f.slots[f.occupied()]
            used = int(occupied["total_bytes"].sum())
            live += used
            rows += int(occupied["nrows"].sum())
            garbage += f.size() - f.data_start - used
    return {"live_bytes": live, "garbage_bytes": garbage, "rows": rows}


def compact_bucket(fs: FileSystem, catalog: Catalog, bucket: Bucket) -> tuple[int, int]:
    """Rewrite every year file of the tick bucket `bucket` without garbage, each replaced
    atomically (a crash leaves the old or the new file, never a mix); the bytes of their
    data regions (before, after). The caller excludes commits meanwhile."""
    before = after = 0
    for y in bucket.sorted_years():
        if y in bucket.sealed:
            continue  # a sealed year holds no garbage
        with catalog.pinned(bucket, y) as f:
            assert f is not None
            before += f.size() - f.data_start
            path, tmp = f.path, f.path + ".tmp"
            if fs.exists(tmp):
                fs.unlink(tmp)
            compact_year_file(fs, f, bucket.schema, tmp, table=bucket.table)
        catalog.cache.drop(bucket.files, y)
        fs.replace(tmp, path)
        fs.fsync_dir(bucket.path)
        bucket.stale.pop(y, None)  # written in the bucket's current columns
        with catalog.pinned(bucket, y) as g:
            assert g is not None
            after += g.size() - g.data_start
    return before, after


def compact_year_file(fs: Any, f: YearFile, schema: Schema, tmp_path: str, *,
                      table: ColumnTable | None = None) -> None:
    """Write a copy of `f` whose intervals each have a chain of one block and no garbage to
    `tmp_path`, synced, in `schema` (the bucket's; with `table`, its format-3 column table:
    rows of a file written before a column change are translated, docs/format.md "Column
    changes"). The caller renames it over the original and fsyncs the directory."""
    h = f.header
    # A fresh header: the copy is written in the current format (version 2: checksummed
    # slots, or 3 after a column change), so compaction also upgrades a version-1 tick file.
    # an overlay (docs/format.md "The three states of a year") stays one: same base
    # generation, its tombstones copied as they are, a replacing chain keeps its flag
    head = encode_header(schema, h.year, h.nslots, h.year_start, h.timezone, table,
                         base_generation=h.base_generation)
    old = (h.schema, h.columns)
    same = table is None or h.columns.version == table.version
    new = decode_header(head, tmp_path)
    out = fs.open(tmp_path, create=True)
    try:
        out.pwrite(head, 0)
        out.truncate(new.file_size)
        idx = np.array(f.occupied(), dtype=np.int64)  # visits only the file's data
        recs = np.array(f.slots[idx])
        f.verify_slots(idx, recs)
        dead = recs[SLOT_FIELD] < 0  # overlay tombstones: no chain, copied as they are
        if bool(dead.any()):
            YearFile(tmp_path, new, out).write_slots(idx[dead], recs[dead].data.cast("B"))
            idx, recs = idx[~dead], recs[~dead]
        flags = recs["nblobs"].astype(np.int64) & ~TICK_BLOCK_COUNT
        recs["nblobs"] &= TICK_BLOCK_COUNT
        pos = new.file_size
        src = BlockSource(f, old[0], f.path)
        # Chunks of about a million rows: memory stays bounded on a large year.
        cum = np.cumsum(recs["nrows"].astype(np.int64))
        chunk = (cum - recs["nrows"]) // 1_000_000
        cuts = np.concatenate(([0], np.flatnonzero(np.diff(chunk)) + 1, [len(idx)]))
        zero = np.zeros(len(idx), dtype=np.int64)
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            if a == b:
                continue
            rows, ns = read_rows(src, idx[a:b], recs[a:b], old[0].row_dtype)
            src.cache.clear()
            if not same:
                assert table is not None
                rows = translate(rows, old, (schema, table), schema.row_dtype)
            counts = recs["nrows"][a:b].astype(np.int64)
            blocks, which, shares = build_blocks(schema, idx[a:b], counts, zero[a:b], zero[a:b],
                                                 zero[a:b], ns, rows, f.path)
            sizes = np.array([len(x) for x in blocks], dtype=np.int64)
            offs = pos + np.cumsum(sizes) - sizes
            part = recs[a:b]
            part["head"] = offs[which]
            part["head_bytes"] = sizes[which]
            part["head_rows"] = counts
            part["nblobs"] = 1 | flags[a:b]
            part["total_bytes"] = shares
            out.pwrite(b"".join(blocks), pos)
            pos += int(sizes.sum())
        YearFile(tmp_path, new, out).write_slots(idx, recs.data.cast("B"))
        out.sync()
    finally:
        out.close()
