"""Hand-off delivery on one box: latency from a state change's commit to the receiver's 2xx, and deliveries
per second through real `postcall worker` processes to a real receiver on loopback.

    .venv/bin/python -m bench.handoff.run                      # 300 paced decisions, then a 3,000-event backlog

Uses a fresh database on the local PostgreSQL (dropped afterwards), a private redis-server on a free port
and the test receiver (http.server, Nagle off) answering 200 at once.

1. latency: calls are processed in-process, then rejected one at a time at a steady pace (as reviewers
   do through the web app); the commit time of each decision is taken right after its commit, the
   receiver notes when its 2xx went out. The after-commit hand-over enqueues each delivery.
2. throughput: with the workers stopped, events are written for many calls (several per call, so the
   per-call order applies); the workers start and the clock runs until the last 2xx.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import func, select

from app.config import Settings, get_settings
from app.db.session import unit_of_work
from app.handoff.endpoints import add_endpoint
from app.handoff.outbox import EventType, install_delivery_notifier, record_event
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, DeliveryStatus, UserRole, WebhookDelivery
from app.pipeline.calls import get_or_create_tenant
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.review import CallDecision, decide_call
from app.users import create_user, principal_of
from app.worker.enqueue import enqueue_deliveries
from bench.burst.run import machine, sample_transcripts
from bench.databases import migrated_pg_database
from tests.faults.harness import ExtractingLLM, PrivateRedis, WorkerFleet
from tests.support.processes import postcall_env, wait_until
from tests.support.receiver import Receiver

TENANT = "bench"
SECRET_KEY = "bench-handoff-secret-key"
EVENT_TYPES_CYCLE = (EventType.approved, EventType.reopened, EventType.rejected, EventType.reopened)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc), independent of what else loads the box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def percentile(values: list[float], p: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-calls", type=int, default=300)
    parser.add_argument("--pace", type=float, default=20.0, help="Decisions per second in the latency phase.")
    parser.add_argument("--backlog-calls", type=int, default=750)
    parser.add_argument("--events-per-call", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    settings = Settings(secret_key=SECRET_KEY, webhook_allow_private=True)
    transcripts = sample_transcripts()
    with ExitStack() as stack:
        url, _engine, factory = migrated_pg_database(stack)
        broker = PrivateRedis()
        broker.start()
        stack.callback(broker.stop)
        receiver = Receiver().start()
        stack.callback(receiver.stop)

        with unit_of_work(factory) as session:
            tenant = get_or_create_tenant(session, TENANT)
            add_endpoint(session, settings, tenant_id=tenant.id, url=receiver.url)
            user = create_user(session, tenant=TENANT, name="reviewer", role=UserRole.supervisor).user
            principal = principal_of(user, TENANT)

        total_calls = args.latency_calls + args.backlog_calls
        prompt = PromptTemplate.load(get_settings().prompts_dir, get_settings().prompt_version)
        provider = HeuristicProvider()
        call_ids = []
        for number in range(total_calls):
            with unit_of_work(factory) as session:
                stored = store_transcript(session, transcripts[number % len(transcripts)], tenant=TENANT,
                                          external_id=f"handoff-{number:06d}")
            process_call(factory, stored.call_id, provider, prompt)
            call_ids.append(stored.call_id)
        latency_ids, backlog_ids = call_ids[: args.latency_calls], call_ids[args.latency_calls :]

        env = postcall_env(url, broker.url(), POSTCALL_SECRET_KEY=SECRET_KEY, POSTCALL_WEBHOOK_ALLOW_PRIVATE="true",
                           POSTCALL_WORKER_CONCURRENCY=str(args.concurrency))
        fleet = WorkerFleet(env, ExtractingLLM(delay=0.0), Path(tempfile.mkdtemp(prefix="postcall-handoff-")),
                            concurrency=args.concurrency)
        stack.callback(fleet.stop_all)
        fleet.start(beat=True)
        for _ in range(args.workers - 1):
            fleet.start()

        # The processing events (call.processed) go out first; wait for them so the phases do not mix.
        def delivered_count() -> int:
            with unit_of_work(factory) as session:
                return int(session.scalar(select(func.count()).select_from(WebhookDelivery)
                                          .where(WebhookDelivery.status == DeliveryStatus.succeeded)) or 0)

        if not wait_until(lambda: delivered_count() >= total_calls, 600, interval=0.5):
            print(fleet.logs(), file=sys.stderr)
            return 1

        # ---- phase 1: latency, paced decisions through the after-commit hand-over
        broker_url = broker.url()

        def hand_over(delivery_ids: Sequence[int]) -> None:
            enqueue_deliveries(delivery_ids, broker_url=broker_url)

        install_delivery_notifier(hand_over)
        committed: dict[str, float] = {}
        accepted_before = len(receiver.accepted)
        interval = 1.0 / args.pace
        next_at = time.perf_counter()
        for call_id in latency_ids:
            with unit_of_work(factory) as session:
                decide_call(session, principal, call_id, CallDecision.reject)
            committed[call_id] = time.time()
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        wait_until(lambda: len(receiver.accepted) - accepted_before >= len(latency_ids), 120, interval=0.1)
        latencies = sorted(
            (answered - committed[request.call_id]) * 1000.0
            for request, answered in receiver.accepted[accepted_before:]
            if request.type == "call.rejected" and request.call_id in committed
        )
        install_delivery_notifier(None)

        # ---- phase 2: throughput, a backlog written while no worker runs
        fleet.stop_all()
        fleet.workers.clear()
        with unit_of_work(factory) as session:
            for call_id in backlog_ids:
                call = session.get(Call, call_id)
                assert call is not None
                for n in range(args.events_per_call):
                    record_event(session, call, EVENT_TYPES_CYCLE[n % len(EVENT_TYPES_CYCLE)])
        backlog_events = len(backlog_ids) * args.events_per_call
        target = delivered_count() + backlog_events
        accepted_before = len(receiver.accepted)
        started = time.perf_counter()
        fleet.start(beat=True)
        for _ in range(args.workers - 1):
            fleet.start()
        # Worker CPU is counted from the first 2xx, so the workers' start-up (imports) stays out of it.
        wait_until(lambda: len(receiver.accepted) > accepted_before, 300, interval=0.02)
        cpu_before = {w.proc.pid: cpu_seconds(w.proc.pid) for w in fleet.workers}
        counted_from = delivered_count()
        drained = wait_until(lambda: delivered_count() >= target, 1200, interval=0.2)
        elapsed = time.perf_counter() - started
        worker_cpu = sum(cpu_seconds(pid) - before for pid, before in cpu_before.items())
        counted = max(1, target - counted_from)
        if not drained:
            print(fleet.logs(), file=sys.stderr)
            return 1
        duplicates = len(receiver.received) - len({r.webhook_id for r in receiver.received})
        backlog_answers = [answered for _request, answered in receiver.accepted[accepted_before:]]
        # From the first 2xx to the last: the workers' steady rate, without their start-up.
        steady = (backlog_events - 1) / (max(backlog_answers) - min(backlog_answers))

    result = {
        "latency_decisions": len(latencies),
        "pace_per_s": args.pace,
        "commit_to_2xx_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                             "p99": percentile(latencies, 99), "max": round(max(latencies), 1)},
        "backlog_events": backlog_events,
        "backlog_calls": len(backlog_ids),
        "backlog_seconds_incl_worker_start": round(elapsed, 1),
        "deliveries_per_s_incl_worker_start": round(backlog_events / elapsed, 1),
        "deliveries_per_s": round(steady, 1),
        # Worker processes only (PostgreSQL and Redis not included).
        "worker_cpu_ms_per_delivery": round(worker_cpu * 1000.0 / counted, 2),
        "workers": args.workers,
        "threads_per_worker": args.concurrency,
        "requests_beyond_one_per_event": duplicates,
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
