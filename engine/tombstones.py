"""Deleting rows of a sealed year: tombstones in its overlay (`_slot` = -(slot + 1)), the
physical, idempotent write that replaying WAL op 3 mode 1 repeats (docs/format.md "Deletes
and updates"). The delete path calls `apply_tombstones` on the overlay it acquired with
`create=True`; reads (engine/sealread.py) hide the sealed rows under a tombstone.
"""

from __future__ import annotations

import numpy as np

from mkts.engine.errors import InvalidInputError
from mkts.engine.schema import SLOT_FIELD, Schema
from mkts.engine.yearfile import YearFile

__all__ = ["tombstone_records", "apply_tombstones", "CHUNK_SLOTS"]

CHUNK_SLOTS = 1 << 16  # slots written per call: a year of 1Sec ticks is 31.6 M slots


def tombstone_records(schema: Schema, slots: np.ndarray) -> np.ndarray:
    """Overlay records that delete whatever the sealed file holds in `slots`: `_slot` =
    -(slot + 1), every other byte zero (a tick slot: no chain, no rows)."""
    recs = np.zeros(len(slots), dtype=schema.record_dtype)
    recs[SLOT_FIELD] = -(np.asarray(slots, dtype=np.int64) + 1)
    return recs


def apply_tombstones(f: YearFile, first: int, last: int) -> None:
    """Make slots first..last (inclusive) of the overlay `f` tombstones (WAL op 3 mode 1).
    For a tick bucket the caller passes the intervals wholly inside the deleted range; an
    interval the range cuts becomes a replacing slot instead (TICK_REPLACING). Writing the
    same range again leaves the same bytes."""
    h = f.header
    if h.base_generation < 1:
        raise InvalidInputError(f"{f.path} is not an overlay: tombstones go only into the "
                                "overlay of a sealed year")
    if not 0 <= first <= last < h.nslots:
        raise InvalidInputError(f"{f.path}: slots {first}..{last} are outside 0..{h.nslots - 1}")
    for a in range(first, last + 1, CHUNK_SLOTS):
        slots = np.arange(a, min(last + 1, a + CHUNK_SLOTS), dtype=np.int64)
        f.write_slots(slots, tombstone_records(h.schema, slots).data.cast("B"))
