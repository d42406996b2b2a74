# Every target bootstraps .venv itself, so a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck install clean faults bench-throughput bench-burst bench-grounding bench-grounding-compare bench-roles bench-heuristic bench-web bench-handoff bench-ingest-memory bench-ingest-parse bench-pii bench-batch bench-due-dates bench-reads-load bench-reads bench-cpu

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the whole pipeline on the shipped samples: SQLite, offline heuristic provider, no services.
demo: $(STAMP)
	$(BIN)/postcall demo

## Lint, type-check and run the whole test suite (PostgreSQL on 127.0.0.1 and redis-server are used for real):
## everything but the fault-injection tests in TEST_WORKERS parallel processes (pytest-xdist; 0: in one process),
## then the fault-injection tests alone, one after another, as their timings assume an otherwise idle box.
## Most tests wait on servers, subprocesses and sleeps, so more workers than cores pay.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not faults" -n $(TEST_WORKERS) --dist worksteal
	$(BIN)/pytest -m faults

## The fault-injection suite alone (also part of `make test`): kills workers, restarts Redis and PostgreSQL.
faults: $(STAMP)
	$(BIN)/pytest -m faults

## Benchmarks (see docs/benchmarks.md for the numbers and the machine).
## Sustained calls/s of 2 workers at 2 s model latency (REDIS_URL: a Redis database the run may flush).
bench-throughput: $(STAMP)
	$(BIN)/python -m bench.throughput.run --redis-url $(or $(REDIS_URL),redis://127.0.0.1:6379/3) --calls 3000 --rate 250

bench-burst: $(STAMP)
	$(BIN)/python -m bench.burst.run --calls 10000 --concurrency 2

bench-grounding: $(STAMP)
	$(BIN)/python -m bench.grounding.run

## The same cases through langextract's aligner too, side by side (a separate venv: not a dependency).
bench-grounding-compare:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet langextract==1.7.1 pydantic==2.14.4 rapidfuzz==3.14.6 jellyfish==1.3.0
	.venv-bench/bin/python -m bench.grounding.run

## CPU per call through process_call (PostgreSQL), main's code and langextract 1.7.1 in the same run.
bench-cpu: $(STAMP)
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet langextract==1.7.1 openai==3.57.0
	$(BIN)/python -m bench.cpu.run --calls 200 --against main

bench-roles: $(STAMP)
	$(BIN)/python -m bench.roles.run

bench-heuristic: $(STAMP)
	$(BIN)/python -m bench.heuristic.run

bench-web: $(STAMP)
	$(BIN)/python -m bench.web.run

bench-handoff: $(STAMP)
	$(BIN)/python -m bench.handoff.run

bench-ingest-memory: $(STAMP)
	$(BIN)/python -m bench.ingest_memory.run

bench-ingest-parse: $(STAMP)
	$(BIN)/python -m bench.ingest_parse.run

bench-pii: $(STAMP)
	$(BIN)/python -m bench.pii.run
	$(BIN)/python -m bench.pii.run --split heldout

bench-batch: $(STAMP)
	$(BIN)/python -m bench.batch.run --calls 2000

bench-due-dates: $(STAMP)
	$(BIN)/python -m bench.due_dates.run

## Read paths at a million calls (PostgreSQL): load once (~20 min), then time the queue, API, /metrics, call page.
READS_URL ?= postgresql+psycopg://postgres@127.0.0.1/postcall_bench_reads
READS_BROKER_URL ?= redis://127.0.0.1:6379/0
bench-reads-load: $(STAMP)
	$(BIN)/python -m bench.reads.load --url $(READS_URL) --calls 1000000

bench-reads: $(STAMP)
	$(BIN)/python -m bench.reads.run --url $(READS_URL) --broker-url $(READS_BROKER_URL) --runs 15 \
		--explain-out var/reads-explain.txt

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
