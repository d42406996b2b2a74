"""Retention: expired calls are hard-deleted with everything they carry; their audit trail stays,
content-free. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, null, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.grounding import verify_extraction
from app.models import Call, Claim, Evidence, ExtractionRun, ReviewEvent, RunStatus, Tenant
from app.models import Utterance as UtteranceRow
from app.pipeline.calls import get_call
from app.pipeline.persist import RunFacts, add_claims, add_run, idempotency_key
from app.pipeline.retention import PURGE_EVENT, purge_expired, set_retention
from app.pipeline.store import store_transcript
from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from app.schemas.usage import Usage

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "my card is 4111 1111 1111 1111"


def _store(factory: sessionmaker[Session], tenant: str, external_id: str, started: datetime) -> str:
    transcript = Transcript(
        metadata=CallMetadata(started_at=started),
        utterances=[
            Utterance(index=0, speaker="A", role=Role.agent, text="How can I help?"),
            Utterance(index=1, speaker="C", role=Role.customer, text=f"{SECRET}, refund the $30 please"),
        ],
        source_format="native",
    )
    extraction = Extraction(
        summary=[Statement(text="Refund of $30 asked", evidence=[EvidenceRef(utterance=1, quote="refund the $30")])]
    )
    with unit_of_work(factory) as session:
        stored = store_transcript(session, transcript, tenant=tenant, external_id=external_id)
        call = get_call(session, stored.call_id)
        facts = RunFacts(
            key=idempotency_key(call.id, call.transcript_hash, "v", "test", "m"),
            provider="test",
            model="m",
            prompt_version="v",
            transcript_hash=call.transcript_hash,
            usage=Usage(),
            queue_wait_ms=None,
            verify_ms=None,
        )
        run = add_run(session, call, facts, status=RunStatus.succeeded, raw_response=SECRET)
        add_claims(session, run, verify_extraction(transcript, extraction))
        session.add(
            ReviewEvent(
                tenant_id=call.tenant_id,
                call_id=call.id,
                actor_name="sue",
                action="claim_edited",
                before={"text": SECRET},
                after={"text": "Refund"},
                created_at=NOW,
            )
        )
        return stored.call_id


def _count(session: Session, model: type, call_ids: list[str]) -> int:
    if model is Evidence:
        return (
            session.scalar(select(func.count()).select_from(Evidence).join(Claim).where(Claim.call_id.in_(call_ids)))
            or 0
        )
    return session.scalar(select(func.count()).select_from(model).where(model.call_id.in_(call_ids))) or 0


def test_purge_deletes_expired_calls_and_keeps_a_content_free_trail(session_factory: sessionmaker[Session]) -> None:
    old = _store(session_factory, "acme", "old", NOW - timedelta(days=40))
    recent = _store(session_factory, "acme", "recent", NOW - timedelta(days=5))
    forever = _store(session_factory, "globex", "old-globex", NOW - timedelta(days=400))
    with unit_of_work(session_factory) as session:
        set_retention(session, "acme", 30)
        set_retention(session, "globex", 0)  # globex keeps calls forever

    with unit_of_work(session_factory) as session:
        dry = purge_expired(session, default_days=0, dry_run=True, now=NOW)
    assert [(r.tenant, r.calls, r.utterances, r.claims, r.evidence) for r in dry] == [("acme", 1, 2, 1, 1)]
    with session_factory() as session:
        assert session.get(Call, old) is not None  # a dry run deletes nothing

    with unit_of_work(session_factory) as session:
        done = purge_expired(session, default_days=0, now=NOW)
    assert [(r.tenant, r.calls) for r in done] == [("acme", 1)]

    with session_factory() as session:
        assert session.get(Call, old) is None
        for model in (UtteranceRow, Claim, Evidence, ExtractionRun):
            assert _count(session, model, [old]) == 0, model
            assert _count(session, model, [recent]) > 0, model
        assert session.get(Call, forever) is not None
        trail = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == old).order_by(ReviewEvent.id)).all()
        assert [e.action for e in trail] == ["claim_edited", PURGE_EVENT]
        assert all(e.before is None for e in trail)
        assert trail[0].after is None and trail[1].after == {"retention_days": 30}
        assert trail[0].actor_name == "sue"  # who did what, and when, remains
        # Nothing of the call's text is left anywhere in its trail.
        assert SECRET not in str([(e.before, e.after) for e in trail])
        kept = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == recent)).one()
        assert kept.before == {"text": SECRET}  # calls within the period keep their trail as it was


def test_the_default_period_applies_to_tenants_without_their_own(session_factory: sessionmaker[Session]) -> None:
    old = _store(session_factory, "acme", "old", NOW - timedelta(days=10))

    with unit_of_work(session_factory) as session:
        assert purge_expired(session, default_days=0, now=NOW) == []  # 0: nothing expires
    with unit_of_work(session_factory) as session:
        (report,) = purge_expired(session, default_days=7, now=NOW)

    assert report.calls == 1
    with session_factory() as session:
        assert session.get(Call, old) is None


def test_audit_events_stay_append_only_apart_from_clearing_content(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory, "acme", "c", NOW)
    with session_factory() as session:
        tenant_id = session.scalars(select(Tenant.id)).one()
    table = ReviewEvent.__table__
    forbidden = [
        update(table).where(table.c.call_id == call_id).values(actor_name="someone else"),
        update(table).where(table.c.call_id == call_id).values(after={"text": "rewritten"}),
        update(table).where(table.c.call_id == call_id).values(before=null(), after=null(), action="call_approved"),
        table.delete().where(table.c.call_id == call_id),
    ]
    for statement in forbidden:
        with pytest.raises(DBAPIError, match="append-only"), session_factory() as session:
            session.connection().execute(statement)
    with session_factory() as session:
        assert session.connection().execute(text("SELECT COUNT(*) FROM review_events")).scalar_one() == 1
        assert session.scalars(select(ReviewEvent.tenant_id)).one() == tenant_id
