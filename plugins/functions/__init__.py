"""The bundled query-time functions, each a module with `NewFunction(args)` registered in the
entry-point group `mkts.functions` (pyproject.toml), exactly as a user's own function is:
MarketStore's tickcandler, candlecandler, count, min, max, avg, gap and adjust, plus mkts'
session and resample. The candle math is `candles`; the contract is engine.functions.
"""
