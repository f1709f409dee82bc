"""Plugins for mkts: trigger and background-worker contracts, the loader, bundled plugins.

Plugins use only the public API of `engine`.
"""

__all__: list[str] = []
