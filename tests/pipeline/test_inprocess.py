"""Processing in this process (app/pipeline/inprocess.py): every call to an outcome; a transient failure
retried with the worker's policy, each wait announced before it is slept."""

from __future__ import annotations

import pytest

from app.config import PROJECT_ROOT, Settings
from app.context import AppContext
from app.models import CallState
from app.pipeline.ingest_files import ingest_files
from app.pipeline.inprocess import process_in_process
from app.pipeline.run import ProcessOutcome
from app.pipeline.store import Actor
from tests.support.fake_openai import FakeOpenAIServer, error_reply

SAMPLES = PROJECT_ROOT / "samples"


def _stored(ctx: AppContext, *names: str) -> list[str]:
    results = ingest_files(ctx, [SAMPLES / name for name in names], tenant="acme", actor=Actor("test"))
    return [r.call_id for r in results if r.call_id]


def test_each_call_gets_an_outcome_and_on_done_hears_of_it(sqlite_url: str) -> None:
    ctx = AppContext(Settings(database_url=sqlite_url, llm_provider="heuristic"))
    call_ids = _stored(ctx, "bank_lost_card.json", "telecom_outage.json")
    done: list[ProcessOutcome] = []
    outcomes = process_in_process(ctx, call_ids, on_done=done.append)
    assert [o.call_id for o in outcomes] == call_ids == [o.call_id for o in done]
    assert all(o.state in (CallState.ready_for_review, CallState.needs_attention) for o in outcomes)
    assert process_in_process(ctx, []) == []


def test_transient_failures_are_retried_then_the_call_fails(
    sqlite_url: str, fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=sqlite_url, llm_provider="openai", task_max_retries=2,
                        task_backoff_base=0.01, task_backoff_max=0.01)
    ctx = AppContext(settings)
    call_ids = _stored(ctx, "bank_lost_card.json")
    for _ in range(3):
        fake_openai.enqueue(error_reply(503))
    waits: list[tuple[str, float, int]] = []
    slept: list[float] = []
    outcomes = process_in_process(ctx, call_ids, on_wait=lambda *wait: waits.append(wait), sleep=slept.append)
    assert [retry for _, _, retry in waits] == [1, 2]
    assert slept == [seconds for _, seconds, _ in waits]
    assert all(f"call {call_ids[0]}" in note for note, _, _ in waits)
    assert outcomes[0].state is CallState.failed
    assert outcomes[0].error is not None and "gave up after 3 attempts" in outcomes[0].error


def test_a_reprocess_that_gives_up_keeps_the_decision_and_tells_no_one(
    sqlite_url: str, fake_openai: FakeOpenAIServer
) -> None:
    """`postcall reprocess` of an approved call while the provider answers 503: the call stays approved with
    its result, the failed run and last_error say what happened, and no call.failed goes downstream (it would
    contradict the approval, and `postcall retry` could then drop the decision without an event)."""
    from sqlalchemy import select, update

    from app.db.session import unit_of_work
    from app.models import Call, ExtractionRun, OutboxEvent, RunStatus

    ctx = AppContext(Settings(database_url=sqlite_url, llm_provider="heuristic"))
    (call_id,) = _stored(ctx, "bank_lost_card.json")
    process_in_process(ctx, [call_id])
    with unit_of_work(ctx.session_factory) as session:
        session.execute(update(Call).where(Call.id == call_id).values(state=CallState.approved))
    with ctx.session_factory() as session:
        events_before = session.scalars(select(OutboxEvent.type).where(OutboxEvent.call_id == call_id)).all()

    down = AppContext(Settings(database_url=sqlite_url, llm_provider="openai", task_max_retries=1,
                               task_backoff_base=0.01, task_backoff_max=0.01))
    fake_openai.enqueue(error_reply(503), error_reply(503))
    seen: list[CallState] = []

    def during_the_wait(note: str, seconds: float, retry: int) -> None:
        with down.session_factory() as session:
            call = session.get(Call, call_id)
            assert call is not None
            seen.append(call.state)  # what a reader sees while the provider is retried

    (outcome,) = process_in_process(down, [call_id], reprocess_reviewed=True, on_wait=during_the_wait,
                                    sleep=lambda seconds: None)
    assert outcome.state is CallState.approved and outcome.error is not None and "gave up" in outcome.error
    assert seen == [CallState.approved]
    with down.session_factory() as session:
        call = session.get(Call, call_id)
        assert call is not None and call.state is CallState.approved and "gave up" in (call.last_error or "")
        statuses = session.scalars(select(ExtractionRun.status).where(ExtractionRun.call_id == call_id)
                                   .order_by(ExtractionRun.id)).all()
        events = session.scalars(select(OutboxEvent.type).where(OutboxEvent.call_id == call_id)).all()
    assert statuses[0] is RunStatus.succeeded and statuses[-1] is RunStatus.failed
    assert call.current_run_id is not None  # the approved result is still the call's
    assert events == events_before  # no call.failed
