"""The swap of a seal or re-seal: the fsynced `<YYYY>.sealed.tmp` becomes the year's sealed
file (rename, directory fsync), then the live file or the merged overlay beside it goes
(docs/format.md "Sealing, re-sealing and the swap").
"""

from __future__ import annotations

import os

from mkts.engine.catalog import Bucket, Catalog
from mkts.engine.sealing import live_name, overlay_name, sealed_name

__all__ = ["install_sealed"]


def install_sealed(catalog: Catalog, bucket: Bucket, year: int, tmp: str) -> None:
    """Make the fsynced sealed file `tmp` the year's: rename, fsync the directory, then
    remove the live file or the overlay it merged. The caller holds writers and readers out
    and checkpointed first."""
    fs = catalog.fs
    fs.replace(tmp, os.path.join(bucket.path, sealed_name(year)))
    fs.fsync_dir(bucket.path)
    catalog.cache.drop(bucket.files, year)
    bucket.sealed[year] = None
    bucket.overlays.discard(year)
    # No directory fsync after the removal: a crash that loses it leaves a `.bin` beside
    # a valid `.sealed`, or an overlay of an older generation, which open removes.
    for name in (live_name(year), overlay_name(year)):
        path = os.path.join(bucket.path, name)
        if fs.exists(path):
            fs.unlink(path)
    # the file record names the sealed file (with its checksum) from now on
    bucket.touched.add(year)
    catalog.record_files([bucket], settle=True)
