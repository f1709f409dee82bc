# One task runner; the README names these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

BENCH_VENV ?= .venv-bench
BENCH_ARGS ?=

.PHONY: demo test test-all bench bench-pytest lint venv clean proto

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,server,pandas,cli,dev]'
	touch $(STAMP)

demo: venv
	$(PY) -m mkts.demo

# Lint and type checks first: any finding fails the run before the tests start. `-P` keeps
# the checkout off sys.path: tests import the installed mkts, as a user does.
test: lint
	$(PY) -P -m pytest -q --durations=25 $(PYTEST_ARGS)

# Long crash, fuzz and soak runs (not part of `make test`).
test-all: lint
	$(PY) -P -m pytest -q --durations=25 --run-slow $(PYTEST_ARGS)

# The side-by-side comparison (benchmarks/README.md). Competitors live in a venv of their own:
# ArcticDB needs pandas<3 and protobuf<5 (the `bench` extra pins them), which must not replace
# the test environment's; the `test` extra would upgrade both, so it is not installed here.
bench:
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[bench]'
	$(BENCH_VENV)/bin/python -m benchmarks.compare $(BENCH_ARGS)

# The pytest-benchmark scenarios of mkts itself, each beside its raw baseline.
bench-pytest: venv
	$(PY) -m pytest -q benchmarks --benchmark-only

# The gRPC modules beside mkts/proto/marketstore.proto (grpcio-tools, from the dev extra;
# commit the result). The generated module registers its messages in a descriptor pool of its
# own: pymarketstore registers the same names (package `proto`) in protobuf's default pool,
# and both must load in one process (a notebook serving mkts and using pymarketstore).
proto: venv
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
		mkts/proto/marketstore.proto
	sed -i 's/_descriptor_pool\.Default()\.AddSerializedFile/_descriptor_pool.DescriptorPool().AddSerializedFile/' \
		mkts/proto/marketstore_pb2.py
	grep -q '_descriptor_pool.DescriptorPool().AddSerializedFile' mkts/proto/marketstore_pb2.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo-data .pytest_cache .hypothesis .benchmarks
