"""Persisted claims carry the resolved due date, the named owner, and the call its current run."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, Claim, Tenant
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.schemas.transcript import Role
from tests.support.transcripts import CARD_CALL_LINES, make_transcript

RETURNS_LINES: list[tuple[Role, str]] = [
    (Role.agent, "Thanks for calling Contoso, this is Maria. How can I help?"),
    (Role.customer, "The blender I ordered arrived broken and I want to send it back."),
    (Role.agent, "I'm sorry about that. I will have the returns team email you a prepaid label by Friday."),
    (Role.customer, "Thank you, that works."),
]


def _prompt() -> PromptTemplate:
    settings = get_settings()
    return PromptTemplate.load(settings.prompts_dir, settings.prompt_version)


def _store(factory: sessionmaker[Session], lines: list[tuple[Role, str]], external_id: str,
           started_at: datetime | None, time_zone: str = "UTC") -> str:
    transcript = make_transcript(lines, external_id=external_id)
    transcript.metadata.started_at = started_at
    with unit_of_work(factory) as session:
        call_id = store_transcript(session, transcript, tenant="acme", external_id=external_id).call_id
        session.scalars(select(Tenant).where(Tenant.slug == "acme")).one().time_zone = time_zone
    return call_id


def _action_items(factory: sessionmaker[Session], call_id: str) -> list[Claim]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(Claim).where(Claim.call_id == call_id, Claim.kind == "action_item")))


def test_due_phrases_become_dates_in_the_tenant_zone(session_factory: sessionmaker[Session]) -> None:
    # Monday 2026-06-01 02:00 UTC is still Sunday evening in New York: five business days from Sunday.
    call_id = _store(session_factory, CARD_CALL_LINES, "card-tz", datetime(2026, 6, 1, 2, 0, tzinfo=UTC),
                     "America/New_York")
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    items = {item.due: item for item in _action_items(session_factory, call_id)}
    assert "within 5 business days" in items
    assert items["within 5 business days"].due_date == date(2026, 6, 5)
    assert items["within 5 business days"].due_at is None


def test_owner_name_comes_from_the_transcript(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory, RETURNS_LINES, "returns-1", datetime(2026, 3, 11, 15, 0, tzinfo=UTC))
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    items = _action_items(session_factory, call_id)
    label = next(item for item in items if "label" in item.text)
    assert label.owner_name == "the returns team"
    assert label.due_date == date(2026, 3, 13)


def test_no_start_time_means_no_due_date(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory, CARD_CALL_LINES, "card-nostart", None)
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    items = _action_items(session_factory, call_id)
    assert any(item.due for item in items)
    assert all(item.due_date is None for item in items)


def test_current_run_follows_the_latest_succeeded_run(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory, CARD_CALL_LINES, "card-rerun", datetime(2026, 3, 11, 15, 0, tzinfo=UTC))
    first = process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    tuned = dataclasses.replace(_prompt(), version="extract-v1-tuned")
    second = process_call(session_factory, call_id, HeuristicProvider(), tuned)
    assert first.run_id is not None and second.run_id is not None and second.run_id != first.run_id
    with unit_of_work(session_factory) as session:
        assert session.get(Call, call_id).current_run_id == second.run_id  # type: ignore[union-attr]
        rows = session.execute(
            text("SELECT run_id, is_current FROM analytics_claims WHERE call_id = :c"), {"c": call_id}
        ).all()
    assert {run_id for run_id, current in rows if current == 1} == {second.run_id}
    assert {run_id for run_id, current in rows if current == 0} == {first.run_id}


def test_reviewer_edits_and_additions_resolve_their_due_phrase(session_factory: sessionmaker[Session]) -> None:
    from app.models import UserRole
    from app.review import ClaimAction, ClaimChanges, NewItem, SelectedQuote, add_reviewer_claim, review_claim
    from app.schemas.grounding import ClaimKind
    from app.users import authenticate, create_user

    # Wednesday 2026-03-11.
    call_id = _store(session_factory, RETURNS_LINES, "returns-edit", datetime(2026, 3, 11, 15, 0, tzinfo=UTC))
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    with unit_of_work(session_factory) as session:
        token = create_user(session, tenant="acme", name="sue", role=UserRole.supervisor).token
    label = next(item for item in _action_items(session_factory, call_id) if "label" in item.text)
    with unit_of_work(session_factory) as session:
        principal = authenticate(session, token)
        assert principal is not None
        edited = review_claim(session, principal, label.id, ClaimAction.edit, ClaimChanges(due="by Monday"))
        assert edited.due_date == date(2026, 3, 16)
        edited = review_claim(session, principal, label.id, ClaimAction.edit, ClaimChanges(due="soon"))
        assert edited.due_date is None
        added = add_reviewer_claim(session, principal, call_id, NewItem(
            kind=ClaimKind.action_item, text="The returns team emails a prepaid label", owner="agent",
            due="tomorrow", selection=[SelectedQuote(2, "I will have the returns team email you a prepaid label")],
        )).claim
        assert added.due_date == date(2026, 3, 12)
        assert added.owner_name == "the returns team"


def test_the_owner_name_is_the_transcripts_not_the_models_quote() -> None:
    from app.grounding import verify_extraction
    from app.pipeline.analyst_fields import CallClock, analyst_fields
    from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner
    from app.schemas.grounding import EvidenceStatus
    from tests.grounding.helpers import transcript

    call = transcript(("customer", "Can someone call me back?"),
                      ("agent", "My colleague Mario will call you back on Monday."))
    quote = "My colleague Maria will call you back on Monday"  # one letter off: a fuzzy match of the agent's words
    item = ActionItem(text="Mario will call the customer back on Monday", owner=Owner.agent, due="on Monday",
                      evidence=[EvidenceRef(utterance=1, quote=quote)])
    (claim,) = verify_extraction(call, Extraction(action_items=[item])).claims
    assert claim.evidence[0].status is EvidenceStatus.fuzzy
    clock = CallClock(datetime(2026, 3, 11, 15, 0, tzinfo=UTC), "UTC")
    texts = {u.index: u.text for u in call.utterances}
    assert analyst_fields(claim, clock, texts)["owner_name"] == "Mario"
    assert analyst_fields(claim, clock)["owner_name"] == "Maria"  # the model's quote, without the transcript
