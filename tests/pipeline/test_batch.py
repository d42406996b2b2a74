"""Batch mode against the local fake server (real HTTP through the SDK), on SQLite and PostgreSQL:
the collector's files and limits, the poller's statuses, and what ends up STORED for every outcome
(completed, partially errored, expired, failed, cancelled), plus the steps a killed process repeats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, Settings
from app.db.session import unit_of_work
from app.errors import ConfigError, PermanentError
from app.handoff.record import CallRecordV1
from app.llm.heuristic import HeuristicProvider
from app.llm.openai_batch import CustomId
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.models import BatchStatus, Call, CallState, ExtractionRun, LlmBatch, LlmMode, OutboxEvent, RunStatus
from app.models.tables import utcnow
from app.pipeline import batch as batch_module
from app.pipeline.batch import (
    cancel_batch,
    collect_batches,
    list_batches,
    poll_batches,
)
from app.pipeline.llm_mode import resolve_llm_mode
from app.pipeline.reconcile import claim_stuck_calls
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.schemas.transcript import Role
from tests.support.fake_openai import (
    ANSWER_TIMEOUT,
    DEFAULT_MODEL,
    BatchScript,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    completion_reply,
    error_reply,
    extraction_quoting,
    extraction_reply,
    running_fake_openai,
)
from tests.support.transcripts import CARD_CALL_LINES, make_transcript

DONE = {CallState.ready_for_review, CallState.needs_attention}
PROMPT_TOKENS, COMPLETION_TOKENS = 1_000, 200


def quoting(request: RecordedRequest) -> ScriptedReply:
    """A valid answer quoting the transcript the request shows (every claim grounded)."""
    return extraction_reply(
        extraction_quoting(request.last_user_text), prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS
    )


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with running_fake_openai(monkeypatch) as server:
        server.batch_responder = quoting
        yield server


@pytest.fixture
def settings() -> Settings:
    return Settings(
        llm_provider="openai", openai_model=DEFAULT_MODEL, openai_max_attempts=1, openai_timeout=ANSWER_TIMEOUT,
        price_input_per_mtok=1.0, price_cached_input_per_mtok=0.5, price_output_per_mtok=4.0,
        batch_poll_min_interval_seconds=0, batch_poll_max_interval_seconds=0,
    )


@pytest.fixture
def provider(fake_openai: FakeOpenAIServer, settings: Settings) -> OpenAIProvider:
    return OpenAIProvider(settings)


@pytest.fixture
def prompt() -> PromptTemplate:
    return PromptTemplate.load(PROJECT_ROOT / "prompts", "extract-v1")


def store_calls(factory: sessionmaker[Session], count: int, mode: LlmMode = LlmMode.batch) -> list[str]:
    ids = []
    with unit_of_work(factory) as session:
        for number in range(count):
            stored = store_transcript(
                session, make_transcript(), tenant="acme", external_id=f"{mode.value}-{number:03d}", llm_mode=mode
            )
            ids.append(stored.call_id)
    return ids


def poll_until_collected(
    factory: sessionmaker[Session], provider: OpenAIProvider, prompt: PromptTemplate, settings: Settings
) -> int:
    """Poll until no batch is open; returns the passes it took."""
    for passes in range(1, 20):
        poll_batches(factory, provider, prompt, settings)
        with unit_of_work(factory) as session:
            if not session.scalar(select(func.count()).select_from(LlmBatch).where(LlmBatch.collected_at.is_(None))):
                return passes
    raise AssertionError("batches still open after 20 polls")


def calls(session: Session) -> dict[str, Call]:
    return {call.id: call for call in session.scalars(select(Call))}


def runs(session: Session, call_id: str) -> list[ExtractionRun]:
    return list(session.scalars(select(ExtractionRun).where(ExtractionRun.call_id == call_id)))


def hand_off_events(session: Session, call_id: str) -> list[tuple[str, CallRecordV1]]:
    """The call's outbox events: (type, record)."""
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.call_id == call_id).order_by(OutboxEvent.id))
    return [(row.type, CallRecordV1.model_validate(row.payload["data"])) for row in rows]


