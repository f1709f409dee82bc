"""Errors raised by the plugin layer (loader and bundled plugins), rooted at `engine.MktsError`."""

from __future__ import annotations

from mkts.engine import MktsError

__all__ = ["PluginError"]


class PluginError(MktsError, ValueError):
    """A plugin cannot be loaded, or its configuration is invalid.

    The message names the plugin (its `module:`) and says what to change. Also a
    `ValueError`, because it is almost always a configuration mistake.
    """
