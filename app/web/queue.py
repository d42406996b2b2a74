"""The review queue: the calls a user may see, filtered, in review order, with counts per state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session

from app.models import Call, CallState, Claim, ExtractionRun, ReviewStatus, RunStatus, Tenant
from app.pipeline.queries import call_summary
from app.review import undecided_unverified
from app.schemas.grounding import ClaimStatus
from app.users import Principal, visible_calls_clause
from app.web.schemas import CallListItemOut, CallListOut

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Offsets and record ids are 32-bit in the database (PostgreSQL `integer`); larger values are 422, not 500.
MAX_OFFSET = 2**31 - 1
MAX_RECORD_ID = 2**31 - 1
# What a reviewer works on; `needs_attention` (unverified items) comes first.
TO_REVIEW_STATES = (CallState.needs_attention, CallState.ready_for_review)
REVIEW_ORDER = {CallState.needs_attention: 0, CallState.ready_for_review: 1}


@dataclass(frozen=True)
class CallFilters:
    states: Sequence[CallState] = ()  # empty: every state
    agent: str | None = None
    date_from: date | None = None  # inclusive, on the call's start (its ingestion when unknown), UTC
    date_to: date | None = None  # inclusive
    flagged: bool | None = None
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    newest_first: bool = False  # an agent's own calls: the one that just ended first


def flagged_clause() -> ColumnElement[bool]:
    """The call's current extraction has an unverified item that nobody has decided on yet."""
    current_run = (
        select(func.max(ExtractionRun.id))
        .where(ExtractionRun.call_id == Call.id, ExtractionRun.status == RunStatus.succeeded)
        .correlate(Call)
        .scalar_subquery()
    )
    return exists(select(Claim.id).where(Claim.call_id == Call.id, *undecided_unverified(current_run))).correlate(Call)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _conditions(principal: Principal, filters: CallFilters, *, with_state: bool) -> list[ColumnElement[bool]]:
    conditions = [visible_calls_clause(principal)]
    if with_state and filters.states:
        conditions.append(Call.state.in_(list(filters.states)))
    if filters.agent:
        conditions.append(Call.agent_id == filters.agent)
    when = func.coalesce(Call.started_at, Call.created_at)
    if filters.date_from:
        conditions.append(when >= _day_start(filters.date_from))
    if filters.date_to and filters.date_to < date.max:  # the last representable day has no "next day"
        conditions.append(when < _day_start(filters.date_to + timedelta(days=1)))
    if filters.flagged is not None:
        flagged = flagged_clause()
        conditions.append(flagged if filters.flagged else ~flagged)
    return conditions


def list_calls(session: Session, principal: Principal, filters: CallFilters) -> CallListOut:
    conditions = _conditions(principal, filters, with_state=True)
    counts = count_states(session, principal, filters)
    # The per-state counts apply every other filter, so the total is their sum over the chosen states.
    total = sum(counts[state.value] for state in set(filters.states)) if filters.states else sum(counts.values())
    review_rank = case(
        *((Call.state == state, rank) for state, rank in REVIEW_ORDER.items()), else_=len(REVIEW_ORDER)
    )
    order = (
        (Call.created_at.desc(), Call.id) if filters.newest_first else (review_rank, Call.state_changed_at, Call.id)
    )
    query = (
        select(Call, Tenant.slug, flagged_clause().label("flagged"))
        .join(Tenant, Tenant.id == Call.tenant_id)
        .where(and_(*conditions))
        .order_by(*order)
        .limit(min(max(filters.limit, 1), MAX_PAGE_SIZE))
        .offset(max(filters.offset, 0))
    )
    rows = session.execute(query).all()
    previews = triage_previews(session, [call for call, _, _ in rows])
    calls = [
        CallListItemOut(**call_summary(call, slug).model_dump(), flagged=bool(flagged), **previews.get(call.id, {}),
                        waiting_since=call.state_changed_at)
        for call, slug, flagged in rows
    ]
    return CallListOut(
        total=int(total),
        limit=filters.limit,
        offset=filters.offset,
        counts=counts,
        calls=calls,
    )


def triage_previews(session: Session, calls: Sequence[Call]) -> dict[str, dict[str, Any]]:
    """Per call of one queue page: reason, outcome, flagged item count and the soonest open due date,
    from the current extraction. One query for the page, not one per call."""
    if not calls:
        return {}
    current_runs = (
        select(func.max(ExtractionRun.id))
        .where(ExtractionRun.call_id.in_([c.id for c in calls]), ExtractionRun.status == RunStatus.succeeded)
        .group_by(ExtractionRun.call_id)
    )
    rows = session.execute(
        select(Claim.call_id, Claim.kind, Claim.text_masked, Claim.due, Claim.due_date, Claim.grounding_status,
               Claim.review_status)
        .where(Claim.run_id.in_(current_runs), Claim.review_status != ReviewStatus.rejected)
        .order_by(Claim.call_id, Claim.position)
    ).all()
    previews: dict[str, dict[str, Any]] = {}
    # Reason and outcome previews are masked like every reviewer-facing text; due dates were resolved at persist.
    for call_id, kind, text, due, when, grounding, review in rows:
        preview = previews.setdefault(call_id, {"flagged_items": 0})
        if kind in ("reason", "outcome"):
            preview.setdefault(kind, text)
        if grounding == ClaimStatus.ungrounded.value and review is ReviewStatus.pending:
            preview["flagged_items"] += 1
        if kind == "action_item" and due:
            best = preview.get("earliest_due_date")
            if "earliest_due" not in preview or (when is not None and (best is None or when < best)):
                preview["earliest_due"], preview["earliest_due_date"] = due, when
    return previews


def count_states(session: Session, principal: Principal, filters: CallFilters) -> dict[str, int]:
    """Calls per state among those matching every filter except the state filter."""
    conditions = _conditions(principal, filters, with_state=False)
    counts = {state.value: 0 for state in CallState}
    rows = session.execute(select(Call.state, func.count()).where(and_(*conditions)).group_by(Call.state)).all()
    for state, count in rows:
        counts[CallState(state).value] = int(count)
    return counts


def next_to_review(session: Session, principal: Principal, after: str) -> str | None:
    """The call to open after `after` (decided or skipped): the first other call to review, in queue order."""
    review_rank = case(
        *((Call.state == state, rank) for state, rank in REVIEW_ORDER.items()), else_=len(REVIEW_ORDER)
    )
    return session.scalar(
        select(Call.id)
        .where(visible_calls_clause(principal), Call.state.in_(TO_REVIEW_STATES), Call.id != after)
        .order_by(review_rank, Call.state_changed_at, Call.id)
        .limit(1)
    )
