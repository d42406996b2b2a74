"""The claim columns analysts filter on: the due phrase as a date (and moment), the owner's name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.grounding import spoken_words
from app.models import Call, Tenant
from app.schemas.grounding import ClaimKind, EvidenceStatus, VerifiedClaim
from app.text.due_dates import resolve_due
from app.text.owners import find_owner_name


@dataclass(frozen=True)
class CallClock:
    """When the call started and the tenant's time zone: what a due phrase is read against."""

    started_at: datetime | None
    time_zone: str


def call_clock(session: Session, call_id: str) -> CallClock:
    started_at, time_zone = session.execute(
        select(Call.started_at, Tenant.time_zone).join(Tenant, Tenant.id == Call.tenant_id).where(Call.id == call_id)
    ).one()
    return CallClock(started_at, time_zone)


def analyst_fields(
    claim: VerifiedClaim, clock: CallClock, utterance_texts: Mapping[int, str] | None = None
) -> dict[str, Any]:
    """`due_date`, `due_at` and `owner_name` for one claim.

    A call with no known start resolves no due phrase (a date relative to the hand-over time would be a
    guess). The owner's name is read from the transcript's words only: the grounded evidence spans as the
    transcript (`utterance_texts`, by utterance index) says them, never the model's paraphrase, nor its
    quote (a fuzzy match of "Maria will call you" on "Mario will call you" is the transcript's Mario).
    """
    owner_name = None
    if claim.kind is ClaimKind.action_item:
        owner_name = find_owner_name(spoken_words(ev, utterance_texts) for ev in claim.evidence
                                     if ev.status is not EvidenceStatus.ungrounded)
    return {**due_fields(claim.due, clock), "owner_name": owner_name}


def due_fields(due: str | None, clock: CallClock) -> dict[str, Any]:
    """`due_date` and `due_at` for a due phrase (also when a reviewer edits the phrase)."""
    resolved = resolve_due(due, clock.started_at, clock.time_zone) if due and clock.started_at else None
    return {"due_date": resolved.date if resolved else None, "due_at": resolved.at if resolved else None}
