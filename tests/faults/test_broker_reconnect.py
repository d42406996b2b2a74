"""Redis restarts with its data (append-only file) while the workers are busy, several times: for the
workers each restart is a lost connection. Every worker reconnects and stays up, and every call finishes
exactly once: a message whose acknowledgement failed with the connection comes back after the visibility
timeout and finds its call done.

This is the path a worker's Redis transport takes through Celery's reconnect: the lost connection's
channels are closed twice, and acknowledgements of tasks that were running arrive on them afterwards (with
kombu's own transport a worker died here in 2 of 5 runs, app/worker/transport.py says why).

The reconciler runs, as in production: kombu fetches a message (BRPOP) and records it as unacknowledged in
two separate commands, so a restart between the two loses the message, and only the database knows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from tests.faults.harness import (
    DONE_STATES,
    check_exactly_once,
    count_in,
    describe_unfinished,
    fault_stack,
    ingest,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import wait_until

CALLS = 80
CONCURRENCY = 4
LLM_DELAY_SECONDS = 0.2
RESTARTS = 4
# Calls finished between two restarts: each restart lands while both workers have calls in flight.
DONE_BETWEEN_RESTARTS = 8
DOWNTIME_SECONDS = 0.5
# Above the visibility timeout (5 s), as in production: Redis redelivery gets the first chance.
STUCK_AFTER_SECONDS = 6
RECONCILE_EVERY_SECONDS = 1
PROGRESS_TIMEOUT = 60.0
RECOVERY_TIMEOUT = 90.0
CONNECTION_LOST = "Connection to broker lost"


@pytest.mark.faults
def test_workers_reconnect_to_a_restarted_redis_and_lose_nothing(postgres_url: str, tmp_path: Path) -> None:
    with fault_stack(
        postgres_url,
        LLM_DELAY_SECONDS,
        durable_broker=True,
        POSTCALL_STUCK_AFTER_SECONDS=str(STUCK_AFTER_SECONDS),
        POSTCALL_RECONCILE_EVERY_SECONDS=str(RECONCILE_EVERY_SECONDS),
    ) as (factory, broker_server, broker, llm, env), worker_fleet(env, llm, tmp_path, concurrency=CONCURRENCY) as fleet:
        fleet.start(beat=True)
        fleet.start()
        call_ids = ingest(factory, broker, CALLS, "reconnect")
        for restart in range(1, RESTARTS + 1):
            progressing = wait_until(
                lambda target=restart * DONE_BETWEEN_RESTARTS: count_in(factory, call_ids, DONE_STATES) >= target,
                PROGRESS_TIMEOUT,
                interval=0.05,
            )
            assert progressing, fleet.logs()
            broker_server.crash()
            time.sleep(DOWNTIME_SECONDS)
            broker_server.start()

        finished = wait_until_all_in(factory, call_ids, DONE_STATES, RECOVERY_TIMEOUT)
        assert finished, describe_unfinished(factory, call_ids, broker_server) + "\n" + fleet.logs()
        client = broker_server.client()
        drained = wait_until(lambda: client.llen(QUEUE_NAME) + client.hlen(KOMBU_UNACKED_KEY) == 0, RECOVERY_TIMEOUT)
        assert drained, describe_unfinished(factory, call_ids, broker_server)
        assert all(w.alive for w in fleet.workers), "a worker died with the broker connection\n" + fleet.logs()

    logs = "".join(w.log_tail(10**7) for w in fleet.workers)
    # The restarts reached the workers: the test is not vacuous.
    assert logs.count(CONNECTION_LOST) >= RESTARTS
    assert "Unrecoverable error" not in logs
    report = check_exactly_once(factory, call_ids)
    assert report.failed_runs == 0
