"""Test harness shared by the tiers: FaultFS and crash points (crash tests), the tier
markers (`tiers`), the per-test timeout plugin (`timeout`) and `waiting.wait_until`."""
