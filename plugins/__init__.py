"""Plugins for mkts: the trigger and background-worker contracts, the loader, bundled plugins.

    base       the contracts (read its docstring before writing a plugin)
    loader     load_trigger / load_worker: module path, entry point or `ondiskagg.so`
    errors     PluginError
    aggfuncs   the aggregation math (pure numpy)
    sessionfilter  the exchange-session filter of aggregation (exchange_calendars)
    ondiskagg  trigger: keep downsampled bars on disk up to date; rebuild()
    ondiskconfig   ondiskagg's `config:` schema
    stream     trigger: push new rows to in-process subscribers (Hub)
    feed       example background worker: synthetic or CSV 1Min bars
    synth      deterministic synthetic market data
    progress   the one progress bar (tqdm when wanted and installed), for plugins and the CLI

Plugins use only the public API of `engine`. Guide: docs/plugins.md.
"""

__all__: list[str] = []
