"""The model server fails: 500s for a while, then answers that never come in time, then recovers.
Calls retry with backoff and all complete once. A call that keeps failing past the retry limit is
`failed` with its reason, visibly, and `postcall retry` brings it back once the server is healthy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.session import unit_of_work
from app.models import Call, CallState, ExtractionRun, RunStatus
from app.worker.enqueue import enqueue_calls
from tests.faults.harness import (
    DONE_STATES,
    LLMMode,
    check_exactly_once,
    fault_stack,
    ingest,
    store_calls,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import run_postcall, wait_until

LLM_DELAY_SECONDS = 0.2
CLIENT_TIMEOUT_SECONDS = 1
OUTAGE_CALLS = 24
TIMEOUT_PHASE_SECONDS = 3.0
RECOVERY_TIMEOUT = 90.0
FAILED = frozenset({CallState.failed})
# Retries before giving up in the retry-limit test: 1 try + 2 retries.
MAX_RETRIES = 2
POISON_MARKER = "XQ-POISON-7"


@pytest.mark.faults
def test_calls_ride_out_server_errors_and_timeouts(postgres_url: str, tmp_path: Path) -> None:
    with fault_stack(
        postgres_url,
        LLM_DELAY_SECONDS,
        POSTCALL_OPENAI_TIMEOUT=str(CLIENT_TIMEOUT_SECONDS),
        POSTCALL_TASK_MAX_RETRIES="40",
    ) as (factory, _broker_server, broker, llm, env):
        llm.mode = LLMMode.server_error
        with worker_fleet(env, llm, tmp_path, concurrency=4) as fleet:
            fleet.start()
            fleet.start()
            call_ids = ingest(factory, broker, OUTAGE_CALLS, "llm")
            # Every call meets the outage at least once (its first try is refused).
            assert wait_until(lambda: llm.total_requests() >= OUTAGE_CALLS, RECOVERY_TIMEOUT), fleet.logs()
            llm.mode = LLMMode.timeout
            requests_before_timeouts = llm.total_requests()
            time.sleep(TIMEOUT_PHASE_SECONDS)
            timed_out_requests = llm.total_requests() - requests_before_timeouts
            llm.mode = LLMMode.ok
            finished = wait_until_all_in(factory, call_ids, DONE_STATES, RECOVERY_TIMEOUT)
            assert finished, fleet.logs()

    report = check_exactly_once(factory, call_ids)
    logs = "".join(w.log_tail(10**6) for w in fleet.workers)
    assert timed_out_requests > 0 and "timed out waiting for" in logs
    assert "server error 500" in logs
    assert report.extra_attempts >= OUTAGE_CALLS  # each call failed at least once before it succeeded
    assert report.failed_runs == 0  # retried, never given up on
    with unit_of_work(factory) as session:
        errors = session.scalars(select(Call.last_error).where(Call.id.in_(call_ids))).all()
    assert errors == [None] * len(call_ids)  # success clears the retry note


@pytest.mark.faults
def test_call_failing_past_the_retry_limit_is_failed_with_reason_then_retried(
    postgres_url: str, tmp_path: Path
) -> None:
    with fault_stack(
        postgres_url,
        LLM_DELAY_SECONDS,
        POSTCALL_TASK_MAX_RETRIES=str(MAX_RETRIES),
        POSTCALL_TASK_BACKOFF_BASE="0.1",
        POSTCALL_TASK_BACKOFF_MAX="0.3",
    ) as (factory, _broker_server, broker, llm, env):
        llm.failing_marker = POISON_MARKER
        with worker_fleet(env, llm, tmp_path, concurrency=2) as fleet:
            fleet.start()
            healthy = ingest(factory, broker, 3, "healthy")
            poisoned = store_calls(factory, 2, "poisoned", marker=POISON_MARKER)
            enqueue_calls(poisoned, broker_url=broker)

            assert wait_until_all_in(factory, poisoned, FAILED, RECOVERY_TIMEOUT), fleet.logs()
            assert wait_until_all_in(factory, healthy, DONE_STATES, RECOVERY_TIMEOUT), fleet.logs()
            with unit_of_work(factory) as session:
                calls = session.scalars(select(Call).where(Call.id.in_(poisoned))).all()
                failed_runs = session.scalars(
                    select(ExtractionRun).where(
                        ExtractionRun.call_id.in_(poisoned), ExtractionRun.status == RunStatus.failed
                    )
                ).all()
            attempts = MAX_RETRIES + 1
            for call in calls:
                assert call.attempts == attempts
                assert call.last_error is not None
                assert call.last_error.startswith(f"gave up after {attempts} attempts: server error 500")
            assert sorted(run.call_id for run in failed_runs) == sorted(poisoned)
            assert all(run.error == next(c.last_error for c in calls if c.id == run.call_id) for run in failed_runs)

            llm.failing_marker = None  # the server is healthy again
            retried = run_postcall(["retry", "--state", "failed", "--json"], env)
            assert retried.returncode == 0, retried.stderr
            assert sorted(json.loads(retried.stdout)["requeued"]) == sorted(poisoned)
            assert wait_until_all_in(factory, poisoned, DONE_STATES, RECOVERY_TIMEOUT), fleet.logs()

    report = check_exactly_once(factory, healthy + poisoned)
    assert report.failed_runs == len(poisoned)  # the failed attempts stay on record beside the new run
