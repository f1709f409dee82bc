# One task runner; the README names these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-all bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,server,pandas,cli,dev]'
	touch $(STAMP)

demo: venv
	$(PY) -m mkts.demo

test: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Long crash, fuzz and soak runs (not part of `make test`).
test-all: venv
	$(PY) -m pytest -q --run-slow $(PYTEST_ARGS)

bench: venv
	$(PY) -m pytest -q benchmarks --benchmark-only

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo-data .pytest_cache .hypothesis .benchmarks
