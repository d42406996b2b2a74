"""Batch mode across a Redis crash: the broker restarts empty while a batch runs and while its answers
are stored. Nothing about a batch lives in Redis (only the beat's ticks pass through it), so the next
ticks pick the batches up from the database: every call ends stored exactly once, no batch twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db.session import unit_of_work
from app.models import LlmBatch, LlmMode
from app.pipeline.store import store_transcript
from tests.faults.harness import (
    DONE_STATES,
    FAULT_TENANT,
    WorkerHandle,
    check_exactly_once,
    count_in,
    fault_stack,
    worker_fleet,
)
from tests.support.fake_openai import BatchScript, RecordedRequest, ScriptedReply, extraction_quoting, extraction_reply
from tests.support.processes import wait_until
from tests.support.transcripts import make_transcript

CALLS = 24
LLM_DELAY_SECONDS = 0.3
DOWNTIME_SECONDS = 1.0
BATCH_ENV = {
    "POSTCALL_BATCH_COLLECT_EVERY_SECONDS": "1",
    "POSTCALL_BATCH_POLL_EVERY_SECONDS": "1",
    "POSTCALL_BATCH_POLL_MIN_INTERVAL_SECONDS": "0.5",
    "POSTCALL_BATCH_POLL_MAX_INTERVAL_SECONDS": "1",
    "POSTCALL_BATCH_LEASE_SECONDS": "3",
}
RECOVERY_TIMEOUT = 120.0


def fabricating(request: RecordedRequest) -> ScriptedReply:
    """One quote the call never contained: each call's repair is a (slow) synchronous request."""
    answer = extraction_quoting(request.last_user_text)
    answer["action_items"][0]["evidence"][0]["quote"] = "I will refund you 300 dollars today"
    return extraction_reply(answer)


@pytest.mark.faults
def test_batches_survive_redis_restarting_empty(postgres_url: str, tmp_path: Path) -> None:
    with fault_stack(postgres_url, LLM_DELAY_SECONDS, **BATCH_ENV) as (factory, broker_server, _, llm, env), \
            worker_fleet(env, llm, tmp_path, concurrency=4) as fleet:
        llm.server.batch_responder = fabricating
        llm.server.script_batches(BatchScript(progress=("validating", *["in_progress"] * 4, "finalizing")))
        call_ids = []
        for number in range(CALLS):
            with unit_of_work(factory) as session:
                call_ids.append(store_transcript(
                    session, make_transcript(external_id=f"b-{number}"), tenant=FAULT_TENANT,
                    external_id=f"b-{number}", llm_mode=LlmMode.batch,
                ).call_id)
        beat_worker = fleet.start(beat=True)
        fleet.start()

        def submitted() -> bool:
            with unit_of_work(factory) as session:
                return bool(session.scalar(
                    select(func.count()).select_from(LlmBatch).where(LlmBatch.provider_batch_id.is_not(None))
                ))

        assert wait_until(submitted, 60), fleet.logs()
        # First crash: the batch is running at the provider.
        broker_server.crash()
        time.sleep(DOWNTIME_SECONDS)
        broker_server.start()  # empty: no persistence (the beat refills it within a second)

        # Second crash: while the finished batch's answers are being stored.
        assert wait_until(lambda: count_in(factory, call_ids, DONE_STATES) >= 2, 90, interval=0.02), fleet.logs()
        broker_server.crash()
        done_at_crash = count_in(factory, call_ids, DONE_STATES)
        time.sleep(DOWNTIME_SECONDS)
        broker_server.start()

        # Now and then kombu trips over its own reconnect (AttributeError on `conninfo.hostname`) and
        # the worker exits; the deployment's restart policy brings it back, and so does this test.
        # What is checked is that the batches lose nothing, not Celery's reconnection.
        replaced: list[WorkerHandle] = []

        def finished_restarting_the_dead() -> bool:
            for worker in list(fleet.workers):
                if not worker.alive and worker not in replaced:
                    replaced.append(worker)
                    fleet.start(beat=worker is beat_worker)
            return count_in(factory, call_ids, DONE_STATES) == CALLS

        finished = wait_until(finished_restarting_the_dead, RECOVERY_TIMEOUT, interval=0.3)
        assert finished, fleet.logs()

    assert done_at_crash < CALLS, "everything was stored before the second crash: the test proves nothing"
    check_exactly_once(factory, call_ids)
    assert len(llm.server.batches) == 1  # one batch, followed across both crashes
