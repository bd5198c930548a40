# make serve | make test | make bench — each creates or refreshes the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: serve test lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The benchmarks need the bench extras (matplotlib) too; make test stays without them.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

serve: $(STAMP)
	$(BIN)/mediasrv serve

test: lint
	sh tests/install-components.sh
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check mediasrv plugins tests examples bench
	$(BIN)/mypy

bench: $(BENCH_STAMP)
	sh bench/install-tools.sh
	$(BIN)/python -m bench.run

# Not part of make test: a bounded (about 2 minutes) abuse run, see bench/soak.py.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
