"""PostgreSQL stops for a few seconds mid-run (every session terminated, new connections refused):
workers treat the lost database as a transient error and retry with backoff; every call completes once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.db.migrate import upgrade
from tests.faults.harness import (
    DONE_STATES,
    check_exactly_once,
    count_in,
    fault_stack,
    ingest,
    private_postgres,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import wait_until

CALLS = 60
CONCURRENCY = 4
LLM_DELAY_SECONDS = 0.5
STOP_AFTER_DONE = 8
OUTAGE_SECONDS = 4.0
PROGRESS_TIMEOUT = 60.0
RECOVERY_TIMEOUT = 90.0


@pytest.mark.faults
def test_calls_survive_a_database_outage(tmp_path: Path) -> None:
    # A private cluster: stopping the shared server would break every other test running against it.
    with private_postgres() as database_server:
        database_url = database_server.create_database("postcall")
        upgrade(database_url)
        stack = fault_stack(
            database_url, LLM_DELAY_SECONDS, POSTCALL_TASK_BACKOFF_BASE="0.5", POSTCALL_TASK_BACKOFF_MAX="2"
        )
        with stack as (factory, _broker_server, broker, llm, env), worker_fleet(
            env, llm, tmp_path, concurrency=CONCURRENCY
        ) as fleet:
            fleet.start()
            fleet.start()
            call_ids = ingest(factory, broker, CALLS, "pg")
            progressing = wait_until(
                lambda: count_in(factory, call_ids, DONE_STATES) >= STOP_AFTER_DONE, PROGRESS_TIMEOUT, interval=0.05
            )
            assert progressing, fleet.logs()
            requests_before = llm.total_requests()

            database_server.stop("fast")
            time.sleep(OUTAGE_SECONDS)
            database_server.start()

            finished = wait_until_all_in(factory, call_ids, DONE_STATES, RECOVERY_TIMEOUT)
            assert finished, fleet.logs()
            assert all(w.alive for w in fleet.workers), "a worker died with the database"

        report = check_exactly_once(factory, call_ids)
        logs = "".join(w.log_tail(10**6) for w in fleet.workers)
    # The outage hit calls in flight: they were retried (claimed again), not lost or failed.
    assert "transient error" in logs
    assert report.extra_attempts > 0
    assert report.failed_runs == 0
    assert requests_before < CALLS
