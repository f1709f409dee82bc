"""ondiskagg's `config:` (`OnDiskAggConfig`): destinations, an optional exchange-session
filter and the batching window, checked like mkts.yml (`parse_config` raises
PluginConfigError naming the key). The trigger itself is plugins.ondiskagg."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mkts.engine import InvalidKeyError, parse_timeframe
from mkts.plugins import aggfuncs
from mkts.plugins.errors import PluginConfigError
from mkts.plugins.settings import between, build, nonempty, rules

DEFAULT_BATCH_MS = 10.0


def _timeframe(v: str) -> str | None:
    try:
        parse_timeframe(v)
    except InvalidKeyError as exc:
        return f"is not a timeframe: {exc}"
    return None


def _calendar(v: str | None) -> str | None:
    if not v:
        return None
    try:
        aggfuncs.session_filter(v)
    except (ValueError, ImportError) as exc:
        return str(exc).removeprefix(f"filter {v!r} ")
    return None


@dataclass(frozen=True)
class OnDiskAggConfig:
    """ondiskagg's `config:` (docs/plugins.md "ondiskagg"), checked like mkts.yml."""

    destinations: tuple[str, ...] = field(metadata=rules(
        check=nonempty, each=_timeframe,
        help="a list of timeframes such as [5Min, 15Min, 1H, 1D]"))
    filter: str | None = field(default=None, metadata=rules(
        check=_calendar, help="an exchange calendar such as XNYS or nasdaq; daily bars only"))
    batch_ms: float = field(default=DEFAULT_BATCH_MS, metadata=rules(
        check=between(0, 1000),
        help="milliseconds a burst of writes may gather before one recompute; 0 fires at once"))


def parse_config(config: Any, *, source: str = "ondiskagg config") -> OnDiskAggConfig:
    """The checked config; PluginConfigError (a PluginError and a ConfigError) names the key."""
    return build(OnDiskAggConfig, config, source=source, error=PluginConfigError)
