"""A burst of calls through one box: N calls handed to real `postcall worker` processes at once (or
while they are being ingested, `--mode flow`), then a check that nothing was lost or duplicated.

    .venv/bin/python -m bench.burst.run --calls 10000 --concurrency 2                    # heuristic provider
    .venv/bin/python -m bench.burst.run --calls 10000 --concurrency 16 --llm-delay 0.2   # openai, fake server

Uses a fresh database on the local PostgreSQL (dropped afterwards) and a private redis-server on a free
port. The sample calls in samples/ are cycled, each stored under its own external id. Reports the
ingest rate, end-to-end throughput, per-stage latency percentiles from the runs table, and the
exactly-once check. Exit status 1 when a call is lost or duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT
from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.ingest import load_transcript
from app.models import Call, CallState, Claim, ExtractionRun, RunStatus
from app.pipeline.store import store_transcript
from app.schemas.transcript import Transcript
from app.worker.enqueue import enqueue_calls
from tests.faults.harness import ExtractingLLM, PrivateRedis, WorkerFleet, fault_env
from tests.support.processes import postcall_env
from tests.support.services import temporary_pg_database

SAMPLES_DIR = PROJECT_ROOT / "samples"
DONE_STATES = (CallState.ready_for_review, CallState.needs_attention, CallState.failed)
# Ids handed to the broker per connection: amortizes the connection without delaying the first calls.
ENQUEUE_BATCH = 200
POLL_SECONDS = 1.0
WORKER_READY_TIMEOUT = 120.0
# Generous: a 10,000-call burst on a loaded 2-core box takes minutes, not an hour.
DRAIN_TIMEOUT_SECONDS = 3600.0
PERCENTILES = (50, 95, 99)
STAGES = ("queue_wait_ms", "llm_ms", "verify_ms", "db_ms", "total_ms")


@dataclass
class BurstResult:
    calls: int
    mode: str
    provider: str
    llm_delay_s: float | None
    workers: int
    concurrency: int
    ingest_seconds: float  # storing the calls (flow: and enqueueing them)
    end_to_end_seconds: float  # flow: first call stored -> last finished; backlog: first enqueued -> last finished
    ingest_calls_per_s: float
    throughput_calls_per_s: float
    # Workers alone, once ingestion stopped competing for the CPU: the backlog left / the time to clear it.
    drain_calls_per_s: float | None
    states: dict[str, int]
    lost: int
    calls_without_one_succeeded_run: int
    calls_with_stray_claims: int
    latency_ms: dict[str, dict[str, float]]
    machine: str

    @property
    def nothing_lost(self) -> bool:
        return self.lost == 0 and self.calls_without_one_succeeded_run == 0 and self.calls_with_stray_claims == 0


def sample_transcripts() -> list[Transcript]:
    paths = sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix in {".json", ".txt"})
    return [load_transcript(path).transcript for path in paths]


def store_call(factory: sessionmaker[Session], transcripts: Sequence[Transcript], number: int) -> str:
    """One call stored in its own transaction, as `postcall ingest` does."""
    external_id = f"burst-{number:06d}"
    with unit_of_work(factory) as session:
        transcript = transcripts[number % len(transcripts)]
        stored = store_transcript(session, transcript, tenant="burst", external_id=external_id)
    return stored.call_id


def enqueue_in_batches(broker_url: str, call_ids: Sequence[str]) -> None:
    for start in range(0, len(call_ids), ENQUEUE_BATCH):
        enqueue_calls(call_ids[start : start + ENQUEUE_BATCH], broker_url=broker_url)


def ingest_flowing(
    factory: sessionmaker[Session], broker_url: str, transcripts: Sequence[Transcript], count: int
) -> list[str]:
    """Store calls and enqueue each batch as soon as it is stored: workers start while ingestion goes on."""
    call_ids: list[str] = []
    for start in range(0, count, ENQUEUE_BATCH):
        batch = [store_call(factory, transcripts, n) for n in range(start, min(count, start + ENQUEUE_BATCH))]
        enqueue_in_batches(broker_url, batch)
        call_ids += batch
    return call_ids


def finished_count(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as session:
        return int(session.scalar(select(func.count()).select_from(Call).where(Call.state.in_(DONE_STATES))) or 0)


def audit(factory: sessionmaker[Session], call_ids: Sequence[str]) -> tuple[dict[str, int], int, int, int]:
    """States, lost calls, calls without exactly one succeeded run, calls with claims outside that run."""
    with unit_of_work(factory) as session:
        states: dict[str, int] = {}
        for state, count in session.execute(select(Call.state, func.count()).group_by(Call.state)):
            states[CallState(state).value] = int(count)
        succeeded = {
            call_id: int(count)
            for call_id, count in session.execute(
                select(ExtractionRun.call_id, func.count())
                .where(ExtractionRun.status == RunStatus.succeeded)
                .group_by(ExtractionRun.call_id)
            )
        }
        stray = session.scalar(
            select(func.count(func.distinct(Claim.call_id)))
            .select_from(Claim)
            .join(ExtractionRun, Claim.run_id == ExtractionRun.id)
            .where(ExtractionRun.status != RunStatus.succeeded)
        )
    lost = len(call_ids) - sum(states.values())
    failed = states.get(CallState.failed.value, 0)
    not_once = sum(1 for call_id in call_ids if succeeded.get(call_id, 0) != 1) - failed
    return states, lost, not_once, int(stray or 0)


def latency_percentiles(factory: sessionmaker[Session]) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    with unit_of_work(factory) as session:
        for stage in STAGES:
            column = getattr(ExtractionRun, stage)
            values = sorted(
                float(v)
                for v in session.scalars(
                    select(column).where(ExtractionRun.status == RunStatus.succeeded, column.is_not(None))
                )
            )
            if len(values) < 2:
                continue
            cuts = statistics.quantiles(values, n=100, method="inclusive")
            result[stage] = {f"p{p}": round(cuts[p - 1], 1) for p in PERCENTILES}
    return result


def machine() -> str:
    cpus = os.cpu_count() or 0
    return f"{platform.machine()}, {cpus} cores, Python {platform.python_version()}, {platform.system()}"


def run_burst(args: argparse.Namespace) -> BurstResult:
    transcripts = sample_transcripts()
    with ExitStack() as stack:
        database_url = args.database_url or stack.enter_context(temporary_pg_database())
        upgrade(database_url)
        engine = create_db_engine(database_url)
        stack.callback(engine.dispose)
        factory = make_session_factory(engine)
        broker = PrivateRedis()
        broker.start()
        stack.callback(broker.stop)

        llm = ExtractingLLM(delay=args.llm_delay or 0.0)
        if args.llm_delay is not None:
            llm.start()
            stack.callback(llm.stop)
            env = fault_env(
                database_url,
                broker.url(),
                POSTCALL_OPENAI_TIMEOUT="30",
                POSTCALL_BROKER_VISIBILITY_TIMEOUT="900",
                POSTCALL_STUCK_AFTER_SECONDS="1200",
                POSTCALL_TASK_MAX_RETRIES="5",
                POSTCALL_WORKER_CONCURRENCY=str(args.concurrency),
            )
        else:
            env = postcall_env(database_url, broker.url(), POSTCALL_WORKER_CONCURRENCY=str(args.concurrency))
        log_dir = Path(tempfile.mkdtemp(prefix="postcall-burst-"))
        fleet = WorkerFleet(env, llm, log_dir, concurrency=args.concurrency)
        stack.callback(fleet.stop_all)
        for _ in range(args.workers):
            fleet.start()
        wait_ready(fleet)

        if args.mode == "flow":
            started = time.perf_counter()
            call_ids = ingest_flowing(factory, broker.url(), transcripts, args.calls)
            ingest_seconds = time.perf_counter() - started
            done_at_ingest_end: int | None = finished_count(factory)
        else:  # backlog: every call is stored first, then all of them are handed to the workers at once
            storing = time.perf_counter()
            call_ids = [store_call(factory, transcripts, n) for n in range(args.calls)]
            ingest_seconds = time.perf_counter() - storing
            started = time.perf_counter()
            enqueue_in_batches(broker.url(), call_ids)
            done_at_ingest_end = None
        print(f"stored {len(call_ids)} calls in {ingest_seconds:.1f}s", file=sys.stderr)
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while (done := finished_count(factory)) < len(call_ids) and time.monotonic() < deadline:
            if any(not w.alive for w in fleet.workers):
                raise SystemExit(f"a worker died; logs in {log_dir}")
            print(f"  {done}/{len(call_ids)} finished", file=sys.stderr, end="\r")
            time.sleep(POLL_SECONDS)
        end_to_end = time.perf_counter() - started
        drain_calls_per_s = None
        if done_at_ingest_end is not None and end_to_end > ingest_seconds:
            drain_calls_per_s = round((len(call_ids) - done_at_ingest_end) / (end_to_end - ingest_seconds), 1)
        states, lost, not_once, stray = audit(factory, call_ids)
        return BurstResult(
            calls=len(call_ids),
            mode=args.mode,
            provider="openai (local fake server)" if args.llm_delay is not None else "heuristic",
            llm_delay_s=args.llm_delay,
            workers=args.workers,
            concurrency=args.concurrency,
            ingest_seconds=round(ingest_seconds, 1),
            end_to_end_seconds=round(end_to_end, 1),
            ingest_calls_per_s=round(len(call_ids) / ingest_seconds, 1),
            throughput_calls_per_s=round(len(call_ids) / end_to_end, 1),
            drain_calls_per_s=drain_calls_per_s,
            states={k: v for k, v in states.items() if v},
            lost=lost,
            calls_without_one_succeeded_run=not_once,
            calls_with_stray_claims=stray,
            latency_ms=latency_percentiles(factory),
            machine=machine(),
        )


def wait_ready(fleet: WorkerFleet) -> None:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while not all("ready." in w.log_tail(10**6) for w in fleet.workers):
        if time.monotonic() > deadline:
            raise SystemExit("workers did not become ready:\n" + fleet.logs())
        time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument(
        "--mode", choices=("backlog", "flow"), default="backlog",
        help="backlog: store every call, then enqueue them all at once (the workers' throughput); "
        "flow: enqueue calls as they are stored, workers draining meanwhile (ingest + workers on one box)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: one per core)")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument(
        "--llm-delay", type=float, default=None,
        help="use the openai provider against a local fake server answering after this many seconds",
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary database on local PostgreSQL")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run_burst(args)
    document: dict[str, Any] = {**asdict(result), "nothing_lost": result.nothing_lost}
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        for key, value in document.items():
            print(f"{key:>34}: {value}")
    return 0 if result.nothing_lost else 1


if __name__ == "__main__":
    sys.exit(main())
