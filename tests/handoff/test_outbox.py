"""Events are written in the transaction of the change they report, with the postcall.call.v1 record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import PermanentError
from app.handoff.outbox import envelope, event_json_schema, install_delivery_notifier, payload_json, webhook_body
from app.handoff.record import CallRecordV1, bounded, json_size, record_json_schema
from app.llm.base import ExtractionProvider, ProviderResult
from app.llm.heuristic import HeuristicProvider
from app.models import (
    Call,
    Claim,
    Evidence,
    ExtractionRun,
    OutboxEvent,
    ReviewEvent,
    UserRole,
    Utterance,
    WebhookDelivery,
)
from app.pipeline.calls import get_call
from app.pipeline.run import mark_failed, process_call
from app.pipeline.store import store_transcript
from app.review import CallDecision, ReviewConflictError, decide_call, delete_call, edit_case_note
from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.schemas.transcript import Role
from app.web.handoff_api import get_event_schema, get_record_schema
from tests.handoff.conftest import (
    CALL_START,
    events_of,
    make_principal,
    processed_call,
    prompt,
    register,
    store_call,
)
from tests.support.threads import run_at_once
from tests.support.transcripts import make_transcript


def test_processing_writes_call_processed_with_the_full_record(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    call_id = processed_call(session_factory, "rec-1", team="blue")
    (event,) = events_of(session_factory, call_id)
    assert event.type == "call.processed"
    assert event.event_id.startswith("msg_") and event.agent_id == "A-7" and event.team == "blue"
    assert event.payload["type"] == "call.processed"
    record = CallRecordV1.model_validate(event.payload["data"])
    assert record.version == "postcall.call.v1"
    assert (record.tenant, record.call_id, record.external_id, record.agent_id) == ("acme", call_id, "rec-1", "A-7")
    assert record.started_at == CALL_START
    assert record.state in {"ready_for_review", "needs_attention"}
    assert record.review_url == f"https://postcall.example.test/calls/{call_id}"
    assert record.extraction is not None and record.extraction.provider == "heuristic"
    assert record.reason is not None and record.action_items
    with unit_of_work(session_factory) as session:
        texts = {u.index: u.text for u in session.scalars(select(Utterance).where(Utterance.call_id == call_id))}
    statements = [*record.summary.statements, *record.action_items, record.reason]
    for statement in statements:
        for ev in statement.evidence:
            if ev.utterance is not None and ev.status == "exact":
                assert texts[ev.utterance][ev.char_start : ev.char_end] == ev.quote
    card = next(item for item in record.action_items if item.due_phrase and "5 business days" in item.due_phrase)
    assert card.due_date == date(2026, 3, 11)
    grounded_summary = [s.text for s in record.summary.statements if s.grounded]
    for text in grounded_summary:
        assert text.strip() in record.summary.note


def test_review_decisions_write_events_with_who_decided(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    call_id = processed_call(session_factory, "rec-2")
    supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)
    with unit_of_work(session_factory) as session:
        # Unverified items must be decided first; reject the call (always allowed) then reopen and reject again.
        decide_call(session, supervisor, call_id, CallDecision.reject)
    with unit_of_work(session_factory) as session:
        decide_call(session, supervisor, call_id, CallDecision.reopen)
    types = [e.type for e in events_of(session_factory, call_id)]
    assert types == ["call.processed", "call.rejected", "call.reopened"]
    rejected = CallRecordV1.model_validate(events_of(session_factory, call_id)[1].payload["data"])
    assert rejected.state == "rejected"
    assert rejected.review.decision == "rejected" and rejected.review.decided_by == "sam"
    assert [d.action for d in rejected.review.decisions] == ["call_rejected"]


def test_a_refused_decision_writes_no_event(session_factory: sessionmaker[Session], allow_private: Settings) -> None:
    call_id = processed_call(session_factory, "rec-3")
    supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)
    with pytest.raises(ReviewConflictError), unit_of_work(session_factory) as session:
        decide_call(session, supervisor, call_id, CallDecision.reopen)  # not decided yet: refused
    assert [e.type for e in events_of(session_factory, call_id)] == ["call.processed"]


def test_an_event_rolls_back_with_its_change(session_factory: sessionmaker[Session], allow_private: Settings) -> None:
    call_id = processed_call(session_factory, "rec-4")
    supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/hooks")

    def decide_then_fail() -> None:
        with unit_of_work(session_factory) as session:
            decide_call(session, supervisor, call_id, CallDecision.reject)
            raise RuntimeError("the request fails after the decision")

    with pytest.raises(RuntimeError):
        decide_then_fail()
    assert [e.type for e in events_of(session_factory, call_id)] == ["call.processed"]
    with unit_of_work(session_factory) as session:
        assert session.get(Call, call_id).state.value != "rejected"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert endpoint_id


def test_delete_writes_a_content_free_event_and_strips_earlier_ones(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    call_id = processed_call(session_factory, "rec-5")
    admin, _ = make_principal(session_factory, "ada", UserRole.admin)
    with unit_of_work(session_factory) as session:
        quotes = [u.text for u in session.scalars(select(Utterance).where(Utterance.call_id == call_id))]
    with unit_of_work(session_factory) as session:
        delete_call(session, admin, call_id)
    events = events_of(session_factory, call_id)
    assert [e.type for e in events] == ["call.processed", "call.deleted"]
    deleted = CallRecordV1.model_validate(events[1].payload["data"])
    assert deleted.deleted and deleted.state == "deleted" and deleted.review.decided_by == "ada"
    assert deleted.external_id == "rec-5" and not deleted.action_items and deleted.reason is None
    for event in events:
        body = json.dumps(event.payload)
        for text in quotes:
            assert text not in body  # no transcript text survives the deletion


class _BrokenProvider(ExtractionProvider):
    """The LLM stand-in: a provider that refuses the request permanently."""

    name = "broken"
    model = "broken-1"
    sends_data_offsite = False
    supports_repair = False

    def extract(self, transcript, prompt):  # type: ignore[no-untyped-def]
        raise PermanentError("the model server rejected the request (400)")

    def repair(self, transcript, prompt, previous, report):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_a_failed_call_writes_call_failed(session_factory: sessionmaker[Session], allow_private: Settings) -> None:
    call_id = store_call(session_factory, "rec-6")
    outcome = process_call(session_factory, call_id, _BrokenProvider(), prompt())
    assert outcome.state.value == "failed"
    (event,) = events_of(session_factory, call_id)
    record = CallRecordV1.model_validate(event.payload["data"])
    assert event.type == "call.failed" and record.state == "failed"
    assert record.failure is not None and "400" in record.failure
    # Giving up on an already failed call changes nothing and writes nothing more.
    mark_failed(session_factory, call_id, _BrokenProvider(), prompt(), "gave up")
    assert len(events_of(session_factory, call_id)) == 1


class _EchoingProvider(_BrokenProvider):
    """The LLM stand-in: a model server whose refusal echoes the request (the transcript, unredacted)."""

    def extract(self, transcript, prompt):  # type: ignore[no-untyped-def]
        said = " ".join(u.text for u in transcript.utterances)
        raise PermanentError(f"the model server rejected the request (400): {said}")


def test_a_failure_that_echoes_the_transcript_is_stored_and_handed_over_masked(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    # A provider's error echoing the prompt reached `last_error`, the run's error, the call.failed record's
    # `failure` (every receiver) and the API's `error` (reviewers without view_pii) unmasked.
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, make_transcript([
            (Role.customer, "My card is 4111 1111 1111 1111 and my SSN is 123-45-6789."),
            (Role.agent, "Thanks, I have blocked it."),
        ]), tenant="acme", external_id="rec-echo").call_id
    outcome = process_call(session_factory, call_id, _EchoingProvider(), prompt())
    assert outcome.state.value == "failed" and outcome.error is not None
    with unit_of_work(session_factory) as session:
        call = get_call(session, call_id)
        run_error = session.scalar(select(ExtractionRun.error).where(ExtractionRun.call_id == call_id))
        stored = [call.last_error, run_error, outcome.error]
    (event,) = events_of(session_factory, call_id)
    stored.append(CallRecordV1.model_validate(event.payload["data"]).failure)
    for text in stored:
        assert text is not None and "rejected the request (400)" in text
        assert "4111 1111" not in text and "123-45" not in text
        assert "1111" in text and "6789" in text  # masked as readers see them: the last four stay


def test_events_fan_out_to_subscribed_active_endpoints_only(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    everything, _ = register(session_factory, "http://127.0.0.1:9/all")
    approvals, _ = register(session_factory, "http://127.0.0.1:9/approvals", events=["call.approved"])
    other_tenant, _ = register(session_factory, "http://127.0.0.1:9/other", tenant="globex")
    call_id = processed_call(session_factory, "rec-7")
    with unit_of_work(session_factory) as session:
        rows = session.execute(select(WebhookDelivery.endpoint_id, OutboxEvent.type)
                               .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
                               .where(WebhookDelivery.call_id == call_id)).all()
    assert [(r[0], r[1]) for r in rows] == [(everything, "call.processed")]
    assert approvals != other_tenant


def test_processing_hands_its_new_deliveries_over_once_they_are_committed(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    """The pipeline writes its result on a Core connection, not a session: it hands the deliveries over itself,
    after the commit, as a session's commit does."""
    handed_over: list[tuple[list[int], list[int]]] = []

    def note(delivery_ids: Sequence[int]) -> None:
        with unit_of_work(session_factory) as session:  # another transaction: sees only what is committed
            visible = list(session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.id.in_(delivery_ids))))
        handed_over.append((list(delivery_ids), visible))

    processed_call(session_factory, "rec-quiet")  # no endpoint yet: nothing to hand over
    install_delivery_notifier(note)
    processed_call(session_factory, "rec-unsubscribed")
    assert handed_over == []
    register(session_factory, "http://127.0.0.1:9/all")
    call_id = processed_call(session_factory, "rec-subscribed")
    with unit_of_work(session_factory) as session:
        ids = list(session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.call_id == call_id)))
    assert len(ids) == 1
    assert handed_over == [(ids, ids)]


