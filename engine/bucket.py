"""`Bucket`: what the catalog knows of one bucket (its key, schema, directory, years, sealed
years and overlays, open year files, and what changed since its file record), and the names
of its data files. Finding and loading buckets is engine/catalog.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mkts.engine.columns import ColumnTable
from mkts.engine.keys import BucketKey
from mkts.engine.schema import Schema
from mkts.engine.sealfile import SealedReader
from mkts.engine.sealing import live_name, overlay_name, sealed_name
from mkts.engine.yearfile import YearFile

__all__ = ["Bucket"]


@dataclass
class Bucket:
    key: BucketKey
    schema: Schema
    path: str
    years: set[int] = field(default_factory=set)
    # Open year files by year: a view of the catalog's FileCache, changed only under its lock.
    files: dict[int, YearFile] = field(default_factory=dict)
    timezone: str = ""  # the zone its bucket.hdr records (must be the root's)
    # docs/format.md "Column changes": column ids, fills and the schema version; None until
    # the bucket's columns are first changed (its files are then format 1 or 2, version 1)
    table: ColumnTable | None = None
    # year -> schema version of year files written with an older schema than the bucket's
    # (read through engine.columns.translate, migrated before a write into them)
    stale: dict[int, int] = field(default_factory=dict)

    @property
    def columns(self) -> ColumnTable:
        return self.table or ColumnTable.initial(self.schema)

    @property
    def schema_version(self) -> int:
        return 1 if self.table is None else self.table.version
    # Years whose file was created or written since its file record was last written
    # (engine/filerecord.py): the next checkpoint records them.
    touched: set[int] = field(default_factory=set)
    # Closed years written at the last record, whose checksum waits until they settle.
    unsummed: set[int] = field(default_factory=set)
    # Sealed years (`<YYYY>.sealed`), each with its reader once opened; a subset of `years`.
    sealed: dict[int, SealedReader | None] = field(default_factory=dict)
    overlays: set[int] = field(default_factory=set)  # sealed years with a `<YYYY>.overlay`
    # Writes applied per year since open: a seal built from a snapshot is installed only if
    # the year's count did not move meanwhile (engine/sealjob.py).
    written: dict[int, int] = field(default_factory=dict)
    last_write: dict[int, float] = field(default_factory=dict)  # time.monotonic() per year
    listing: frozenset[str] = frozenset()  # year files last listed (readonly: engine/follow.py)

    def sorted_years(self) -> list[int]:
        return sorted(self.years)

    def data_files(self, years: set[int] | None = None) -> set[str]:
        """The names of the data files of `years` (default: all of the bucket's), as its
        file record lists them (docs/format.md "File record")."""
        out: set[str] = set()
        for y in self.years if years is None else years:
            if y in self.sealed:  # docs/format.md "The three states of a year"
                out.add(sealed_name(y))
                if y in self.overlays:
                    out.add(overlay_name(y))
            else:
                out.add(live_name(y))
        return out
