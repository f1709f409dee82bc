"""Tiers are folders: the tier marker of a test is the name of its folder under tests/.

tests/conftest.py registers the markers and assigns them at collection; test files carry no
tier marker of their own, so `pytest -m unit` runs exactly tests/unit/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]

TIERS = {
    "unit": "fast tests of one module",
    "integration": "the public API end to end",
    "property": "hypothesis model tests",
    "crash": "crash and recovery harnesses",
    "server": "a real mkts server and the pymarketstore client",
    "regression": "a fixed bug, kept as a test (tests/regression/test_<what>.py)",
    "bench": "the benchmark suite runs on tiny data and its raw baselines are correct; "
             "no timing is asserted",
}


def tier_of(path: Path) -> str:
    """The tier of a test file under tests/; a UsageError for a file outside a tier folder,
    a ValueError for a file outside tests/."""
    rel = path.resolve().relative_to(TESTS_DIR)
    if len(rel.parts) < 2 or rel.parts[0] not in TIERS:
        raise pytest.UsageError(f"{path}: a test file belongs in a tier folder under tests/ "
                                f"({', '.join(TIERS)})")
    return rel.parts[0]