def test_collected_calls_are_stored_once_at_the_batch_price(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    call_ids = store_calls(session_factory, 3)
    sync_call = store_calls(session_factory, 1, LlmMode.sync)[0]

    summary = collect_batches(session_factory, provider, prompt, settings)

    assert summary.calls == 3 and len(summary.submitted) == 1
    [remote] = fake_openai.batches.values()
    assert remote.endpoint == "/v1/chat/completions" and remote.completion_window == "24h"
    lines = fake_openai.batch_lines(remote.id)
    assert {CustomId.parse(line["custom_id"]).call_id for line in lines} == set(call_ids)  # type: ignore[union-attr]
    assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)
    body = lines[0]["body"]
    assert body["model"] == DEFAULT_MODEL and body["response_format"]["json_schema"]["strict"] is True
    assert "[DOB_1]" in body["messages"][1]["content"]  # redacted exactly as a synchronous request
    with unit_of_work(session_factory) as session:
        batch = session.scalars(select(LlmBatch)).one()
        assert batch.provider_batch_id == remote.id and batch.status == "validating"
        assert batch.call_count == batch.request_count == 3
        assert {c.llm_batch_id for c in calls(session).values() if c.id in call_ids} == {batch.id}
        assert calls(session)[sync_call].llm_batch_id is None  # a sync call never goes into a batch

    passes = poll_until_collected(session_factory, provider, prompt, settings)
    assert passes == 3  # created validating; polls see in_progress, finalizing, completed

    with unit_of_work(session_factory) as session:
        batch = session.scalars(select(LlmBatch)).one()
        assert batch.status == "completed" and batch.completed_count == 3 and batch.collected_at is not None
        for call_id in call_ids:
            call = calls(session)[call_id]
            assert call.state is CallState.ready_for_review and call.llm_batch_id is None
            [run] = runs(session, call_id)
            assert run.status is RunStatus.succeeded and run.llm_batch_id == batch.id
            assert (run.prompt_tokens, run.completion_tokens, run.llm_calls) == (PROMPT_TOKENS, COMPLETION_TOKENS, 1)
            # Half of (1000 x $1 + 200 x $4) per million tokens.
            assert run.cost_usd == pytest.approx(0.5 * (1_000 * 1.0 + 200 * 4.0) / 1e6)
    assert fake_openai.requests == []  # no synchronous request was needed

    # Polling and collecting again changes nothing: no second run, no new batch.
    poll_batches(session_factory, provider, prompt, settings)
    assert collect_batches(session_factory, provider, prompt, settings).submitted == []
    with unit_of_work(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ExtractionRun)) == 3
        assert session.scalar(select(func.count()).select_from(LlmBatch)) == 1


def test_files_are_split_at_the_request_and_byte_limits(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 5)
    by_requests = settings.model_copy(update={"batch_max_requests": 2})
    summary = collect_batches(session_factory, provider, prompt, by_requests)
    assert len(summary.submitted) == 3
    assert sorted(len(fake_openai.batch_lines(b)) for b in fake_openai.batches) == [1, 2, 2]

    poll_until_collected(session_factory, provider, prompt, settings)
    store_more = [f"more-{n}" for n in range(3)]
    with unit_of_work(session_factory) as session:
        for name in store_more:
            store_transcript(session, make_transcript(), tenant="acme", external_id=name, llm_mode=LlmMode.batch)
    one_line = len(fake_openai.files[next(iter(fake_openai.batches.values())).input_file_id].splitlines()[0]) + 1
    by_bytes = settings.model_copy(update={"batch_max_bytes": 2 * one_line + 10})
    before = set(fake_openai.batches)
    collect_batches(session_factory, provider, prompt, by_bytes)
    new = [b for b in fake_openai.batches if b not in before]
    assert sorted(len(fake_openai.batch_lines(b)) for b in new) == [1, 2]
    assert all(len(fake_openai.files[fake_openai.batches[b].input_file_id]) <= 2 * one_line + 10 for b in new)


