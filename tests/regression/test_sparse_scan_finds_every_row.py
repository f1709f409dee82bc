"""After reopening, the occupancy index is rebuilt from the file visiting only its data
extents (SEEK_DATA/SEEK_HOLE): rows at the very start, in the middle and in the last slot
of a sparse 1Sec year must all be found, by writable and read-only handles alike."""

from __future__ import annotations

import numpy as np
import pytest

from mkts import engine

Y2024 = 1_704_067_200  # 2024-01-01 00:00 UTC
Y2025 = 1_735_689_600


@pytest.mark.parametrize("readonly", [False, True])
def test_rows_at_both_ends_and_middle_of_a_sparse_year_are_found(tmp_path, readonly) -> None:
    root = str(tmp_path / "db")
    epochs = [Y2024, Y2024 + 1, Y2024 + 15_000_000, Y2025 - 1]
    with engine.open(root) as db:
        db.write("S/1Sec/X", {"Epoch": np.array(epochs), "V": np.arange(4.0)})
    with engine.open(root, readonly=readonly) as db:
        r = db.read("S/1Sec/X")
        assert r["Epoch"].tolist() == epochs
        assert r["V"].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert db.read("S/1Sec/X", Y2024 + 2, Y2025 - 2)["Epoch"].tolist() == [epochs[2]]


@pytest.mark.parametrize("readonly", [False, True])
def test_rows_between_small_and_large_holes_are_all_found(tmp_path, readonly) -> None:
    """The scan reads across holes smaller than yearfile.SCAN_GAP_BYTES and skips larger
    ones: rows on either side of both kinds (16-byte records: a 32 KiB hole every 2000 s, a
    few MiB between the clusters) come back exactly, and none appear in the holes."""
    from mkts.engine import yearfile

    root = str(tmp_path / "db")
    small = 2000 * 16 < yearfile.SCAN_GAP_BYTES
    large = 400_000 * 16 > yearfile.SCAN_GAP_BYTES
    assert small and large
    clusters = [Y2024 + c * 400_000 + 2000 * np.arange(50) for c in range(5)]
    epochs = np.concatenate(clusters)
    with engine.open(root) as db:
        db.write("S/1Sec/X", {"Epoch": epochs, "V": np.arange(len(epochs), dtype="f8")})
    with engine.open(root, readonly=readonly) as db:
        r = db.read("S/1Sec/X")
        assert r["Epoch"].tolist() == epochs.tolist()
        assert r["V"].tolist() == list(range(len(epochs)))
        mid = db.read("S/1Sec/X", int(epochs[60]) + 1, int(epochs[180]) - 1)
        assert mid["Epoch"].tolist() == epochs[61:180].tolist()
