"""Batch mode end to end with real `postcall worker --beat` processes on PostgreSQL and Redis, against the
local fake server's Batch API: every call ends stored exactly once, errored lines go into a later
batch, the reconciler leaves waiting batch calls alone, and a poller killed mid-way loses nothing."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, CallState, ExtractionRun, LlmBatch, LlmMode, RunStatus
from app.pipeline.store import store_transcript
from tests.faults.harness import (
    DONE_STATES,
    FAULT_TENANT,
    check_exactly_once,
    count_in,
    extracting_llm,
    fault_env,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.fake_openai import BatchScript, RecordedRequest, ScriptedReply, extraction_quoting, extraction_reply
from tests.support.processes import wait_until
from tests.support.services import redis_url
from tests.support.transcripts import make_transcript

BROKER_DB = 6
# Fast beat and polls, and a short lease so a killed poller's batch is taken over within seconds.
BATCH_ENV = {
    "POSTCALL_BATCH_COLLECT_EVERY_SECONDS": "1",
    "POSTCALL_BATCH_POLL_EVERY_SECONDS": "1",
    "POSTCALL_BATCH_POLL_MIN_INTERVAL_SECONDS": "0.5",
    "POSTCALL_BATCH_POLL_MAX_INTERVAL_SECONDS": "1",
    "POSTCALL_BATCH_LEASE_SECONDS": "3",
}
FINISH_TIMEOUT = 120.0


def store_batch_calls(factory: sessionmaker[Session], count: int, prefix: str) -> list[str]:
    call_ids = []
    for number in range(count):
        external_id = f"{prefix}-{number:04d}"
        with unit_of_work(factory) as session:
            stored = store_transcript(session, make_transcript(external_id=external_id), tenant=FAULT_TENANT,
                                      external_id=external_id, llm_mode=LlmMode.batch)
        call_ids.append(stored.call_id)
    return call_ids


def batch_ids_of_runs(factory: sessionmaker[Session], call_ids: Sequence[str]) -> list[int | None]:
    with unit_of_work(factory) as session:
        return list(session.scalars(
            select(ExtractionRun.llm_batch_id).where(
                ExtractionRun.call_id.in_(list(call_ids)), ExtractionRun.status == RunStatus.succeeded
            )
        ))


def test_batch_calls_end_stored_exactly_once_and_errored_lines_are_sent_again(
    postgres_url: str, tmp_path: Path
) -> None:
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    call_ids = store_batch_calls(factory, 30, "batch")
    unlucky = tuple(call_ids[::7])
    # The reconciler runs every second and calls count as stuck after two: it must leave them be. (The
    # worker refuses a stuck-after interval that does not exceed the broker's visibility timeout.)
    env = fault_env(postgres_url, broker, **BATCH_ENV, POSTCALL_STUCK_AFTER_SECONDS="2",
                    POSTCALL_BROKER_VISIBILITY_TIMEOUT="1", POSTCALL_RECONCILE_EVERY_SECONDS="1")
    try:
        with extracting_llm(0.0) as llm, worker_fleet(env, llm, tmp_path, concurrency=4) as fleet:
            llm.server.script_batches(BatchScript(errored=lambda custom_id: custom_id.startswith(unlucky)))
            fleet.start(beat=True)
            fleet.start()
            finished = wait_until_all_in(factory, call_ids, DONE_STATES, FINISH_TIMEOUT)
            assert finished, fleet.logs()
            logs = "".join(w.log_tail(10**6) for w in fleet.workers)
        report = check_exactly_once(factory, call_ids)
        assert report.failed_runs == 0
        assert llm.server.requests == []  # every answer came through a batch file
        assert None not in batch_ids_of_runs(factory, call_ids)
        assert "reconciler re-enqueued" not in logs
        with unit_of_work(factory) as session:
            batches = session.scalars(select(LlmBatch)).all()
            assert len(batches) >= 2 and all(b.collected_at is not None for b in batches)
            assert len(llm.server.batches) == len(batches)  # none submitted twice
            unlucky_runs = session.scalars(
                select(ExtractionRun.llm_batch_id).where(ExtractionRun.call_id.in_(list(unlucky)))
            ).all()
            assert min(b.id for b in batches) not in unlucky_runs  # they were answered by a later batch
            assert session.scalar(select(func.count()).select_from(Call).where(Call.llm_batch_id.is_not(None))) == 0
    finally:
        engine.dispose()


def fabricating(request: RecordedRequest) -> ScriptedReply:
    """An answer one of whose quotes the call never contained: each call needs a (synchronous) repair."""
    answer = extraction_quoting(request.last_user_text)
    answer["action_items"][0]["evidence"][0]["quote"] = "I will refund you 300 dollars today"
    return extraction_reply(answer)


def test_a_poller_killed_while_the_batch_runs_and_while_storing_loses_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    count = 24
    call_ids = store_batch_calls(factory, count, "killed")
    env = fault_env(postgres_url, broker, **BATCH_ENV)
    try:
        # Repairs take 0.3 s each, so storing the batch's answers takes seconds: time to kill the poller.
        with extracting_llm(0.3) as llm, worker_fleet(env, llm, tmp_path, concurrency=4) as fleet:
            llm.server.batch_responder = fabricating
            llm.server.script_batches(BatchScript(progress=("validating", *["in_progress"] * 6, "finalizing")))
            first = fleet.start(beat=True)

            def submitted() -> bool:
                with unit_of_work(factory) as session:
                    return bool(session.scalar(select(func.count()).select_from(LlmBatch)
                                               .where(LlmBatch.provider_batch_id.is_not(None))))

            assert wait_until(submitted, 60), fleet.logs()
            fleet.signal(first, signal.SIGKILL)  # between polls: the batch runs on without anyone watching
            first.proc.wait(timeout=10)
            assert count_in(factory, call_ids, DONE_STATES) == 0

            second = fleet.start(beat=True)
            storing = wait_until(lambda: count_in(factory, call_ids, DONE_STATES) >= 2, 90, interval=0.02)
            assert storing, fleet.logs()
            fleet.signal(second, signal.SIGKILL)  # mid-way through the finished batch's answers
            second.proc.wait(timeout=10)
            done_at_kill = count_in(factory, call_ids, DONE_STATES)
            assert done_at_kill < count, "the batch was stored before the kill: the test proves nothing"

            fleet.start(beat=True)
            finished = wait_until_all_in(factory, call_ids, DONE_STATES, FINISH_TIMEOUT)
            assert finished, fleet.logs()
        check_exactly_once(factory, call_ids)
        assert len(llm.server.batches) == 1  # the batch was followed, never submitted again
        with unit_of_work(factory) as session:
            states = session.scalars(select(Call.state).where(Call.id.in_(call_ids))).all()
            assert set(states) == {CallState.needs_attention}  # the fabricated quote stays flagged
    finally:
        engine.dispose()
