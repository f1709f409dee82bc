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
