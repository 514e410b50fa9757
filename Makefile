# setpoint developer entry points. Every target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(CURDIR)/.setpoint

.PHONY: up test lint typecheck unit e2e bench clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## system-deps: Debian's nftables (the node proxy's kernel data path) and etcd-server (the
## etcd store's tests start their own members) where missing, when we are root with apt-get;
## never fails: without nft the proxy relays in userspace, and the tests that need nft or
## etcd skip, saying why
system-deps:
	@if ! command -v nft >/dev/null 2>&1 && ! test -x /usr/sbin/nft && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nftables (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends nftables >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 \
		     && apt-get install -y -qq --no-install-recommends nftables >/dev/null 2>&1; } \
		|| echo "nftables could not be installed: the node proxy falls back to userspace"; \
	fi
	@if ! command -v etcd >/dev/null 2>&1 && ! test -x /usr/bin/etcd && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing etcd-server (apt-get)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq --no-install-recommends etcd-server >/dev/null 2>&1 \
		|| { apt-get update -qq >/dev/null 2>&1 \
		     && apt-get install -y -qq --no-install-recommends etcd-server >/dev/null 2>&1; } \
		|| echo "etcd-server could not be installed: the etcd store's tests skip"; \
	fi

## up: run a single-machine cluster on the embedded store (Ctrl-C stops it)
up: $(STAMP) system-deps
	@echo "kubectl: use your own, or the pinned one at $(CURDIR)/$(BIN)/kubectl"
	$(BIN)/setpoint server --data-dir $(DATA_DIR)

## test: lint, type-check and run the whole test suite
test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

e2e: $(STAMP) system-deps
	$(BIN)/pytest -q tests/e2e tests/integration

## bench: run the benchmarks and print their figures (see docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA_DIR)
