"""SIGKILL workers mid-call, again and again, while calls keep arriving: Redis redelivers every call a
dead worker held (visibility timeout), and each call ends with exactly one run, one set of claims.

A beat runs the reconciler as in production: kombu takes a message off the Redis list (BRPOP) before it
records it as unacknowledged, so a kill between the two loses the message; the database still has the
call in `processing` and the reconciler hands it out again after STUCK_AFTER_SECONDS."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

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

KILLS = int(os.environ.get("POSTCALL_FAULT_KILLS", "20"))
WORKERS = 5
MIN_SERVING_WORKERS = 2
CONCURRENCY = 2
LLM_DELAY_SECONDS = 1.5
# A worker counts as mid-call while a request it sent is younger than this (its answer is still pending).
MID_CALL_WINDOW_SECONDS = LLM_DELAY_SECONDS * 0.6
# Calls waiting or in progress, kept topped up so every worker, old or new, always has work.
BACKLOG = 10
TOP_UP_EVERY_SECONDS = 0.5
# Above the visibility timeout (5 s) and any legitimate wait here, so the reconciler only catches what
# Redis lost.
STUCK_AFTER_SECONDS = 20
RECONCILE_EVERY_SECONDS = 2
STORM_TIMEOUT_SECONDS = 150.0
DRAIN_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.05


@pytest.mark.faults
def test_sigkilled_workers_lose_and_duplicate_nothing(postgres_url: str, tmp_path: Path) -> None:
    with fault_stack(
        postgres_url,
        LLM_DELAY_SECONDS,
        POSTCALL_STUCK_AFTER_SECONDS=str(STUCK_AFTER_SECONDS),
        POSTCALL_RECONCILE_EVERY_SECONDS=str(RECONCILE_EVERY_SECONDS),
    ) as (factory, broker_server, broker, llm, env), worker_fleet(env, llm, tmp_path, concurrency=CONCURRENCY) as fleet:
        fleet.start_beat()
        for _ in range(WORKERS):
            fleet.start()
        call_ids: list[str] = []
        kills = 0
        started = time.monotonic()
        next_top_up = started
        while kills < KILLS:
            now = time.monotonic()
            assert now < started + STORM_TIMEOUT_SECONDS, f"only {kills} kills in time\n{fleet.logs()}"
            if now >= next_top_up:  # calls keep flowing: the backlog never runs dry
                backlog = len(call_ids) - count_in(factory, call_ids, DONE_STATES)
                if backlog < BACKLOG:
                    call_ids += ingest(factory, broker, BACKLOG - backlog, f"storm-{len(call_ids)}")
                next_top_up = now + TOP_UP_EVERY_SECONDS
            serving = [w for w in fleet.alive() if llm.requests_from(w.tag)]
            target = next(
                (w for w in serving if llm.in_flight(w.tag, younger_than=MID_CALL_WINDOW_SECONDS)), None
            )
            # Someone keeps working while replacements start: never kill below this many serving workers.
            if target is None or len(serving) <= MIN_SERVING_WORKERS:
                time.sleep(POLL_SECONDS)
                continue
            fleet.kill(target)
            kills += 1
            fleet.start()

        finished = wait_until_all_in(factory, call_ids, DONE_STATES, DRAIN_TIMEOUT_SECONDS)
        assert finished, describe_unfinished(factory, call_ids, broker_server) + "\n" + fleet.logs()

    report = check_exactly_once(factory, call_ids)
    # Every kill interrupted at least one claimed call, which then needed another attempt.
    assert report.extra_attempts >= KILLS
    assert report.failed_runs == 0
    assert len(fleet.workers) == WORKERS + KILLS
