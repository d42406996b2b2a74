"""Redis crashes mid-run and comes back empty: every queued and unacknowledged message is gone. The
database still says which calls are unfinished, and the reconciler (on the workers' beat schedule)
hands them out again: every call completes, exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME, TASK_PROCESS_CALL
from tests.faults.harness import (
    DONE_STATES,
    check_exactly_once,
    count_in,
    fault_stack,
    ingest,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import wait_until

CALLS = 60
CONCURRENCY = 4
LLM_DELAY_SECONDS = 0.5
# Crash once this many calls are done: the rest are waiting in Redis or in flight.
CRASH_AFTER_DONE = 8
DOWNTIME_SECONDS = 1.0
# Above the visibility timeout (5 s), as in production: Redis redelivery gets the first chance.
STUCK_AFTER_SECONDS = 6
RECONCILE_EVERY_SECONDS = 1
PROGRESS_TIMEOUT = 60.0
RECOVERY_TIMEOUT = 90.0


@pytest.mark.faults
def test_calls_lost_with_redis_are_reconciled(postgres_url: str, tmp_path: Path) -> None:
    with fault_stack(
        postgres_url,
        LLM_DELAY_SECONDS,
        POSTCALL_STUCK_AFTER_SECONDS=str(STUCK_AFTER_SECONDS),
        POSTCALL_RECONCILE_EVERY_SECONDS=str(RECONCILE_EVERY_SECONDS),
    ) as (factory, broker_server, broker, llm, env), worker_fleet(env, llm, tmp_path, concurrency=CONCURRENCY) as fleet:
        fleet.start(beat=True)
        fleet.start()
        call_ids = ingest(factory, broker, CALLS, "redis")
        progressing = wait_until(
            lambda: count_in(factory, call_ids, DONE_STATES) >= CRASH_AFTER_DONE, PROGRESS_TIMEOUT, interval=0.05
        )
        assert progressing, fleet.logs()

        client = broker_server.client()
        lost_messages = client.llen(QUEUE_NAME) + client.hlen(KOMBU_UNACKED_KEY)
        broker_server.crash()
        time.sleep(DOWNTIME_SECONDS)
        broker_server.start()
        # Restarted empty: no call's message survived. (The beat publishes its periodic tasks, the
        # reconcile tick and the webhook sweep among them, as soon as Redis is back, so the queue itself
        # need not be empty when looked at.)
        queued_tasks = [json.loads(m)["headers"]["task"] for m in broker_server.client().lrange(QUEUE_NAME, 0, -1)]
        assert TASK_PROCESS_CALL not in queued_tasks

        finished = wait_until_all_in(factory, call_ids, DONE_STATES, RECOVERY_TIMEOUT)
        assert finished, fleet.logs()
        assert all(w.alive for w in fleet.workers), "a worker died with the broker"

    # Only the reconciler can have put the lost messages back: the test is not vacuous.
    assert lost_messages > 0
    assert "reconciler re-enqueued" in "".join(w.log_tail(10**6) for w in fleet.workers)
    report = check_exactly_once(factory, call_ids)
    assert report.failed_runs == 0
