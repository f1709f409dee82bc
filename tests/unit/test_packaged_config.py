"""The default mkts.yml shipped inside the package (for `mkts init` from a wheel) is the
repository's mkts.yml, byte for byte."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_packaged_mkts_yml_equals_the_repository_copy() -> None:
    assert (REPO / "mkts" / "mkts.yml").read_bytes() == (REPO / "mkts.yml").read_bytes()