def test_oversized_records_are_bounded_and_flagged(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    call_id = processed_call(session_factory, "rec-8")
    record = CallRecordV1.model_validate(events_of(session_factory, call_id)[0].payload["data"])
    full = len(json.dumps(record.model_dump(mode="json"), separators=(",", ":")).encode())
    without_quotes = bounded(record, full - 1)
    assert without_quotes.truncated
    assert all(ev.quote is None for item in without_quotes.action_items for ev in item.evidence)
    assert without_quotes.action_items[0].text == record.action_items[0].text
    tiny = bounded(record, 600)
    assert tiny.truncated and tiny.call_id == call_id and not tiny.action_items
    assert bounded(record, full + 10) is record


def test_the_schema_endpoint_and_the_published_file_match_the_model() -> None:
    from app.config import PROJECT_ROOT

    schema = record_json_schema()
    assert get_record_schema() == schema
    assert schema["title"] == "postcall.call.v1"
    assert {"call_id", "action_items", "summary", "review", "review_url"} <= set(schema["properties"])
    published = json.loads((PROJECT_ROOT / "docs" / "schemas" / "call.v1.json").read_text())
    assert published == schema, "docs/schemas/call.v1.json is stale: regenerate it from record_json_schema()"


def test_every_kind_of_event_body_is_valid_by_the_published_event_schema(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    # The JSON Schema covered the record only; a receiver validating the body it is sent (type, timestamp,
    # data) had nothing to validate against. Each body the pipeline writes is checked with the published
    # file by an independent validator, not by the model that made it.
    import jsonschema_rs

    from app.config import PROJECT_ROOT

    published = json.loads((PROJECT_ROOT / "docs" / "schemas" / "event.v1.json").read_text())
    assert published == event_json_schema() == get_event_schema(), (
        "docs/schemas/event.v1.json is stale: regenerate it from event_json_schema()")
    validator = jsonschema_rs.validator_for(published)
    processed = processed_call(session_factory, "ev-1")
    failed = store_call(session_factory, "ev-2")
    process_call(session_factory, failed, _BrokenProvider(), prompt())
    admin, _ = make_principal(session_factory, "ada", UserRole.admin)
    with unit_of_work(session_factory) as session:
        delete_call(session, admin, processed)
    bodies = [webhook_body(event.payload, event.id) for call_id in (processed, failed)
              for event in events_of(session_factory, call_id)]
    assert {body["type"] for body in bodies} == {"call.processed", "call.deleted", "call.failed"}
    for body in bodies:
        assert validator.is_valid(body), list(validator.iter_errors(body))[:3]
    # What it refuses: a body without its record, a record without its call, a body without its sequence
    # (the order of a call's events: the timestamps come from the writers' clocks).
    assert not validator.is_valid({"type": "call.processed", "timestamp": bodies[0]["timestamp"], "sequence": 1})
    assert not validator.is_valid({key: value for key, value in bodies[0].items() if key != "sequence"})
    broken = json.loads(json.dumps(bodies[0]))
    del broken["data"]["call_id"]
    assert not validator.is_valid(broken)


def _payload_texts_as_written_and_through_the_column(factory: sessionmaker[Session], call_id: str) -> tuple[str, str]:
    """The event's payload text as `record_event` wrote it, and the text the `payload` column's own serializer
    writes for the same payload (the dict bound as JSON: how every event was written before)."""
    (event,) = events_of(factory, call_id)
    copy_id = f"msg_col_{call_id}"[:40]
    with unit_of_work(factory) as session:
        session.add(OutboxEvent(event_id=copy_id, tenant_id=event.tenant_id, call_id=call_id, type=event.type,
                                payload=event.payload))
    with unit_of_work(factory) as session:
        written, through_column = (session.scalar(sql_text("SELECT payload::text FROM outbox WHERE event_id = :id"),
                                                  {"id": event_id}) for event_id in (event.event_id, copy_id))
    assert written is not None and through_column is not None
    return written, through_column


def test_on_postgresql_the_payload_text_is_the_one_the_column_serializer_writes(
    postgres_url: str, allow_private: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline serializes the payload itself (once) and binds the text: the `json` column keeps it byte
    for byte, so it must be the text the driver wrote from the dict, non-ASCII and bounded records included."""
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        call_id = processed_call(factory, "rec-text-1", team="équipe ☕ 東京")
        written, through_column = _payload_texts_as_written_and_through_the_column(factory, call_id)
        assert written == through_column
        assert "\\u00e9quipe \\u2615" in written  # ASCII escapes and spaced separators: json.dumps' defaults
        full = json_size(json.loads(written)["data"])
        monkeypatch.setenv("POSTCALL_WEBHOOK_MAX_PAYLOAD_BYTES", str(full - 1))
        get_settings.cache_clear()
        bounded_call = processed_call(factory, "rec-text-2", team="équipe ☕ 東京")
        written, through_column = _payload_texts_as_written_and_through_the_column(factory, bounded_call)
        assert written == through_column
        assert json.loads(written)["data"]["truncated"] is True
    finally:
        engine.dispose()


# No lone surrogates: a text holding one cannot be stored in PostgreSQL (the claims' insert refuses it before
# any event is written), and its compact UTF-8 form has no size.
_TEXTS = st.text(st.characters(exclude_categories=("Cs",)))


def _containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(_TEXTS, children, max_size=4))


_JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), _TEXTS), _containers, max_leaves=20)


@hypothesis_settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_the_payload_text_is_never_shorter_than_the_records_compact_size(data: object) -> None:
    """`record_event` skips measuring the record when the payload's text is within the limit: that text
    holds the record with ASCII escapes and spaces, which can only make it longer than `json_size`."""
    assert len(payload_json(envelope("call.processed", "2026-03-04T15:00:00+00:00", {"record": data}))) >= (
        json_size({"record": data}))


PII_LINES: list[tuple[Role, str]] = [
    (Role.agent, "Thank you for calling Northwind Bank, this is Dana. How can I help you today?"),
    (Role.customer, "Hi, my card 4111 1111 1111 1111 was charged twice and I need a refund."),
    (Role.agent, "I see the double charge on card 4111 1111 1111 1111. I will refund it within 5 business days."),
    (Role.customer, "Thanks. My social is 123-45-6789 if you need it."),
    (Role.agent, "Not needed, you're all set."),
]
PII = ("4111 1111 1111 1111", "123-45-6789", "4111")


def _without_ids_and_times(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_ids_and_times(item) for key, item in value.items()
                if key not in {"call_id", "review_url", "timestamp", "decided_at", "started_at"}}
    if isinstance(value, list):
        return [_without_ids_and_times(item) for item in value]
    return value


def test_the_record_carries_masked_texts_only(session_factory: sessionmaker[Session], allow_private: Settings) -> None:
    # The record goes to other systems and the feed serves it to every role: what only view_pii unmasks
    # is never in it, whether written by the pipeline, by a decision, or typed into the case note.
    transcript = make_transcript(PII_LINES, external_id="pii-rec")
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, transcript, tenant="acme", external_id="pii-rec").call_id
    process_call(session_factory, call_id, HeuristicProvider(), prompt())
    supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)
    with unit_of_work(session_factory) as session:
        edit_case_note(session, supervisor, call_id, "Refund to card 4111 1111 1111 1111 issued.")
    with unit_of_work(session_factory) as session:
        decide_call(session, supervisor, call_id, CallDecision.reject)
    processed, rejected = events_of(session_factory, call_id)
    for event in (processed, rejected):
        # Ids and times left out: a random call id or a timestamp's microseconds may hold "4111" (they did).
        payload = json.dumps(_without_ids_and_times(event.payload), ensure_ascii=False)
        assert not any(value in payload for value in PII), payload
    record = CallRecordV1.model_validate(processed.payload["data"])
    quoted = [ev.quote for s in [*record.summary.statements, *record.action_items, record.reason] if s
              for ev in s.evidence]
    assert any("•••• •••• •••• 1111" in (quote or "") for quote in quoted)  # masked, offsets unchanged
    assert CallRecordV1.model_validate(rejected.payload["data"]).summary.note == \
        "Refund to card •••• •••• •••• 1111 issued."
    with unit_of_work(session_factory) as session:  # the note is stored masked too
        assert get_call(session, call_id).case_note == "Refund to card •••• •••• •••• 1111 issued."


def test_the_same_decision_again_writes_no_event(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    # Retried requests and double clicks: one call.rejected reaches the receivers, not one per request.
    call_id = processed_call(session_factory, "twice")
    supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)

    def reject() -> None:
        with unit_of_work(session_factory) as session:
            decide_call(session, supervisor, call_id, CallDecision.reject)

    if session_factory.kw["bind"].dialect.name == "postgresql":  # the call's row lock orders them
        run_at_once(6, reject)
    reject()
    reject()
    assert [e.type for e in events_of(session_factory, call_id)] == ["call.processed", "call.rejected"]
    with unit_of_work(session_factory) as session:
        decide_call(session, supervisor, call_id, CallDecision.reopen)
    reject()  # a new decision after a reopen is one again
    assert [e.type for e in events_of(session_factory, call_id)][-2:] == ["call.reopened", "call.rejected"]


class _AnsweringProvider(ExtractionProvider):
    """The LLM stand-in: answers with a fixed extraction."""

    name = "answering"
    model = "answering-1"

    def __init__(self, extraction: Extraction) -> None:
        self.extraction = extraction

    def extract(self, transcript, prompt):  # type: ignore[no-untyped-def]
        return ProviderResult(self.extraction)


def test_a_quote_is_masked_with_its_call_as_the_page_masks_it(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    # The date is a date of birth only by the previous turn's question: masked on its own the quote kept
    # it, and the record (which any role reads in the feed) showed what the call page masks.
    lines = [(Role.agent, "Can you confirm your date of birth?"), (Role.customer, "It's 03/04/1985."),
             (Role.agent, "Thanks, you're verified.")]
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, make_transcript(lines, external_id=None), tenant="acme",
                                   external_id="dob").call_id
    # The statement repeats the date: masked on its own, its text kept it too (the record, the page's items,
    # the case note made of them, the analyst views, the export), where the transcript hid it.
    extraction = Extraction(summary=[Statement(text="The customer confirmed their date of birth as 03/04/1985",
                                               evidence=[EvidenceRef(utterance=1, quote="It's 03/04/1985.")])])
    process_call(session_factory, call_id, _AnsweringProvider(extraction), prompt())
    (event,) = events_of(session_factory, call_id)
    record = CallRecordV1.model_validate(event.payload["data"])
    (statement,) = record.summary.statements
    assert [ev.quote for ev in statement.evidence] == ["It's ••/••/••••."]
    assert statement.text == "The customer confirmed their date of birth as ••/••/••••"
    assert "1985" not in json.dumps(event.payload)
    with unit_of_work(session_factory) as session:
        assert session.scalars(select(Evidence.quote_masked)).all() == ["It's ••/••/••••."]
        assert session.scalars(select(Claim.text_masked)).all() == [statement.text]


def test_one_decision_made_at_once_by_two_reviewers_writes_one_event(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    """Both read the call undecided and both wrote 'rejected' with its event on SQLite, whose FOR UPDATE is
    a no-op: receivers got two rejections of one call. Now the second waits for the first and finds it done."""
    from tests.support.threads import run_at_once

    call_id = processed_call(session_factory, "rec-race")
    supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)

    def reject() -> None:
        with unit_of_work(session_factory) as session:
            decide_call(session, supervisor, call_id, CallDecision.reject)

    for _ in range(3):  # the race is a matter of timing: a few rounds of it
        run_at_once(4, reject)
        with unit_of_work(session_factory) as session:
            decide_call(session, supervisor, call_id, CallDecision.reopen)
    types = [e.type for e in events_of(session_factory, call_id)]
    assert types == ["call.processed", *["call.rejected", "call.reopened"] * 3]


def test_a_corrected_agent_is_handed_over_as_call_updated_once_the_call_was(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    from app.pipeline.store import StoreStatus

    def resubmit(external_id: str, agent_id: str) -> StoreStatus:
        transcript = make_transcript(external_id=external_id, agent_id=agent_id)
        metadata = transcript.metadata.model_copy(update={"started_at": CALL_START})
        with unit_of_work(session_factory) as session:
            return store_transcript(session, transcript.model_copy(update={"metadata": metadata}), tenant="acme",
                                    external_id=external_id, replace=True).status

    waiting = store_call(session_factory, "upd-queued")  # never handed over yet: nothing to correct downstream
    assert resubmit("upd-queued", "B-2") is StoreStatus.updated and events_of(session_factory, waiting) == []
    processed = processed_call(session_factory, "upd-done")
    assert resubmit("upd-done", "B-2") is StoreStatus.updated
    assert resubmit("upd-done", "B-2") is StoreStatus.unchanged  # the same again: no second event
    events = events_of(session_factory, processed)
    # The former agent is told the call left them (call.reassigned, theirs in the feed); the new one gets it.
    assert [e.type for e in events] == ["call.processed", "call.reassigned", "call.updated"]
    assert [CallRecordV1.model_validate(e.payload["data"]).agent_id for e in events[1:]] == ["A-7", "B-2"]
    # A corrected language alone is a call.updated too: the record now says which.
    transcript = make_transcript(external_id="upd-done", agent_id="B-2")
    metadata = transcript.metadata.model_copy(update={"started_at": CALL_START, "language": "es"})
    with unit_of_work(session_factory) as session:
        store_transcript(session, transcript.model_copy(update={"metadata": metadata}), tenant="acme",
                         external_id="upd-done", replace=True)
    events = events_of(session_factory, processed)
    assert [e.type for e in events][-1] == "call.updated"
    assert [CallRecordV1.model_validate(e.payload["data"]).language for e in events] == ["en", "en", "en", "es"]


def test_a_corrected_start_moves_the_due_dates_its_items_name(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    # "within 5 business days" of Wednesday 2026-03-04 is 2026-03-11; moved to Monday 2026-04-20, the call's
    # item falls due on 2026-04-27. The call.updated record carried the new start with the old due date.
    from datetime import datetime as _datetime

    call_id = processed_call(session_factory, "upd-start")
    (first,) = [item for item in CallRecordV1.model_validate(events_of(session_factory, call_id)[0].payload["data"])
                .action_items if item.due_phrase == "within 5 business days"]
    assert first.due_date == date(2026, 3, 11)
    transcript = make_transcript(external_id="upd-start")
    moved_start = _datetime(2026, 4, 20, 15, 0, tzinfo=CALL_START.tzinfo)
    metadata = transcript.metadata.model_copy(update={"started_at": moved_start})
    with unit_of_work(session_factory) as session:
        store_transcript(session, transcript.model_copy(update={"metadata": metadata}), tenant="acme",
                         external_id="upd-start", replace=True)
    updated = CallRecordV1.model_validate(events_of(session_factory, call_id)[-1].payload["data"])
    (item,) = [item for item in updated.action_items if item.due_phrase == "within 5 business days"]
    assert updated.started_at == moved_start and item.due_date == date(2026, 4, 27)
    with unit_of_work(session_factory) as session:
        stored = session.scalars(
            select(Claim.due_date).where(Claim.call_id == call_id, Claim.due.is_not(None))).all()
    assert date(2026, 4, 27) in stored and all(due is None or due >= date(2026, 4, 20) for due in stored), stored


class _SecondModel(HeuristicProvider):
    """The LLM stand-in for another model: the same answers under another name (a new idempotency key)."""

    name = "heuristic-second"


def test_a_decided_call_extracted_again_is_reopened_with_its_new_result_and_only_then(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    call_id = processed_call(session_factory, "rec-reprocess")
    principal, _ = make_principal(session_factory, "sue", UserRole.supervisor)
    with unit_of_work(session_factory) as session:
        decide_call(session, principal, call_id, CallDecision.approve)
    # A re-extraction that fails stores nothing: the approval stands, and receivers hear nothing new.
    failed = process_call(session_factory, call_id, _BrokenProvider(), prompt(), reprocess_reviewed=True)
    assert failed.error is not None and failed.state.value == "approved" and not failed.reopened
    assert [e.type for e in events_of(session_factory, call_id)] == ["call.processed", "call.approved"]
    # One that succeeds reopens the decision in the transaction that stores it, before its call.processed.
    done = process_call(session_factory, call_id, _SecondModel(), prompt(), reprocess_reviewed=True)
    assert done.reopened and done.state.value in {"ready_for_review", "needs_attention"}
    events = events_of(session_factory, call_id)
    assert [e.type for e in events] == ["call.processed", "call.approved", "call.reopened", "call.processed"]
    assert CallRecordV1.model_validate(events[2].payload["data"]).review.decision == "reopened"
    with unit_of_work(session_factory) as session:
        audit = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == call_id)
                                .order_by(ReviewEvent.id)).all()
        assert (audit[-1].action, audit[-1].actor_name, audit[-1].before) == (
            "call_reopened", "system", {"state": "approved"})
        assert get_call(session, call_id).state is done.state


@pytest.mark.postgres
def test_holding_the_event_writers_leaves_the_transactions_lock_timeout_as_it_was(postgres_url: str) -> None:
    # The short wait for the outbox lock stayed set for the rest of the transaction: enabling an endpoint
    # whose row a rotation held failed after 200 ms instead of waiting the configured lock timeout.
    from app.handoff.outbox import hold_event_writers

    engine = create_db_engine(postgres_url, lock_timeout_seconds=3)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            assert hold_event_writers(session, "200ms")
            assert session.execute(sql_text("SHOW lock_timeout")).scalar() == "3s"
            held = session.execute(sql_text(
                "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'outbox'::regclass"
            )).scalars().all()
            assert "ShareLock" in held  # the lock itself is kept to the transaction's end
    finally:
        engine.dispose()
