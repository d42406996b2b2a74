"""SIGTERM (what `docker stop` and Kubernetes send) is a warm shutdown: the worker stops taking calls,
finishes the ones in flight, leaves the rest in the queue, and exits cleanly. Nothing is redone."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from app.models import CallState
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from tests.faults.harness import (
    DONE_STATES,
    call_states,
    check_exactly_once,
    fault_stack,
    ingest,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import wait_until

CONCURRENCY = 2
CALLS = 6
# Calls are mid-flight for this long after SIGTERM arrives: the worker must wait for them.
LLM_DELAY_SECONDS = 2.0
START_TIMEOUT = 60.0
EXIT_TIMEOUT = LLM_DELAY_SECONDS + 20.0


@pytest.mark.faults
def test_sigterm_finishes_calls_in_flight_and_leaves_the_rest_queued(postgres_url: str, tmp_path: Path) -> None:
    with (
        fault_stack(postgres_url, LLM_DELAY_SECONDS) as (factory, broker_server, broker, llm, env),
        worker_fleet(env, llm, tmp_path, concurrency=CONCURRENCY) as fleet,
    ):
        worker = fleet.start()
        call_ids = ingest(factory, broker, CALLS, "term")
        assert wait_until(lambda: llm.requests_from(worker.tag) >= CONCURRENCY, START_TIMEOUT), fleet.logs()

        fleet.signal(worker, signal.SIGTERM)
        assert worker.proc.wait(timeout=EXIT_TIMEOUT) == 0, fleet.logs()

        states = call_states(factory, call_ids)
        finished = [call_id for call_id in call_ids if states[call_id] in DONE_STATES]
        untouched = [call_id for call_id in call_ids if states[call_id] is CallState.queued]
        assert len(finished) == CONCURRENCY, states  # in flight at SIGTERM: completed, not abandoned
        assert len(untouched) == CALLS - CONCURRENCY, states  # nothing left half-done in `processing`
        client = broker_server.client()
        assert client.llen(QUEUE_NAME) == CALLS - CONCURRENCY  # their messages wait for the next worker
        assert client.hlen(KOMBU_UNACKED_KEY) == 0  # and none is stranded until a visibility timeout
        assert llm.requests_from(worker.tag) == CONCURRENCY

        successor = fleet.start()
        assert wait_until_all_in(factory, call_ids, DONE_STATES, START_TIMEOUT), fleet.logs()

    report = check_exactly_once(factory, call_ids)
    assert report.attempts == CALLS  # no call was processed twice
    assert llm.requests_from(successor.tag) == CALLS - CONCURRENCY
