"""process_call with the `openai` provider against the local fake server: what gets STORED.

Repairs of fabricated quotes, invalid answers, rate limits across task retries, bad credentials,
accounting and redaction, asserted on the rows a reviewer and an analyst will read.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, Settings
from app.db.session import unit_of_work
from app.errors import ProviderTransientError
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, CallState, Claim, Evidence, ExtractionRun, RunStatus
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.schemas.transcript import Role
from app.worker.tasks import retry_countdown
from tests.support.fake_openai import (
    ANSWER_TIMEOUT,
    DEFAULT_MODEL,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    completion_reply,
    error_reply,
    extraction_reply,
    running_fake_openai,
)
from tests.support.transcripts import CARD_CALL_LINES, make_transcript

GROUNDED_STATUSES = {"exact", "normalized", "fuzzy", "relocated"}

# Utterance 3 of the card call reads "Sure, it's March 4th, 1985." and reaches the model redacted.
GOOD_ANSWER: dict[str, Any] = {
    "summary": [
        {
            "text": "Customer lost their debit card and asked for a replacement.",
            "evidence": [{"utterance": 1, "quote": "I lost my debit card yesterday and I need a replacement"}],
        },
        {
            "text": "Customer confirmed their date of birth.",
            "evidence": [{"utterance": 3, "quote": "Sure, it's [DOB_1]."}],
        },
    ],
    "action_items": [
        {
            "text": "Send a new debit card within 5 business days.",
            "owner": "agent",
            "due": "within 5 business days",
            "evidence": [{"utterance": 5, "quote": "I will send you a new debit card within 5 business days"}],
        }
    ],
    "reason": {
        "text": "Lost debit card.",
        "evidence": [{"utterance": 1, "quote": "I lost my debit card yesterday"}],
    },
    "outcome": {
        "text": "The lost card was blocked.",
        "evidence": [{"utterance": 4, "quote": "I have blocked the lost card"}],
    },
}


def fabricated_answer() -> dict[str, Any]:
    """The good answer with one action item resting on a quote the call never contained."""
    answer = copy.deepcopy(GOOD_ANSWER)
    answer["action_items"][0]["text"] = "Send a new debit card within 2 business days."
    answer["action_items"][0]["due"] = "within 2 business days"
    answer["action_items"][0]["evidence"] = [
        {"utterance": 5, "quote": "I will send you a new debit card within 2 business days"}
    ]
    return answer


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with running_fake_openai(monkeypatch) as server:
        yield server


@pytest.fixture
def settings() -> Settings:
    return Settings(openai_model=DEFAULT_MODEL, openai_max_attempts=1, openai_timeout=ANSWER_TIMEOUT)


@pytest.fixture
def provider(fake_openai: FakeOpenAIServer, settings: Settings) -> OpenAIProvider:
    return OpenAIProvider(settings)


@pytest.fixture
def prompt() -> PromptTemplate:
    return PromptTemplate.load(PROJECT_ROOT / "prompts", "extract-v1")


@pytest.fixture
def call_id(session_factory: sessionmaker[Session]) -> str:
    with unit_of_work(session_factory) as session:
        stored = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
        return stored.call_id


def stored_run(session: Session, call_id: str) -> ExtractionRun:
    return session.scalars(select(ExtractionRun).where(ExtractionRun.call_id == call_id)).one()


def stored_claims(session: Session, call_id: str) -> list[Claim]:
    return list(session.scalars(select(Claim).where(Claim.call_id == call_id).order_by(Claim.position)))


def action_item_evidence(session: Session, call_id: str) -> list[Evidence]:
    return list(
        session.scalars(select(Evidence).join(Claim).where(Claim.call_id == call_id, Claim.kind == "action_item"))
    )


def test_fabricated_quote_is_repaired_on_the_second_call(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    fake_openai.enqueue(
        extraction_reply(fabricated_answer(), prompt_tokens=1000, completion_tokens=200),
        extraction_reply(GOOD_ANSWER, prompt_tokens=1400, completion_tokens=210),
    )

    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.ready_for_review
    assert outcome.ungrounded == 0
    assert len(fake_openai.requests) == 2
    repair_request = fake_openai.requests[1]
    assert "within 2 business days" in repair_request.last_user_text
    with unit_of_work(session_factory) as session:
        run = stored_run(session, call_id)
        assert run.status is RunStatus.succeeded
        assert run.llm_calls == 2
        assert run.prompt_tokens == 2400
        assert run.raw_response == json.dumps(GOOD_ANSWER)
        claims = stored_claims(session, call_id)
        assert {claim.grounding_status for claim in claims} == {"grounded"}
        [item] = [claim for claim in claims if claim.kind == "action_item"]
        assert item.due == "within 5 business days"
        assert all(ev.status in GROUNDED_STATUSES for ev in action_item_evidence(session, call_id))


def test_quote_that_stays_fabricated_is_stored_flagged(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    fake_openai.enqueue(extraction_reply(fabricated_answer()), extraction_reply(fabricated_answer()))

    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.needs_attention
    assert outcome.ungrounded == 1
    assert len(fake_openai.requests) == 2  # one repair round, never more
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        assert call is not None
        assert call.state is CallState.needs_attention
        run = stored_run(session, call_id)
        assert run.status is RunStatus.succeeded
        assert run.llm_calls == 2
        claims = stored_claims(session, call_id)
        [item] = [claim for claim in claims if claim.kind == "action_item"]
        assert item.grounding_status == "ungrounded"
        assert item.text == "Send a new debit card within 2 business days."  # kept for the reviewer
        assert [ev.status for ev in action_item_evidence(session, call_id)] == ["ungrounded"]
        others = [claim for claim in claims if claim.kind != "action_item"]
        assert others
        assert {claim.grounding_status for claim in others} == {"grounded"}


def test_malformed_twice_fails_the_run_with_reason_and_raw(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    fake_openai.enqueue(completion_reply('{"summary": [{"text": '), completion_reply('{"summary": oops}'))

    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.failed
    with unit_of_work(session_factory) as session:
        run = stored_run(session, call_id)
        assert run.status is RunStatus.failed
        assert run.error is not None
        assert "malformed JSON" in run.error
        assert run.raw_response == '{"summary": oops}'
        # What the two unusable answers cost is still accounted for (100 + 20 tokens each by default).
        assert (run.llm_calls, run.prompt_tokens, run.completion_tokens) == (2, 200, 40)
        assert run.cost_usd > 0
        call = session.get(Call, call_id)
        assert call is not None
        assert call.state is CallState.failed
        assert call.last_error is not None
        assert "malformed JSON" in call.last_error
        assert stored_claims(session, call_id) == []


def test_rate_limit_then_success_across_task_retries(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    fake_openai.enqueue(error_reply(429, "Rate limit reached", headers={"retry-after": "12"}))

    # First delivery of the task: the call goes back to queued, nothing is stored as a result.
    with pytest.raises(ProviderTransientError) as caught:
        process_call(session_factory, call_id, provider, prompt)

    assert caught.value.retry_after == pytest.approx(12.0)
    countdown = retry_countdown(0, caught.value.retry_after, settings.task_backoff_base, settings.task_backoff_max)
    assert countdown >= 12.0  # the task waits at least as long as the server asked
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        assert call is not None
        assert call.state is CallState.queued
        assert call.last_error is not None
        assert "429" in call.last_error
        assert session.scalars(select(ExtractionRun).where(ExtractionRun.call_id == call_id)).all() == []

    # The retry succeeds.
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))
    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.ready_for_review
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        assert call is not None
        assert call.attempts == 2
        assert stored_run(session, call_id).status is RunStatus.succeeded


def test_what_an_interrupted_try_spent_is_kept_on_an_interrupted_run(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    # The first answer (billed) needs a repair round; the model server is overloaded for the repair.
    fake_openai.enqueue(
        extraction_reply(fabricated_answer(), prompt_tokens=1500, completion_tokens=300),
        error_reply(503, "overloaded"),
    )
    with pytest.raises(ProviderTransientError):
        process_call(session_factory, call_id, provider, prompt)
    with unit_of_work(session_factory) as session:
        (interrupted,) = session.scalars(select(ExtractionRun).where(ExtractionRun.call_id == call_id)).all()
        assert interrupted.status is RunStatus.interrupted
        assert (interrupted.prompt_tokens, interrupted.completion_tokens, interrupted.llm_calls) == (1500, 300, 1)
        assert interrupted.cost_usd > 0
        assert interrupted.error is not None and "503" in interrupted.error
        call = session.get(Call, call_id)
        assert call is not None and call.state is CallState.queued  # retried, not failed
        assert stored_claims(session, call_id) == []

    # The retry starts over and succeeds: both tries' tokens are on record, the claims on the good run.
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER, prompt_tokens=1400, completion_tokens=280))
    outcome = process_call(session_factory, call_id, provider, prompt)
    assert outcome.state is CallState.ready_for_review
    with unit_of_work(session_factory) as session:
        runs = session.scalars(
            select(ExtractionRun).where(ExtractionRun.call_id == call_id).order_by(ExtractionRun.id)
        ).all()
        assert [run.status for run in runs] == [RunStatus.interrupted, RunStatus.succeeded]
        assert sum(run.prompt_tokens for run in runs) == 2900
        assert {claim.run_id for claim in stored_claims(session, call_id)} == {runs[1].id}


def test_bad_key_fails_at_once(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    fake_openai.enqueue(error_reply(401, "Incorrect API key provided", code="invalid_api_key"))

    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.failed
    assert len(fake_openai.requests) == 1
    with unit_of_work(session_factory) as session:
        run = stored_run(session, call_id)
        assert run.status is RunStatus.failed
        assert run.error is not None
        assert "authentication failed" in run.error
        assert "OPENAI_API_KEY" in run.error
        assert run.provider == "openai"


def test_tokens_cost_and_timings_are_stored_on_the_run(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
) -> None:
    latency = 0.05
    fake_openai.enqueue(
        extraction_reply(GOOD_ANSWER, prompt_tokens=1800, cached_tokens=1024, completion_tokens=300, delay=latency)
    )

    process_call(session_factory, call_id, provider, prompt)

    expected_cost = (
        (1800 - 1024) * settings.price_input_per_mtok
        + 1024 * settings.price_cached_input_per_mtok
        + 300 * settings.price_output_per_mtok
    ) / 1_000_000
    with unit_of_work(session_factory) as session:
        run = stored_run(session, call_id)
        assert (run.provider, run.model, run.prompt_version) == ("openai", DEFAULT_MODEL, "extract-v1")
        assert (run.prompt_tokens, run.cached_tokens, run.completion_tokens) == (1800, 1024, 300)
        assert run.llm_calls == 1
        assert run.cost_usd == pytest.approx(expected_cost)
        assert run.llm_ms is not None
        assert run.llm_ms >= latency * 1000
        assert run.verify_ms is not None
        assert run.db_ms is not None
        assert run.total_ms is not None
        assert run.total_ms >= run.llm_ms


def test_personal_data_is_redacted_for_the_model_and_restored_in_evidence(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))

    process_call(session_factory, call_id, provider, prompt)

    sent = fake_openai.requests[0].last_user_text
    assert "1985" not in sent
    assert "[3] customer (Customer): Sure, it's [DOB_1]." in sent
    with unit_of_work(session_factory) as session:
        quotes = {
            ev.quote: ev.status
            for ev in session.scalars(select(Evidence).join(Claim).where(Claim.call_id == call_id))
        }
    assert quotes["Sure, it's March 4th, 1985."] == "exact"
    assert not any("[DOB_1]" in quote for quote in quotes)


# ----------------------------------------------------------------- failure paths found in review


def test_transcript_replaced_during_extraction_discards_the_stale_result(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:

    def replace_then_answer(_request: RecordedRequest) -> ScriptedReply:
        # The contact-center system re-sends a corrected transcript while the model is thinking.
        with unit_of_work(session_factory) as session:
            store_transcript(session, make_transcript([*CARD_CALL_LINES, (Role.agent, "Goodbye!")]),
                             tenant="acme", external_id="card-001", replace=True)
        return extraction_reply(GOOD_ANSWER)

    fake_openai.responder = replace_then_answer
    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.skipped
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        assert call is not None and call.state is CallState.queued  # the replacement's own task does the work
        assert session.scalars(select(ExtractionRun)).all() == []


def test_failed_reextraction_keeps_the_reviewed_state(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    import dataclasses


    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))
    assert process_call(session_factory, call_id, provider, prompt).state is CallState.ready_for_review
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).values(state=CallState.approved))

    fake_openai.enqueue(completion_reply("not json"), completion_reply("still not json"))
    outcome = process_call(
        session_factory, call_id, provider, dataclasses.replace(prompt, version="extract-v2"), reprocess_reviewed=True
    )

    assert outcome.error is not None and outcome.state is CallState.approved
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        statuses = session.scalars(select(ExtractionRun.status).order_by(ExtractionRun.id)).all()
    assert call is not None and call.state is CallState.approved and call.last_error == outcome.error
    assert statuses == [RunStatus.succeeded, RunStatus.failed]


def test_state_overwritten_by_a_duplicate_delivery_heals(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:

    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))
    first = process_call(session_factory, call_id, provider, prompt)
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).values(state=CallState.processing))  # what a racing claim left behind

    again = process_call(session_factory, call_id, provider, prompt)

    assert again.skipped and again.state is first.state is CallState.ready_for_review
    assert len(fake_openai.requests) == 1  # no second model call


def test_due_phrase_longer_than_the_column_is_rejected_not_crashed(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
) -> None:
    answer = copy.deepcopy(GOOD_ANSWER)
    answer["action_items"][0]["due"] = "within 5 business days " * 20
    fake_openai.enqueue(extraction_reply(answer), extraction_reply(answer))

    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.failed
    assert outcome.error is not None and "due" in outcome.error
    assert "String should have at most 200 characters" in fake_openai.requests[1].last_user_text


def test_the_transcript_redacted_for_the_model_is_not_scanned_again_to_mask_what_is_stored(
    session_factory: sessionmaker[Session],
    call_id: str,
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The quote "Sure, it's March 4th, 1985." is masked as the call page shows it, with the cue of the turn
    # before (a date of birth): from the detectors' pass made for the model's redacted view, not a second one.
    import app.privacy.mask as mask_module

    scans: list[int] = []
    real_detect_turns = mask_module.detect_turns

    def counted(texts: Any, **kwargs: Any) -> Any:
        scans.append(len(texts))
        return real_detect_turns(texts, **kwargs)

    monkeypatch.setattr(mask_module, "detect_turns", counted)
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))

    outcome = process_call(session_factory, call_id, provider, prompt)

    assert outcome.state is CallState.ready_for_review
    assert "[DOB_1]" in fake_openai.requests[0].last_user_text  # the model saw the redacted view
    with unit_of_work(session_factory) as session:
        quotes = {ev.quote: ev.quote_masked for ev in session.scalars(
            select(Evidence).join(Claim).where(Claim.call_id == call_id))}
    assert quotes["Sure, it's March 4th, 1985."] != "Sure, it's March 4th, 1985."
    assert "1985" not in quotes["Sure, it's March 4th, 1985."]
    assert scans == []
