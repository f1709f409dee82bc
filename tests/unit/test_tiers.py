"""Tiers are folders (harness/tiers.py, assigned in tests/conftest.py): every collected test carries exactly one tier
marker, the one named after its folder, so `pytest -m <tier>` selects exactly that folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.tiers import TESTS_DIR, TIERS, tier_of


def test_every_collected_test_has_exactly_the_tier_of_its_folder(request: pytest.FixtureRequest
                                                                 ) -> None:
    items = request.session.items
    assert request.node in items
    wrong = []
    for item in items:
        folder = item.path.resolve().relative_to(TESTS_DIR).parts[0]
        tiers = [m.name for m in item.iter_markers() if m.name in TIERS]
        if tiers != [folder]:
            wrong.append(f"{item.nodeid}: {tiers}")
    assert not wrong, "tests whose tier markers do not match their folder:\n" + "\n".join(wrong)


def test_every_tier_folder_has_tests_and_every_test_folder_is_a_tier() -> None:
    folders = {p.parent.relative_to(TESTS_DIR).parts[0] for p in TESTS_DIR.rglob("test_*.py")}
    assert folders == set(TIERS)


def test_a_test_file_outside_a_tier_folder_is_a_usage_error(tmp_path: Path) -> None:
    assert tier_of(TESTS_DIR / "crash" / "test_kill9.py") == "crash"
    with pytest.raises(pytest.UsageError, match="belongs in a tier folder"):
        tier_of(TESTS_DIR / "test_loose.py")
    with pytest.raises(pytest.UsageError, match="belongs in a tier folder"):
        tier_of(TESTS_DIR / "harness" / "test_x.py")
    with pytest.raises(ValueError):
        tier_of(tmp_path / "test_elsewhere.py")
