"""mkts benchmarks: pytest-benchmark scenarios (`pytest benchmarks`) and the side-by-side
runner against ArcticDB, Parquet, DuckDB and raw numpy (`python -m benchmarks.compare`).

See benchmarks/README.md for the scenarios, the commands and the latest results.
"""
