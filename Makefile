# Every target bootstraps .venv itself, so a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck install clean faults bench-burst bench-grounding bench-roles bench-heuristic bench-web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the whole pipeline on the shipped samples: SQLite, offline heuristic provider, no services.
demo: $(STAMP)
	$(BIN)/postcall demo

## Lint, type-check and run the whole test suite (PostgreSQL and Redis on 127.0.0.1 are used for real).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

## The fault-injection suite alone (also part of `make test`): kills workers, restarts Redis and PostgreSQL.
faults: $(STAMP)
	$(BIN)/pytest -m faults

## Benchmarks (see docs/benchmarks.md for the numbers and the machine).
bench-burst: $(STAMP)
	$(BIN)/python -m bench.burst.run --calls 10000 --concurrency 2

bench-roles: $(STAMP)
	$(BIN)/python -m bench.roles.run

bench-heuristic: $(STAMP)
	$(BIN)/python -m bench.heuristic.run

bench-web: $(STAMP)
	$(BIN)/python -m bench.web.run

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
