"""Errors raised by the plugin layer (loader, settings, bundled plugins), rooted at
`engine.MktsError`."""

from __future__ import annotations

from mkts.engine import MktsError

__all__ = ["PluginError", "ConfigError", "PluginConfigError"]


class PluginError(MktsError, ValueError):
    """A plugin cannot be loaded, or its configuration is invalid.

    The message names the plugin (its `module:`) and says what to change. Also a
    `ValueError`, because it is almost always a configuration mistake.
    """


class ConfigError(MktsError, ValueError):
    """mkts.yml or a plugin's `config:` is invalid (also `mkts.config.ConfigError`).

    The message is `source: key.path: problem`, e.g. `mkts.yml: triggers[0].config.batch_ms:
    5000 must be from 0 to 1000 ms`: where, which key, the value and what is allowed. The parts
    are kept as `source`, `path` and `problem`.
    """

    def __init__(self, problem: str, path: str = "", source: str = "") -> None:
        self.problem = problem
        self.path = path
        self.source = source
        super().__init__(": ".join(p for p in (source, path, problem) if p))

    def within(self, source: str, prefix: str) -> ConfigError:
        """The same error, for data found at key path `prefix` of `source` (a plugin's
        `config:` inside mkts.yml: `triggers[0].config`)."""
        if not self.path:
            path = prefix
        elif not prefix or self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}"
        out = type(self)(self.problem, path, source)
        out.__cause__ = self.__cause__
        return out


class PluginConfigError(PluginError, ConfigError):
    """A plugin's `config:` is invalid: both a PluginError and a ConfigError."""
