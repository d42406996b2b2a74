"""Storing transcripts: created, identical re-ingest is a no-op, changed content needs replace."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.errors import DecidedCallError, DuplicateCallError, InvalidInputError
from app.models import Call, CallState, ReviewEvent, Utterance
from app.pipeline.store import Actor, StoredCall, StoreStatus, store_transcript
from app.schemas.transcript import Role, Transcript
from tests.support.threads import run_at_once
from tests.support.transcripts import CARD_CALL_LINES, make_transcript


def _count(factory: sessionmaker[Session], model: type) -> int:
    with unit_of_work(factory) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_store_creates_queued_call_with_utterances(session_factory: sessionmaker[Session]) -> None:
    transcript = make_transcript()
    with unit_of_work(session_factory) as session:
        stored = store_transcript(session, transcript, tenant="acme", external_id="card-001")
    assert stored.status is StoreStatus.created
    with unit_of_work(session_factory) as session:
        call = session.get(Call, stored.call_id)
        assert call is not None
        assert call.state is CallState.queued
        assert call.transcript_hash == transcript.content_hash()
        texts = session.scalars(select(Utterance.text).where(Utterance.call_id == call.id).order_by(Utterance.index))
        assert list(texts) == [text for _, text in CARD_CALL_LINES]


def test_identical_reingest_is_noop(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        first = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
    with unit_of_work(session_factory) as session:
        second = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
    assert second.status is StoreStatus.unchanged
    assert second.call_id == first.call_id
    assert _count(session_factory, Call) == 1
    assert _count(session_factory, Utterance) == len(CARD_CALL_LINES)


def test_changed_content_refused_without_replace(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
    changed = make_transcript([*CARD_CALL_LINES, (Role.agent, "Goodbye!")])
    with pytest.raises(DuplicateCallError, match="--replace"), unit_of_work(session_factory) as session:
        store_transcript(session, changed, tenant="acme", external_id="card-001")
    # Nothing of the refused version was stored.
    assert _count(session_factory, Utterance) == len(CARD_CALL_LINES)


def test_replace_overwrites_and_audits(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        first = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
    changed = make_transcript([*CARD_CALL_LINES, (Role.agent, "Goodbye!")])
    with unit_of_work(session_factory) as session:
        replaced = store_transcript(session, changed, tenant="acme", external_id="card-001", replace=True)
    assert replaced.status is StoreStatus.replaced
    assert replaced.call_id == first.call_id
    assert _count(session_factory, Utterance) == len(CARD_CALL_LINES) + 1
    with unit_of_work(session_factory) as session:
        actions = session.scalars(select(ReviewEvent.action)).all()
    assert actions == ["transcript_replaced"]


def test_same_external_id_in_two_tenants_are_two_calls(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        a = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
        b = store_transcript(session, make_transcript(), tenant="globex", external_id="card-001")
    assert a.call_id != b.call_id
    assert _count(session_factory, Call) == 2


@pytest.mark.parametrize("decided", [CallState.approved, CallState.rejected])
def test_a_decided_call_refuses_replacement_and_correction(
    session_factory: sessionmaker[Session], decided: CallState
) -> None:
    with unit_of_work(session_factory) as session:
        first = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
        call = session.get(Call, first.call_id)
        assert call is not None
        call.state = decided
    changed = make_transcript([*CARD_CALL_LINES, (Role.agent, "Goodbye!")])
    with pytest.raises(DecidedCallError, match="reopens"), unit_of_work(session_factory) as session:
        store_transcript(session, changed, tenant="acme", external_id="card-001", replace=True)
    assert _count(session_factory, Utterance) == len(CARD_CALL_LINES)
    assert _count(session_factory, ReviewEvent) == 0
    # Resubmitting the identical transcript stays a harmless no-op.
    with unit_of_work(session_factory) as session:
        again = store_transcript(session, make_transcript(), tenant="acme", external_id="card-001", replace=True)
    assert again.status is StoreStatus.unchanged


def test_a_replacement_names_its_actor(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        store_transcript(session, make_transcript(), tenant="acme", external_id="card-001")
    changed = make_transcript([*CARD_CALL_LINES, (Role.agent, "Goodbye!")])
    with unit_of_work(session_factory) as session:
        store_transcript(session, changed, tenant="acme", external_id="card-001", replace=True,
                         actor=Actor("cli:ops", None))
    with unit_of_work(session_factory) as session:
        (event,) = session.scalars(select(ReviewEvent)).all()
        assert (event.action, event.actor_name) == ("transcript_replaced", "cli:ops")


def test_concurrent_first_submissions_store_one_call(session_factory: sessionmaker[Session]) -> None:
    # The same new call handed over by several requests at once (an integrator's retries), two of them with
    # other content: one insert wins; the others wait for it and answer as for any resubmission.
    contents = [0, 0, 0, 0, 0, 0, 1, 2]
    outcomes: list[tuple[int, StoredCall | DuplicateCallError]] = []
    lock = threading.Lock()

    def transcript_of(content: int) -> Transcript:
        extra = [(Role.agent, f"One more thing, number {content}.")] if content else []
        return make_transcript([*CARD_CALL_LINES, *extra])

    def submit() -> None:
        with lock:
            content = contents.pop()
        try:
            with unit_of_work(session_factory) as session:
                stored = store_transcript(session, transcript_of(content), tenant="acme", external_id="race-1")
            outcome: StoredCall | DuplicateCallError = stored
        except DuplicateCallError as exc:
            outcome = exc
        with lock:
            outcomes.append((content, outcome))

    run_at_once(8, submit)
    created = [(content, outcome) for content, outcome in outcomes
               if isinstance(outcome, StoredCall) and outcome.status is StoreStatus.created]
    assert len(created) == 1
    winner, call = created[0]
    for content, outcome in outcomes:
        if content == winner:  # the same content again: the call as stored
            assert isinstance(outcome, StoredCall) and outcome.call_id == call.call_id, outcome
        else:  # other content without replace: refused, nothing changed
            assert isinstance(outcome, DuplicateCallError), outcome
    assert _count(session_factory, Call) == 1
    with unit_of_work(session_factory) as session:
        stored_hash = session.scalar(select(Call.transcript_hash))
        utterances = session.scalar(select(func.count()).select_from(Utterance))
    assert stored_hash == transcript_of(winner).content_hash()
    assert utterances == len(transcript_of(winner).utterances)


def test_utterances_are_stored_as_given(session_factory: sessionmaker[Session]) -> None:
    # Every column of every utterance, values a JSON round trip could alter among them: quotes, backslashes,
    # newlines, non-Latin text and emoji, missing times and role confidence, fractional seconds.
    transcript = make_transcript([
        (Role.agent, 'He said "refund" \\ twice,\nthen: {"a": [1]}'),
        (Role.customer, "Ça coûte 30 € — مرحبا — 🙂"),
        (Role.agent, "ok"),
    ])
    utterances = [u.model_copy(update=changes) for u, changes in zip(transcript.utterances, [
        {"start": 0.125, "end": 3.5, "role_confidence": 0.75},
        {"start": None, "end": None, "role_confidence": None},
        {"start": 1e-3, "end": 123456.789, "role_confidence": 1.0},
    ], strict=True)]
    transcript = transcript.model_copy(update={"utterances": utterances})
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, transcript, tenant="acme", external_id="columns").call_id
    with unit_of_work(session_factory) as session:
        rows = session.execute(
            select(Utterance.index, Utterance.speaker, Utterance.role, Utterance.role_confidence, Utterance.start_s,
                   Utterance.end_s, Utterance.text).where(Utterance.call_id == call_id).order_by(Utterance.index)
        ).all()
    assert [tuple(row) for row in rows] == [
        (u.index, u.speaker, u.role.value, u.role_confidence, u.start, u.end, u.text) for u in transcript.utterances
    ]


@pytest.mark.parametrize("external_id", ["", "  ", "\u200b\u2060"])
def test_a_blank_external_id_is_refused(session_factory: sessionmaker[Session], external_id: str) -> None:
    with pytest.raises(InvalidInputError, match="external id is empty"), unit_of_work(session_factory) as session:
        store_transcript(session, make_transcript(), tenant="acme", external_id=external_id)
    assert _count(session_factory, Call) == 0


def test_an_external_id_is_stored_as_it_is_looked_up(session_factory: sessionmaker[Session]) -> None:
    # " A-17 " was a call nobody could find by "A-17"; a line break in an id broke every line printing it.
    with unit_of_work(session_factory) as session:
        stored = store_transcript(session, make_transcript(), tenant="acme", external_id="  A-17 ")
    assert stored.external_id == "A-17"
    with unit_of_work(session_factory) as session:
        again = store_transcript(session, make_transcript(), tenant="acme", external_id="A-17")
    assert (again.call_id, again.status.value) == (stored.call_id, "unchanged")
    for broken in ("a\nb", "a\tb", "a\u200bb"):
        with pytest.raises(InvalidInputError, match="line break, a tab"), unit_of_work(session_factory) as session:
            store_transcript(session, make_transcript(), tenant="acme", external_id=broken)
    assert _count(session_factory, Call) == 1



def test_a_waiting_call_submitted_again_with_replace_and_another_mode_takes_that_mode(
    session_factory: sessionmaker[Session],
) -> None:
    # A batch-mode call moved to sync by resubmitting it (`ingest --replace --mode sync`, the API's
    # replace=true&mode=sync) was answered "unchanged" and went on waiting for the batch for hours.
    from app.models import LlmMode

    transcript = make_transcript()
    with unit_of_work(session_factory) as session:
        first = store_transcript(session, transcript, tenant="acme", external_id="m1", llm_mode=LlmMode.batch)
        call = session.get(Call, first.call_id)
        assert call is not None
        call.llm_batch_id = 7  # in a batch that is still out
        call.state_changed_at = call.enqueued_at = datetime(2026, 1, 1, tzinfo=UTC)  # waiting for hours
    assert not first.needs_enqueue
    with unit_of_work(session_factory) as session:
        again = store_transcript(session, transcript, tenant="acme", external_id="m1", llm_mode=LlmMode.sync)
    assert again.status is StoreStatus.unchanged and again.llm_mode is LlmMode.batch  # no replace: as it was
    with unit_of_work(session_factory) as session:
        moved = store_transcript(session, transcript, tenant="acme", external_id="m1", llm_mode=LlmMode.sync,
                                 replace=True, actor=Actor("cli:ops"))
    assert moved.status is StoreStatus.updated and moved.llm_mode is LlmMode.sync and moved.needs_enqueue
    with unit_of_work(session_factory) as session:
        call = session.get(Call, first.call_id)
        assert call is not None
        assert (call.llm_mode, call.llm_batch_id, call.state) == (LlmMode.sync, None, CallState.queued)
        # Its wait counts from the switch: not taken for stuck by the reconciler, nor hours old on /metrics.
        assert call.state_changed_at > datetime(2026, 1, 2, tzinfo=UTC) and call.enqueued_at == call.state_changed_at
        event = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == call.id)).one()
        assert (event.action, event.actor_name, event.before, event.after) == (
            "llm_mode_changed", "cli:ops", {"llm_mode": "batch"}, {"llm_mode": "sync"})
        call.state = CallState.processing
    # Once it is being processed (or done) the mode no longer matters: nothing to change.
    with unit_of_work(session_factory) as session:
        late = store_transcript(session, transcript, tenant="acme", external_id="m1", llm_mode=LlmMode.batch,
                                replace=True)
    assert late.status is StoreStatus.unchanged and late.llm_mode is LlmMode.sync


def test_a_mode_switch_asked_for_with_corrected_metadata_is_made_too(session_factory: sessionmaker[Session]) -> None:
    from app.models import LlmMode

    transcript = make_transcript()
    with unit_of_work(session_factory) as session:
        first = store_transcript(session, transcript, tenant="acme", external_id="m2", llm_mode=LlmMode.batch)
    corrected = make_transcript(agent_id="A-9")
    with unit_of_work(session_factory) as session:
        moved = store_transcript(session, corrected, tenant="acme", external_id="m2", llm_mode=LlmMode.sync,
                                 replace=True)
    assert (moved.status, moved.llm_mode, moved.mode_changed, moved.needs_enqueue) == (
        StoreStatus.updated, LlmMode.sync, True, True)
    with unit_of_work(session_factory) as session:
        call = session.get(Call, first.call_id)
        assert call is not None and (call.agent_id, call.llm_mode) == ("A-9", LlmMode.sync)
        actions = session.scalars(select(ReviewEvent.action).where(ReviewEvent.call_id == call.id)
                                  .order_by(ReviewEvent.id)).all()
    assert actions == ["metadata_corrected", "llm_mode_changed"]