def test_a_partially_errored_batch_sends_the_errored_calls_again(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    call_ids = store_calls(session_factory, 3)
    unlucky = call_ids[1]
    fake_openai.script_batches(BatchScript(progress=(), errored=lambda custom_id: custom_id.startswith(unlucky)))
    collect_batches(session_factory, provider, prompt, settings)
    poll_batches(session_factory, provider, prompt, settings)

    with unit_of_work(session_factory) as session:
        first = session.scalars(select(LlmBatch)).one()
        assert (first.completed_count, first.failed_count, first.collected_at is not None) == (2, 1, True)
        call = calls(session)[unlucky]
        assert call.state is CallState.queued and call.llm_batch_id is None and call.attempts == 1
        assert "scripted batch line failure" in (call.last_error or "")
        assert runs(session, unlucky) == []
        assert all(calls(session)[c].state in DONE for c in call_ids if c != unlucky)

    second = collect_batches(session_factory, provider, prompt, settings)
    [remote] = [fake_openai.batches[b] for b in fake_openai.batches if b != first.provider_batch_id]
    assert second.calls == 1 and [CustomId.parse(line["custom_id"]).call_id  # type: ignore[union-attr]
                                  for line in fake_openai.batch_lines(remote.id)] == [unlucky]
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert calls(session)[unlucky].state in DONE
        assert [run.status for run in runs(session, unlucky)] == [RunStatus.succeeded]


@pytest.mark.parametrize("outcome", ["expired", "failed"])
def test_an_expired_or_failed_batch_puts_its_unanswered_calls_back(
    outcome: str,
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    call_ids = store_calls(session_factory, 3)
    fake_openai.script_batches(BatchScript(progress=("in_progress",), outcome=outcome, answered=1))
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)

    with unit_of_work(session_factory) as session:
        batch = session.scalars(select(LlmBatch)).one()
        assert batch.status == outcome and batch.finished_at is not None
        states = [calls(session)[c].state for c in call_ids]
        back = [calls(session)[c] for c in call_ids if calls(session)[c].state is CallState.queued]
        stored = 1 if outcome == "expired" else 0
        assert sum(s in DONE for s in states) == stored and len(back) == 3 - stored
        assert all(c.llm_batch_id is None and c.attempts == 1 for c in back)
        expected = "batch_expired" if outcome == "expired" else "scripted validation failure"
        assert all(expected in (c.last_error or "") for c in back)

    # The next batch takes them, and this time they are answered.
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert all(calls(session)[c].state in DONE for c in call_ids)
        assert session.scalar(select(func.count()).select_from(ExtractionRun)) == 3


def test_a_cancelled_batch_puts_its_calls_back(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    call_ids = store_calls(session_factory, 2)
    fake_openai.script_batches(BatchScript(progress=("validating", "in_progress", "in_progress")))
    collect_batches(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        batch_id = session.scalars(select(LlmBatch.id)).one()
    assert cancel_batch(session_factory, provider, batch_id) == "cancelling"
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert session.get(LlmBatch, batch_id).status == "cancelled"  # type: ignore[union-attr]
        assert all(calls(session)[c].state is CallState.queued for c in call_ids)
        assert all("batch_cancelled" in (calls(session)[c].last_error or "") for c in call_ids)
    with pytest.raises(ConfigError):
        cancel_batch(session_factory, provider, batch_id)  # finished: nothing to cancel


def test_the_repair_round_is_a_synchronous_request_at_the_synchronous_price(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    [call_id] = store_calls(session_factory, 1)

    def fabricating(request: RecordedRequest) -> ScriptedReply:
        answer: dict[str, Any] = extraction_quoting(request.last_user_text)
        answer["action_items"][0]["evidence"][0]["quote"] = "I will refund you 300 dollars today"
        return extraction_reply(answer, prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS)

    fake_openai.batch_responder = fabricating
    # The repair answer quotes the transcript shown in the conversation's first user message.
    fake_openai.responder = lambda request: extraction_reply(
        extraction_quoting(request.contents("user")[0]), prompt_tokens=PROMPT_TOKENS,
        completion_tokens=COMPLETION_TOKENS,
    )
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)

    [repair] = fake_openai.requests
    assert "300 dollars" in json.dumps(repair.messages)  # the model is told what was not found
    with unit_of_work(session_factory) as session:
        [run] = runs(session, call_id)
        assert run.llm_calls == 2 and calls(session)[call_id].state is CallState.ready_for_review
        one_answer = (1_000 * 1.0 + 200 * 4.0) / 1e6
        assert run.cost_usd == pytest.approx(0.5 * one_answer + one_answer)


def test_an_unusable_batch_answer_is_re_asked_synchronously(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    [call_id] = store_calls(session_factory, 1)
    fake_openai.batch_responder = lambda request: completion_reply('{"summary": [')
    fake_openai.responder = lambda request: extraction_reply(extraction_quoting(request.contents("user")[0]))
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)
    [reask] = fake_openai.requests
    assert "could not be used" in reask.last_user_text
    with unit_of_work(session_factory) as session:
        assert calls(session)[call_id].state is CallState.ready_for_review
        assert runs(session, call_id)[0].llm_calls == 2


def test_a_transient_failure_leaves_every_step_for_the_next_pass(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 2)
    fake_openai.fail_api("batches.create", error_reply(503, "busy", error_type="server_error"))
    summary = collect_batches(session_factory, provider, prompt, settings)
    assert summary.submitted == [] and fake_openai.batches == {}
    with unit_of_work(session_factory) as session:
        batch = session.scalars(select(LlmBatch)).one()
        assert batch.status == "preparing" and batch.input_file_id is not None and "503" in (batch.last_error or "")
        assert batch.lease_until is None

    # The next pass finds the uploaded file, sees no batch made from it, and creates one.
    retried = collect_batches(session_factory, provider, prompt, settings)
    assert retried.submitted == [batch.id] and len(fake_openai.batches) == 1
    assert len(fake_openai.files) == 1  # not uploaded twice

    fake_openai.fail_api("batches.retrieve", error_reply(500, "oops", error_type="server_error"))
    poll_batches(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert "500" in (session.scalars(select(LlmBatch.last_error)).one() or "")
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert all(c.state in DONE for c in calls(session).values())


def test_a_collector_killed_after_creating_the_batch_adopts_it(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 2)
    # The steps of a pass, up to a batch created but not recorded (the process died there).
    assigned = batch_module._assign_waiting_calls(session_factory, provider, prompt, settings)
    assert assigned is not None
    batch_id, payload, _ = assigned
    client = batch_module.BatchClient(provider.client(), provider.model)
    file_id = client.upload("lost.jsonl", payload)
    batch_module._update_batch(session_factory, batch_id, input_file_id=file_id)
    created = client.create(file_id, endpoint="/v1/chat/completions", completion_window="24h", label=str(batch_id))

    summary = collect_batches(session_factory, provider, prompt, settings)
    assert summary.submitted == [batch_id] and list(fake_openai.batches) == [created.id]
    with unit_of_work(session_factory) as session:
        assert session.get(LlmBatch, batch_id).provider_batch_id == created.id  # type: ignore[union-attr]


def test_a_collector_killed_before_uploading_rebuilds_the_same_file(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 2)
    assigned = batch_module._assign_waiting_calls(session_factory, provider, prompt, settings)
    assert assigned is not None
    collect_batches(session_factory, provider, prompt, settings)
    [remote] = fake_openai.batches.values()
    assert sorted(fake_openai.files[remote.input_file_id].splitlines()) == sorted(assigned[1].splitlines())


class PollerKilled(Exception):
    pass


def test_a_poller_killed_between_storing_and_releasing_stores_nothing_twice(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call_ids = store_calls(session_factory, 3)
    fake_openai.script_batches(BatchScript(progress=()))
    collect_batches(session_factory, provider, prompt, settings)
    real_leave = batch_module._leave_batch

    def dies_after_the_first(factory: sessionmaker[Session], batch_id: int, call_id: str) -> None:
        real_leave(factory, batch_id, call_id)
        raise PollerKilled

    monkeypatch.setattr(batch_module, "_leave_batch", dies_after_the_first)
    with pytest.raises(PollerKilled):
        poll_batches(session_factory, provider, prompt, settings)
    monkeypatch.setattr(batch_module, "_leave_batch", real_leave)
    # The dead poller's lease is released by its `finally`; a hard kill would wait for it to run out.
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        for call_id in call_ids:
            assert [run.status for run in runs(session, call_id)] == [RunStatus.succeeded]
            assert calls(session)[call_id].state in DONE


def test_a_held_lease_keeps_a_second_poller_off_the_batch(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 1)
    collect_batches(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        batch = session.scalars(select(LlmBatch)).one()
        batch.lease_until = utcnow() + timedelta(minutes=5)
    assert poll_batches(session_factory, provider, prompt, settings).polled == 0
    with unit_of_work(session_factory) as session:
        session.scalars(select(LlmBatch)).one().lease_until = utcnow() - timedelta(seconds=1)  # holder died
    assert poll_batches(session_factory, provider, prompt, settings).polled == 1


def test_a_replaced_transcript_drops_the_old_answer(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    [call_id] = store_calls(session_factory, 1)
    collect_batches(session_factory, provider, prompt, settings)
    changed = make_transcript([*CARD_CALL_LINES[:-1], (Role.customer, "No, that's all, thank you very much.")])
    with unit_of_work(session_factory) as session:
        store_transcript(session, changed, tenant="acme", external_id="batch-000", replace=True, llm_mode=LlmMode.batch)
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        call = calls(session)[call_id]
        # The old answer was paid for: recorded with its cost, never as the call's extraction.
        [unused] = runs(session, call_id)
        assert call.state is CallState.queued and call.current_run_id is None
        assert unused.status is RunStatus.interrupted and unused.prompt_tokens > 0
        assert "not used" in (unused.error or "")
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert calls(session)[call_id].state in DONE
        assert sorted(run.status for run in runs(session, call_id)) == [RunStatus.interrupted, RunStatus.succeeded]


def test_workers_and_the_reconciler_leave_batch_calls_to_the_batch(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    [call_id] = store_calls(session_factory, 1)
    outcome = process_call(session_factory, call_id, provider, prompt, defer_batch_calls=True)
    assert outcome.skipped and outcome.state is CallState.queued and fake_openai.requests == []
    with unit_of_work(session_factory) as session:
        assert claim_stuck_calls(session, stuck_after_seconds=0, now=utcnow() + timedelta(days=2)) == []
        assert calls(session)[call_id].attempts == 0


def test_batch_mode_needs_the_openai_provider(session_factory: sessionmaker[Session], prompt: PromptTemplate) -> None:
    assert resolve_llm_mode(Settings(llm_mode="batch", llm_provider="openai"), None) is LlmMode.batch
    assert resolve_llm_mode(Settings(llm_provider="openai"), "batch") is LlmMode.batch
    assert resolve_llm_mode(Settings(llm_mode="batch", llm_provider="openai"), "sync") is LlmMode.sync
    with pytest.raises(ConfigError, match="openai provider"):
        resolve_llm_mode(Settings(llm_provider="heuristic"), "batch")
    with pytest.raises(ConfigError, match="unknown mode"):
        resolve_llm_mode(Settings(), "later")
    with pytest.raises(ConfigError, match="openai provider"):
        collect_batches(session_factory, HeuristicProvider(), prompt, Settings())


def test_list_batches_reports_progress(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 2)
    collect_batches(session_factory, provider, prompt, settings)
    poll_batches(session_factory, provider, prompt, settings)  # validating -> in_progress
    with unit_of_work(session_factory) as session:
        [overview] = list_batches(session)
    assert overview.status == BatchStatus.in_progress.value and overview.waiting_calls == 2
    assert overview.calls == overview.requests == 2 and overview.completed == 1
    assert overview.as_json()["provider_batch_id"] == overview.provider_batch_id


def runner_output(payload: bytes, skip_call: str) -> str:
    """What `vllm run-batch` writes for an input file: one OpenAI-format result line per request."""
    lines = []
    for number, raw in enumerate(payload.decode().splitlines()):
        request = json.loads(raw)
        if request["custom_id"].startswith(skip_call):
            continue
        body = json.loads(quoting(RecordedRequest("POST", request["url"], {}, request["body"])).body)
        lines.append(json.dumps({"id": f"vllm-{number}", "custom_id": request["custom_id"],
                                 "response": {"status_code": 200, "request_id": f"r{number}", "body": body},
                                 "error": None}))
    return "\n".join(lines) + "\n"


def test_an_offline_runner_s_output_is_imported_like_a_provider_batch(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    call_ids = store_calls(session_factory, 3)
    exported = batch_module.export_batch(session_factory, provider, prompt, settings)
    assert exported is not None
    batch_id, payload = exported
    assert len(payload.splitlines()) == 3 and fake_openai.api_requests == []  # nothing sent anywhere
    # While exported, the collector and the poller leave the batch alone.
    assert collect_batches(session_factory, provider, prompt, settings).calls == 0
    assert poll_batches(session_factory, provider, prompt, settings).finished == 0

    output = runner_output(payload, skip_call=call_ids[2])
    summary = batch_module.import_batch_results(session_factory, provider, prompt, settings, batch_id, [output])
    assert (summary.stored, summary.put_back, summary.collected) == (2, 1, [batch_id])
    again = batch_module.import_batch_results(session_factory, provider, prompt, settings, batch_id, [output])
    assert again.stored == 0  # every call of the batch was handled: nothing is stored twice
    with unit_of_work(session_factory) as session:
        batch = session.get(LlmBatch, batch_id)
        assert batch is not None and batch.status == "completed" and batch.completed_count == 2
        assert [calls(session)[c].state in DONE for c in call_ids] == [True, True, False]
        assert calls(session)[call_ids[2]].llm_batch_id is None  # waits for the next batch
        assert session.scalar(select(func.count()).select_from(ExtractionRun)) == 2

    # A batch sent to the provider's Batch API is not importable.
    sent = collect_batches(session_factory, provider, prompt, settings).submitted
    with pytest.raises(ConfigError, match="not exported"):
        batch_module.import_batch_results(session_factory, provider, prompt, settings, sent[0], [output])


def test_a_batch_the_provider_refuses_sends_its_calls_to_the_next_one(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    call_ids = store_calls(session_factory, 2)
    fake_openai.fail_api("batches.create", error_reply(400, "endpoint not allowed for this key"))
    summary = collect_batches(session_factory, provider, prompt, settings)
    assert summary.submitted == [] and len(summary.failed) == 1
    poll_batches(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        refused = session.get(LlmBatch, summary.failed[0])
        assert refused is not None and refused.status == "failed" and refused.collected_at is not None
        for call_id in call_ids:
            call = calls(session)[call_id]
            # Refused as a whole (a setup error): no call's fault, no attempt spent (every pass spent one, and
            # a server without a Batch API failed every waiting call in a few passes).
            assert call.state is CallState.queued and call.attempts == 0
            assert "endpoint not allowed" in (call.last_error or "")
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert all(calls(session)[c].state in DONE for c in call_ids)


def test_calls_out_of_attempts_fail_with_the_last_error(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    [call_id] = store_calls(session_factory, 1)
    limited = settings.model_copy(update={"max_call_attempts": 2})
    fake_openai.script_batches(*[BatchScript(progress=(), errored=lambda _: True)] * 2)
    for _ in range(2):
        collect_batches(session_factory, provider, prompt, limited)
        poll_until_collected(session_factory, provider, prompt, limited)
    with unit_of_work(session_factory) as session:
        call = calls(session)[call_id]
        assert call.state is CallState.failed and call.attempts == 2
        assert "gave up after 2 batch attempts" in (call.last_error or "")
        # Downstream systems hear of it exactly as of a synchronous failure: one call.failed event.
        [(event_type, record)] = hand_off_events(session, call_id)
        assert event_type == "call.failed" and record.state == "failed"
        assert record.failure is not None and "gave up after 2 batch attempts" in record.failure
    assert collect_batches(session_factory, provider, prompt, limited).calls == 0
    poll_until_collected(session_factory, provider, prompt, limited)
    with unit_of_work(session_factory) as session:
        assert len(hand_off_events(session, call_id)) == 1  # later passes write no second event


def test_a_call_too_large_for_a_batch_file_fails_with_a_hand_off_event(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    [call_id] = store_calls(session_factory, 1)
    summary = collect_batches(session_factory, provider, prompt, settings.model_copy(update={"batch_max_bytes": 100}))
    assert summary.calls == 0 and summary.submitted == [] and fake_openai.batches == {}
    with unit_of_work(session_factory) as session:
        call = calls(session)[call_id]
        assert call.state is CallState.failed and "too large for one batch file" in (call.last_error or "")
        [(event_type, record)] = hand_off_events(session, call_id)
        assert event_type == "call.failed" and record.state == "failed"
        assert record.failure is not None and "too large for one batch file" in record.failure


def test_a_refused_status_request_is_recorded_and_does_not_stop_the_other_batches(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    store_calls(session_factory, 2)
    collect_batches(session_factory, provider, prompt, settings.model_copy(update={"batch_max_requests": 1}))
    fake_openai.fail_api("batches.retrieve", error_reply(401, "key revoked"))
    summary = poll_batches(session_factory, provider, prompt, settings)
    assert summary.polled == 1  # the second batch was still polled
    with unit_of_work(session_factory) as session:
        first, second = session.scalars(select(LlmBatch).order_by(LlmBatch.id)).all()
        assert "401" in (first.last_error or "") and first.status == "validating" and first.lease_until is None
        assert second.last_error is None and second.status == "in_progress"
    poll_until_collected(session_factory, provider, prompt, settings)  # the key works again
    with unit_of_work(session_factory) as session:
        assert all(c.state in DONE for c in calls(session).values())


def test_a_batch_the_provider_no_longer_has_is_released_by_the_operator(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    # A 404 for the batch (deleted, another project): polled for ever, and cancel said "nothing to cancel".
    call_ids = store_calls(session_factory, 2)
    fake_openai.script_batches(BatchScript(progress=("in_progress",) * 50))
    [batch_id] = collect_batches(session_factory, provider, prompt, settings).submitted
    fake_openai.fail_api("batches.retrieve", *[error_reply(404, "No batch found with id")] * 5)
    poll_batches(session_factory, provider, prompt, settings)
    fake_openai.fail_api("batches.cancel", error_reply(404, "No batch found with id"))
    with pytest.raises(PermanentError, match=r"batch [-\w]+: not found on .* \(404\)"):
        cancel_batch(session_factory, provider, batch_id, settings=settings)
    assert "released" in cancel_batch(session_factory, provider, batch_id, settings=settings, release=True)
    with unit_of_work(session_factory) as session:
        batch = session.get(LlmBatch, batch_id)
        assert batch is not None and batch.collected_at is not None and batch.status == "cancelled"
        for call_id in call_ids:
            call = calls(session)[call_id]
            assert (call.state, call.llm_batch_id, call.attempts) == (CallState.queued, None, 0)
    fake_openai.script_batches(BatchScript(progress=()))
    collect_batches(session_factory, provider, prompt, settings)
    poll_until_collected(session_factory, provider, prompt, settings)
    with unit_of_work(session_factory) as session:
        assert all(calls(session)[c].state in DONE for c in call_ids)
    # A collected batch has nothing left to release.
    with pytest.raises(ConfigError, match="nothing to cancel"):
        cancel_batch(session_factory, provider, batch_id, settings=settings)


def test_an_answer_arriving_after_the_call_was_processed_again_is_paid_not_stored(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    from app.pipeline.batch import leave_any_batch

    [call_id] = store_calls(session_factory, 1)
    fake_openai.script_batches(BatchScript(progress=("in_progress",)))
    collect_batches(session_factory, provider, prompt, settings)
    # `postcall reprocess` with another model, while the batch runs: the call leaves the batch first.
    other = OpenAIProvider(settings.model_copy(update={"openai_model": "other-model"}))
    fake_openai.responder = quoting
    assert leave_any_batch(session_factory, call_id) is not None
    newer = process_call(session_factory, call_id, other, prompt, reprocess_reviewed=True)
    summary_runs = []
    for _ in range(5):
        summary = poll_batches(session_factory, provider, prompt, settings)
        summary_runs.append(summary)
    with unit_of_work(session_factory) as session:
        call = calls(session)[call_id]
        assert call.current_run_id == newer.run_id  # the late answer did not land on top
        statuses = sorted((run.status, run.model) for run in runs(session, call_id))
        assert statuses == [(RunStatus.interrupted, DEFAULT_MODEL), (RunStatus.succeeded, "other-model")]
    assert sum(summary.unused for summary in summary_runs) == 1 and sum(s.stored for s in summary_runs) == 0


@pytest.mark.parametrize("when", ["before its answer is read", "while its answer is verified"])
def test_a_call_taken_out_of_the_batch_during_the_poll_pass_keeps_its_newer_result(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """`postcall reprocess` (leave the batch, process with another model) arriving after the pass listed the
    batch's calls: the batch's answer is recorded as paid and unused, never stored over the newer result."""
    from app.pipeline.batch import leave_any_batch

    [call_id] = store_calls(session_factory, 1)
    fake_openai.script_batches(BatchScript(progress=()))
    collect_batches(session_factory, provider, prompt, settings)
    other = OpenAIProvider(settings.model_copy(update={"openai_model": "other-model"}))
    fake_openai.responder = quoting
    newer: list[int | None] = []

    def reprocess_now() -> None:
        if newer:
            return
        assert leave_any_batch(session_factory, call_id) is not None
        newer.append(process_call(session_factory, call_id, other, prompt, reprocess_reviewed=True).run_id)

    if when == "before its answer is read":
        real_read = batch_module._read_results

        def read_then_reprocess(client: Any, batch: LlmBatch) -> Any:
            lines = real_read(client, batch)
            reprocess_now()
            return lines

        monkeypatch.setattr(batch_module, "_read_results", read_then_reprocess)
    else:
        real_extract = OpenAIProvider.extract_from_answers

        def extract_then_reprocess(self: OpenAIProvider, *args: Any, **kwargs: Any) -> Any:
            result = real_extract(self, *args, **kwargs)
            reprocess_now()
            return result

        monkeypatch.setattr(OpenAIProvider, "extract_from_answers", extract_then_reprocess)
    summary = poll_batches(session_factory, provider, prompt, settings)
    assert newer and newer[0] is not None
    assert summary.stored == 0 and summary.unused == 1 and summary.collected
    with unit_of_work(session_factory) as session:
        call = calls(session)[call_id]
        assert call.current_run_id == newer[0] and call.llm_batch_id is None
        statuses = sorted((run.status, run.model) for run in runs(session, call_id))
        assert statuses == [(RunStatus.interrupted, DEFAULT_MODEL), (RunStatus.succeeded, "other-model")]


def test_answers_are_stored_as_the_prompt_and_model_the_batch_was_sent_with(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    [call_id] = store_calls(session_factory, 1)
    fake_openai.script_batches(BatchScript(progress=()))
    collect_batches(session_factory, provider, prompt, settings)
    # The model setting changed between the collector's pass and the poller's.
    changed = OpenAIProvider(settings.model_copy(update={"openai_model": "new-model"}))
    poll_until_collected(session_factory, changed, prompt, settings)
    with unit_of_work(session_factory) as session:
        [run] = runs(session, call_id)
        assert (run.status, run.model, run.prompt_version) == (RunStatus.succeeded, DEFAULT_MODEL, "extract-v1")


def test_a_request_answered_twice_keeps_the_answer_over_the_error() -> None:
    from app.llm.openai_batch import parse_result_lines

    good = {"custom_id": "x", "response": {"status_code": 200, "body": {"choices": []}}, "error": None}
    bad = {"custom_id": "x", "response": None, "error": {"code": "server_error", "message": "boom"}}
    for order in ((good, bad), (bad, good)):
        text = "\n".join(json.dumps(line) for line in order)
        assert parse_result_lines(text)["x"].body == {"choices": []}


def test_importing_a_file_that_answers_no_request_of_the_batch_leaves_it_open(
    session_factory: sessionmaker[Session],
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    from app.pipeline.batch import export_batch, import_batch_results

    [call_id] = store_calls(session_factory, 1)
    exported = export_batch(session_factory, provider, prompt, settings)
    assert exported is not None
    batch_id, requests = exported
    # The request file itself (its lines name this batch, none carries an answer), and another batch's lines.
    with pytest.raises(ConfigError, match="the request file"):
        import_batch_results(session_factory, provider, prompt, settings, batch_id, [requests.decode()])
    other = requests.decode().replace(f".b{batch_id}.", f".b{batch_id + 7}.")
    with pytest.raises(ConfigError, match=f"answer batch {batch_id + 7}"):
        import_batch_results(session_factory, provider, prompt, settings, batch_id, [other])
    with unit_of_work(session_factory) as session:
        batch = session.get(LlmBatch, batch_id)
        assert batch is not None and batch.collected_at is None and batch.status == "exported"
        assert calls(session)[call_id].attempts == 0
    # An exported batch whose output is lost is released by a plain cancel.
    assert "released" in cancel_batch(session_factory, provider, batch_id, settings=settings)
    with unit_of_work(session_factory) as session:
        assert calls(session)[call_id].llm_batch_id is None


def test_an_answer_wins_over_an_error_across_the_files_of_an_import() -> None:
    from app.pipeline.batch import _lines_by_call

    custom_id = str(CustomId.for_request("c" * 32, "f" * 64, 3, 1, 1))
    good = json.dumps({"custom_id": custom_id, "response": {"status_code": 200, "body": {"choices": []}}})
    bad = json.dumps({"custom_id": custom_id, "response": None, "error": {"code": "server_error", "message": "x"}})
    for files in ([good, bad], [bad, good]):
        [lines] = _lines_by_call(3, files).values()
        assert lines[1].body == {"choices": []}
