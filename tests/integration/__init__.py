"""Integration tests: the public API end to end (a package, so module names may repeat
those of other tiers, e.g. unit/test_ticks.py and integration/test_ticks.py)."""
