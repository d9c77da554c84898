# Two commands matter: `make demo` (the main job, on the embedded fake shop) and
# `make test` (lint, types, tests, quick benchmarks). Each bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench-quick bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,cli,redis]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/openticket demo

test: lint typecheck pytest bench-quick

lint: $(STAMP)
	$(BIN)/ruff check openticket_async tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
