# Two commands matter: `make demo` (the main job, on the embedded fake shop) and
# `make test` (lint, types, tests, quick benchmarks). Each bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench-quick bench docs clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	@echo "==> installing openticket_async and its dev, cli, redis and docs extras (about a minute)"
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,cli,redis,docs]'
	@touch $(STAMP)
	@echo "==> $(VENV) is ready"

demo: $(STAMP)
	$(BIN)/openticket demo

test: lint typecheck pytest bench-quick

lint: $(STAMP)
	$(BIN)/ruff check openticket_async tests benchmarks examples
	$(BIN)/lint-imports --no-logo --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# The inner loop: every test but the real-time and multi-process ones, with a
# shorter random walk of the lifecycle; `make test` stays what CI runs.
.PHONY: test-fast
test-fast: $(STAMP)
	LIFECYCLE_PROFILE=fast $(BIN)/pytest -q -m "not slow and not realtime"

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The documentation site, into site/; strict: a broken link or a missing name fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
