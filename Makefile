# Two commands: `make run` (set-up + local testnet with the demo workload and a live view)
# and `make test` (set-up + the whole suite, lint included). Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test setup lint unit bench fuzz clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "p2pmkt needs Python 3.11, found " + sys.version' || exit 1
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/p2pmkt testnet demo

lint: setup
	$(BIN)/ruff check p2pmkt tests tools
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

unit: setup
	$(BIN)/pytest

test: lint unit

# Long fuzz run: the short run of the same properties is part of `make test`.
fuzz: setup
	P2PMKT_FUZZ=long $(BIN)/pytest tests/fuzz tests/wire tests/raft/test_messages.py tests/chain/test_validation.py -q -p no:cacheprovider

bench: setup
	@for f in tools/bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache testnet/run .p2pmkt-dev
