"""The success path's bulk insert of claims and evidence (one unnest statement on PostgreSQL, multi-row
inserts on SQLite) stores what the report says, each span under its own claim, with the masked copies
`mask_text` gives; and the per-call memo of masked copies equals `mask_text`. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.handoff.outbox import CallChange, EventType, record_event
from app.handoff.record import identity_record
from app.models import Call, CallState, Claim, Evidence, ExtractionRun, OutboxEvent, RunStatus
from app.pipeline.analyst_fields import CallClock
from app.pipeline.calls import get_call, state_columns, state_update
from app.pipeline.persist import (
    MaskedCopies,
    RunFacts,
    add_run,
    idempotency_key,
    insert_claims,
    insert_run_with_claims,
    run_values,
)
from app.pipeline.store import store_transcript
from app.privacy.mask import MASKED_KINDS, mask_text, nothing_to_mask
from app.privacy.pii import detect
from app.schemas.extraction import Owner
from app.schemas.grounding import (
    ClaimKind,
    ClaimStatus,
    EvidenceStatus,
    VerificationReport,
    VerifiedClaim,
    VerifiedEvidence,
)
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from app.schemas.usage import Usage

STARTED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # a Tuesday
CARD = "my card is 4111 1111 1111 1111"


def _span(utterance: int | None, quote: str, status: EvidenceStatus = EvidenceStatus.exact,
          score: float = 1.0, reason: str | None = None) -> VerifiedEvidence:
    found = utterance is not None
    return VerifiedEvidence(cited_utterance=utterance if found else 7, utterance=utterance, quote=quote,
                            status=status, char_start=0 if found else None,
                            char_end=len(quote) if found else None, score=score, reason=reason)


def _report() -> VerificationReport:
    """Claims with 0, 1 and several spans; unicode; a card number; no owner or due, and both."""
    return VerificationReport(claims=[
        VerifiedClaim(kind=ClaimKind.reason, text="Kundin möchte ihr Geld zurück — 30 €", status=ClaimStatus.grounded,
                      evidence=[_span(1, "Geld zurück, bitte 🙏")]),
        VerifiedClaim(kind=ClaimKind.summary, text='Nothing quoted: "no" \\ then\nleft\t{}[]',
                      status=ClaimStatus.ungrounded, reason="no_evidence"),
        VerifiedClaim(kind=ClaimKind.action_item, text="Agent sends the refund form by Friday", owner=Owner.agent,
                      due="by Friday", status=ClaimStatus.ungrounded, reason="not_found",
                      evidence=[_span(0, "I'll send the form by Friday"), _span(None, "and a voucher",
                                EvidenceStatus.ungrounded, 0.25, "not_found"),
                                _span(1, CARD, EvidenceStatus.fuzzy, 0.875)]),
        VerifiedClaim(kind=ClaimKind.outcome, text=CARD, status=ClaimStatus.grounded, evidence=[_span(1, CARD)]),
    ])


def _facts(call: Call) -> RunFacts:
    return RunFacts(idempotency_key(call.id, call.transcript_hash, "v", "test", "m"), "test", "m", "v",
                    call.transcript_hash, Usage(), None, None)


def _stored_call(factory: sessionmaker[Session]) -> Call:
    """A stored call (with no run)."""
    transcript = Transcript(
        metadata=CallMetadata(started_at=STARTED),
        utterances=[Utterance(index=0, speaker="A", role=Role.agent, text="I'll send the form by Friday"),
                    Utterance(index=1, speaker="C", role=Role.customer, text=f"Geld zurück, bitte 🙏 {CARD}")],
        source_format="native",
    )
    with unit_of_work(factory) as session:
        return get_call(session, store_transcript(session, transcript, tenant="acme", external_id="x-1").call_id)


def _insert(factory: sessionmaker[Session], report: VerificationReport, clock: CallClock,
            path: str) -> tuple[Call, int, list[tuple[dict[str, Any], int]]]:
    """Store a call, then a succeeded run of it with the report's claims: with the run in the same insert
    (`insert_run_with_claims`, the success path), or after it (`insert_claims`). (call, run id, written)"""
    call = _stored_call(factory)
    with unit_of_work(factory) as session:
        if path == "run_with_claims":
            run = {**run_values(call.id, call.tenant_id, _facts(call), status=RunStatus.succeeded, raw_response="{}"),
                   "started_at": STARTED}
            run_id, written = insert_run_with_claims(session, run, call.tenant_id, report, clock)
        else:
            run_id = add_run(session, call, _facts(call), status=RunStatus.succeeded).id
            written = insert_claims(session, run_id, call.id, call.tenant_id, report, clock)
    return call, run_id, written


PATHS = pytest.mark.parametrize("path", ["run_with_claims", "claims"])


def _stored_claims(session: Session, run_id: int) -> list[tuple[Claim, list[Evidence]]]:
    claims = session.scalars(select(Claim).where(Claim.run_id == run_id).order_by(Claim.position)).all()
    return [(claim, list(session.scalars(select(Evidence).where(Evidence.claim_id == claim.id)
                                         .order_by(Evidence.position)))) for claim in claims]


@PATHS
def test_claims_and_their_evidence_are_stored_as_reported(session_factory: sessionmaker[Session], path: str) -> None:
    report = _report()
    call, run_id, written = _insert(session_factory, report, CallClock(STARTED, "UTC"), path)
    call_id, tenant_id = call.id, call.tenant_id
    with session_factory() as session:
        stored = _stored_claims(session, run_id)
        run = session.get_one(ExtractionRun, run_id)
        assert (run.call_id, run.status, run.idempotency_key) == (call_id, RunStatus.succeeded, _facts(call).key)
        assert run.tenant_id == tenant_id  # the runs' and evidence's row policies read it (migration 0025)
    assert [claim_id for _, claim_id in written] == [claim.id for claim, _ in stored]
    assert [row["position"] for row, _ in written] == [0, 1, 2, 3]
    for position, ((claim, evidence), reported) in enumerate(zip(stored, report.claims, strict=True)):
        assert (claim.position, claim.call_id, claim.tenant_id) == (position, call_id, tenant_id)
        assert (claim.kind, claim.text, claim.grounding_status, claim.grounding_reason) == (
            reported.kind.value, reported.text, reported.status.value, reported.reason)
        assert claim.owner == (reported.owner.value if reported.owner else None)
        assert claim.due == reported.due
        assert (claim.review_status.value, claim.origin) == ("pending", "model")
        assert claim.text_masked == mask_text(reported.text)
        assert claim.created_at is not None
        assert [(ev.position, ev.cited_utterance, ev.utterance_index, ev.char_start, ev.char_end, ev.quote,
                 ev.status, ev.score, ev.reason) for ev in evidence] == [
            (i, span.cited_utterance, span.utterance, span.char_start, span.char_end, span.quote,
             span.status.value, span.score, span.reason) for i, span in enumerate(reported.evidence)]
        assert [ev.quote_masked for ev in evidence] == [mask_text(span.quote) for span in reported.evidence]
        assert [ev.tenant_id for ev in evidence] == [tenant_id] * len(evidence)
    action = stored[2][0]
    assert action.due_date == date(2026, 12, 4)  # "by Friday" from a Tuesday
    assert stored[3][0].text_masked != CARD  # the card number is masked (a test that can fail)
    assert stored[1][1] == []


@PATHS
def test_many_claims_keep_their_own_evidence(session_factory: sessionmaker[Session], path: str) -> None:
    """Thirty claims with 0 to 3 spans each: every span is stored under the claim it belongs to."""
    report = VerificationReport(claims=[
        VerifiedClaim(kind=ClaimKind.summary, text=f"claim {i}", status=ClaimStatus.grounded,
                      evidence=[_span(0, f"claim {i} span {j}") for j in range(i % 4)])
        for i in range(30)
    ])
    _, run_id, written = _insert(session_factory, report, CallClock(None, "UTC"), path)
    with session_factory() as session:
        stored = _stored_claims(session, run_id)
    assert [claim.text for claim, _ in stored] == [f"claim {i}" for i in range(30)]
    assert [claim_id for _, claim_id in written] == [claim.id for claim, _ in stored]
    for i, (_, evidence) in enumerate(stored):
        assert [ev.quote for ev in evidence] == [f"claim {i} span {j}" for j in range(i % 4)]


@PATHS
def test_no_claims_inserts_the_run_only(session_factory: sessionmaker[Session], path: str) -> None:
    call, run_id, written = _insert(session_factory, VerificationReport(), CallClock(None, "UTC"), path)
    assert written == []
    with session_factory() as session:
        assert _stored_claims(session, run_id) == []
        assert session.get_one(ExtractionRun, run_id).call_id == call.id


# Texts the masking changes (card numbers, SSNs, accounts with their cues) mixed with arbitrary text.
_MASKABLE = st.sampled_from([CARD, "SSN 123-45-6789", "account number 12345678", "born on 4 July 1980",
                             "the CVV is 123", "card four one one one one one one one one one one one one one one one"])
_TEXTS = st.lists(st.one_of(_MASKABLE, st.text(max_size=80),
                            st.builds(lambda a, b: f"{a} {b}", _MASKABLE, st.text(max_size=30))), max_size=8)


@settings(max_examples=200, deadline=None)
@given(_TEXTS)
def test_masked_copies_equal_mask_text(texts: list[str]) -> None:
    masked = MaskedCopies()
    repeated = texts + texts[::-1]  # every text asked twice: the second answer is the memo's
    assert [masked(text) for text in repeated] == [mask_text(text) for text in repeated]


# Words that cue a masked kind or look like numbers without being digits, and digits of other scripts.
_TRICKY_WORDS = ["card", "visa", "ssn", "social security", "account", "routing", "iban", "cvv", "security code",
                 "born on", "date of birth", "march", "May", "first", "fifth", "twenty", "thirty", "hundred",
                 "double", "triple", "oh", "zero", "one", "Four", "someone", "often", "DE", "GB", "-", "/", " ",
                 ", ", ".", "٣", "७", "½", "²", "Ⅳ", "4", "1111"]
_TRICKY_TEXTS = st.lists(st.one_of(st.sampled_from(_TRICKY_WORDS), st.text(max_size=6)), max_size=24).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(_TRICKY_TEXTS, _TRICKY_TEXTS)
def test_a_text_with_nothing_to_mask_is_what_mask_text_returns(text: str, lead_in: str) -> None:
    if nothing_to_mask(text):
        assert mask_text(text) == text
        assert mask_text(text, lead_in) == text
        assert not any(d.kind in MASKED_KINDS for d in detect(text, lead_in))


def test_nothing_to_mask_answers_no_for_numbers() -> None:
    assert nothing_to_mask("Agent will send the refund form by Friday")
    for text in (CARD, "card four one one one", "call me at oh two", "born 4/7/1980", "IBAN DE89 ...", "٣"):
        assert not nothing_to_mask(text)
    assert mask_text(CARD) != CARD  # what the prefilter must not skip


def test_an_event_with_a_call_change_changes_only_the_state_columns(session_factory: sessionmaker[Session]) -> None:
    """The success path's call UPDATE runs inside the event's INSERT on PostgreSQL: it sets the state columns
    and nothing else (the event's own values, tenant_id, team, created_at..., must not leak into its SET)."""
    call = _stored_call(session_factory)
    with session_factory() as session:
        before = {c.key: getattr(session.get_one(Call, call.id), c.key) for c in Call.__table__.columns}
    moment = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    change = CallChange(state_update(flagged_items=bindparam("flagged_items")), {
        "changed_call_id": call.id, **state_columns(CallState.needs_attention, moment), "flagged_items": 2})
    with unit_of_work(session_factory) as session:
        record = identity_record(call, "acme", state=CallState.needs_attention.value)
        outbox_id = record_event(session, call, EventType.processed, record=record, call_change=change)
    with session_factory() as session:
        after = {c.key: getattr(session.get_one(Call, call.id), c.key) for c in Call.__table__.columns}
        event = session.get_one(OutboxEvent, outbox_id)
        assert (event.call_id, event.tenant_id, event.type) == (call.id, call.tenant_id, "call.processed")
        assert event.payload["data"]["state"] == "needs_attention"
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"state", "state_changed_at", "review_rank", "flagged_items"}
    assert (after["state"], after["state_changed_at"], after["review_rank"], after["flagged_items"]) == (
        CallState.needs_attention, moment, 0, 2)
