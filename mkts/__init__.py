"""mkts: the application layer over `engine` (configuration, plugins wiring, CLI, server).

    import mkts
    with mkts.open("mkts.yml") as db:      # plugins loaded, workers running
        db.write("AAPL/1Min/OHLCV", bars)
        db.wait_for_triggers()             # aggregates are up to date
"""

from mkts.app import open
from mkts.config import Config, ConfigError
from mkts.dask_io import read_dask
from mkts.export import export_parquet

__all__ = ["open", "Config", "ConfigError", "read_dask", "export_parquet"]
__version__ = "0.1.0"
