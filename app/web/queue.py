"""The review queue: the calls a user may see, filtered, in review order, with counts per state."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from app.errors import InvalidInputError
from app.models import Call, CallState, Claim, ReviewStatus, Tenant, UserRole
from app.models.tables import OTHER_REVIEW_RANK, REVIEW_RANKS, review_rank
from app.pipeline.counts import state_counts
from app.pipeline.queries import call_summary
from app.schemas.grounding import ClaimStatus
from app.users import Principal, visible_calls_clause
from app.web.schemas import CallListItemOut, CallListOut

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Offsets and record ids are 32-bit in the database (PostgreSQL `integer`); larger values are 422, not 500.
MAX_OFFSET = 2**31 - 1
MAX_RECORD_ID = 2**31 - 1
# What a reviewer works on; `needs_attention` (unverified items) comes first.
TO_REVIEW_STATES = tuple(REVIEW_RANKS)
MAX_CURSOR_CHARS = 200
MAX_CALL_ID_CHARS = 32  # calls.id


@dataclass(frozen=True)
class PageCursor:
    """A position in the review order (the key of a call on a page): the page after it, or before it."""

    before: bool
    rank: int
    waiting_since: datetime
    call_id: str

    def encode(self) -> str:
        key = ["b" if self.before else "a", self.rank, self.waiting_since.isoformat(), self.call_id]
        return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        """The cursor a page handed out; anything else is InvalidInputError (422)."""
        try:
            if len(text) > MAX_CURSOR_CHARS:
                raise ValueError("too long")
            direction, rank, moment, call_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            # Every value must fit its column (`review_rank` is a SMALLINT, `id` 32 printable characters):
            # a value that does not would fail in the database (a 500), not here.
            if (
                direction not in ("a", "b")
                or type(rank) is not int
                or not 0 <= rank <= OTHER_REVIEW_RANK
                or not isinstance(call_id, str)
                or not (call_id.isascii() and call_id.isprintable() and len(call_id) <= MAX_CALL_ID_CHARS)
            ):
                raise ValueError("bad key")
            waiting_since = datetime.fromisoformat(moment)
            if waiting_since.tzinfo is None:
                raise ValueError("no time zone")
            waiting_since = waiting_since.astimezone(UTC)  # OverflowError at the ends of the calendar
        except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cursor is not one this API handed out ({exc})") from None
        return cls(direction == "b", rank, waiting_since, call_id)

    @classmethod
    def of(cls, call: Call, *, before: bool) -> PageCursor:
        return cls(before, call.review_rank, call.state_changed_at, call.id)


@dataclass(frozen=True)
class CallFilters:
    states: Sequence[CallState] = ()  # empty: every state
    agent: str | None = None
    date_from: date | None = None  # inclusive, on the call's start (its ingestion when unknown), UTC
    date_to: date | None = None  # inclusive
    flagged: bool | None = None
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    newest_first: bool = False  # an agent's own calls: the latest start first (ingestion when unknown)
    cursor: PageCursor | None = None  # keyset page (review order only): replaces `offset`


def flagged_clause() -> ColumnElement[bool]:
    """The call's current extraction has an unverified item that nobody has decided on yet."""
    return Call.flagged_items > 0


def call_moment() -> ColumnElement[datetime]:
    """When the call happened: its start, or its ingestion when the start is unknown (an index serves it)."""
    return func.coalesce(Call.started_at, Call.created_at)


def newest_first_keys() -> list[Any]:
    """The sort keys of an agent's own calls (/mine): the latest call first, by when it happened (not when it
    was ingested: a backfilled old call does not sit on top), ties by id."""
    return [call_moment().desc(), Call.id]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _conditions(principal: Principal, filters: CallFilters, *, with_state: bool) -> list[ColumnElement[bool]]:
    conditions = [visible_calls_clause(principal)]
    if with_state and filters.states:
        conditions.append(Call.state.in_(list(filters.states)))
        # Implied by the states, but stated so a page walking the review order stops at their ranks.
        ranks = [review_rank(state) for state in filters.states]
        conditions.append(Call.review_rank.between(min(ranks), max(ranks)))
    if filters.agent:
        conditions.append(Call.agent_id == filters.agent)
    when = call_moment()
    if filters.date_from:
        conditions.append(when >= _day_start(filters.date_from))
    if filters.date_to and filters.date_to < date.max:  # the last representable day has no "next day"
        conditions.append(when < _day_start(filters.date_to + timedelta(days=1)))
    if filters.flagged is not None:
        conditions.append(flagged_clause() if filters.flagged else Call.flagged_items == 0)
    return conditions


def review_order_keys(states: Sequence[CallState]) -> list[Any]:
    """The review order's sort keys. Filtered to states of one rank, the rank is constant and left out,
    so the (tenant, state, waiting since, id) index serves a one-state queue in order too."""
    if states and len({review_rank(s) for s in states}) == 1:
        return [Call.state_changed_at, Call.id]
    return [Call.review_rank, Call.state_changed_at, Call.id]


def _after_cursor(keys: list[Any], cursor: PageCursor) -> ColumnElement[bool]:
    values = {"review_rank": cursor.rank, "state_changed_at": cursor.waiting_since, "id": cursor.call_id}
    position = tuple_(*keys)
    bound = tuple_(*(literal(values[key.key], key.type) for key in keys))
    return position < bound if cursor.before else position > bound


@dataclass(frozen=True)
class QueueListing:
    """A page of calls as the review pages show it: the API's listing, plus which previews are unverified."""

    listing: CallListOut
    # call id -> the preview kinds ("reason", "outcome") whose item the transcript does not confirm
    unverified_previews: dict[str, frozenset[str]]


def list_calls(session: Session, principal: Principal, filters: CallFilters) -> CallListOut:
    """One page of the calls `filters` select, in review order (or newest first). With a cursor the page
    is found by its key (keyset pagination: as fast on page 20,000 as on page 1); without one, by offset."""
    return list_queue(session, principal, filters).listing


def list_queue(session: Session, principal: Principal, filters: CallFilters) -> QueueListing:
    """`list_calls`, with the grounding of each row's reason and outcome preview (the pages flag them)."""
    conditions = _conditions(principal, filters, with_state=True)
    counts = count_states(session, principal, filters)
    # The per-state counts apply every other filter, so the total is their sum over the chosen states.
    total = sum(counts[state.value] for state in set(filters.states)) if filters.states else sum(counts.values())
    limit = min(max(filters.limit, 1), MAX_PAGE_SIZE)
    cursor = None if filters.newest_first else filters.cursor
    query = select(Call, Tenant.slug).join(Tenant, Tenant.id == Call.tenant_id).where(and_(*conditions))
    if filters.newest_first:
        keys: list[Any] = []
        query = query.order_by(*newest_first_keys())
    else:
        keys = review_order_keys(filters.states)
        if cursor is not None:
            query = query.where(_after_cursor(keys, cursor))
        query = query.order_by(*(key.desc() for key in keys) if cursor and cursor.before else keys)
    offset = 0 if cursor is not None else max(filters.offset, 0)
    # One row more than the page shows whether another page follows it.
    rows = list(session.execute(query.limit(limit + 1).offset(offset)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if cursor is not None and cursor.before:
        rows.reverse()
        has_next, has_previous = True, more
    else:
        has_next, has_previous = more, cursor is not None or offset > 0
    page = [call for call, _ in rows]
    previews = triage_previews(session, page)
    unverified = {call_id: preview.pop(UNVERIFIED_PREVIEWS_KEY) for call_id, preview in previews.items()}
    calls = [
        CallListItemOut(**call_summary(call, slug).model_dump(), flagged=call.flagged_items > 0,
                        **previews.get(call.id, {}), unverified=sorted(unverified.get(call.id, ())),
                        waiting_since=call.state_changed_at)
        for call, slug in rows
    ]
    listing = CallListOut(
        total=int(total),
        limit=filters.limit,
        offset=filters.offset,
        counts=counts,
        calls=calls,
        next_cursor=PageCursor.of(page[-1], before=False).encode() if keys and page and has_next else None,
        prev_cursor=PageCursor.of(page[0], before=True).encode() if keys and page and has_previous else None,
    )
    return QueueListing(listing, unverified)


# The key of `triage_previews` naming the previews whose item is unverified (not a CallListItemOut field).
UNVERIFIED_PREVIEWS_KEY = "unverified_previews"


def triage_previews(session: Session, calls: Sequence[Call]) -> dict[str, dict[str, Any]]:
    """Per call of one queue page: reason, outcome, flagged item count and the soonest open due date,
    from the current extraction, and (under UNVERIFIED_PREVIEWS_KEY) which of the reason and outcome
    the transcript does not confirm: a page must flag those, never show them as fact. One query for
    the page, not one per call."""
    if not calls:
        return {}
    current_runs = [c.current_run_id for c in calls if c.current_run_id is not None]
    rows = session.execute(
        select(Claim.call_id, Claim.kind, Claim.text_masked, Claim.due, Claim.due_date, Claim.grounding_status)
        .where(Claim.run_id.in_(current_runs), Claim.review_status != ReviewStatus.rejected)
        .order_by(Claim.call_id, Claim.position)
    ).all()
    # The flagged count is kept on the call (at persist and on each item decision).
    previews: dict[str, dict[str, Any]] = {
        call.id: {"flagged_items": call.flagged_items, UNVERIFIED_PREVIEWS_KEY: frozenset()} for call in calls
    }
    # Reason and outcome previews are masked like every reviewer-facing text; due dates were resolved at persist.
    for call_id, kind, text, due, when, grounding in rows:
        preview = previews[call_id]
        if kind in ("reason", "outcome") and kind not in preview:
            preview[kind] = text
            # Flagged as the call page flags the item: by its grounding, whoever approved it since.
            if grounding != ClaimStatus.grounded.value:
                preview[UNVERIFIED_PREVIEWS_KEY] = preview[UNVERIFIED_PREVIEWS_KEY] | {kind}
        if kind == "action_item" and due:
            best = preview.get("earliest_due_date")
            if "earliest_due" not in preview or (when is not None and (best is None or when < best)):
                preview["earliest_due"], preview["earliest_due_date"] = due, when
    return previews


def count_states(session: Session, principal: Principal, filters: CallFilters) -> dict[str, int]:
    """Calls per state among those matching every filter except the state filter.

    A whole tenant's or team's counts (with or without the flag filter) are read from the trigger-kept
    counters; an agent's own calls and the agent and date filters are counted from the calls."""
    if principal.role is not UserRole.agent and not filters.agent and not filters.date_from and not filters.date_to:
        team = principal.team if principal.role is UserRole.supervisor and principal.team else None
        return state_counts(session, principal.tenant_id, team=team, flagged=filters.flagged)
    conditions = _conditions(principal, filters, with_state=False)
    counts = {state.value: 0 for state in CallState}
    rows = session.execute(select(Call.state, func.count()).where(and_(*conditions)).group_by(Call.state)).all()
    for state, count in rows:
        counts[CallState(state).value] = int(count)
    return counts


def queue_position(session: Session, principal: Principal, call_id: str) -> PageCursor | None:
    """Where `call_id` stands in the review order now (None: not a call the user can see). Read it before
    deciding the call: a decision moves it out of the queue."""
    call = session.scalar(select(Call).where(visible_calls_clause(principal), Call.id == call_id))
    return PageCursor.of(call, before=False) if call is not None else None


def next_to_review(
    session: Session, principal: Principal, position: PageCursor, filters: CallFilters | None = None
) -> str | None:
    """The call to open after the one at `position` (decided or skipped): the next call of the queue as
    `filters` select it (default: the calls to review), in queue order, so `]` walks the whole queue;
    past the last call it wraps to the first one, and None when no other call is left."""
    filters = filters or CallFilters(states=TO_REVIEW_STATES)
    keys = review_order_keys(filters.states)
    base = select(Call.id).where(*_conditions(principal, filters, with_state=True), Call.id != position.call_id)
    following = session.scalar(base.where(_after_cursor(keys, position)).order_by(*keys).limit(1))
    if following is not None:
        return following
    return session.scalar(base.order_by(*keys).limit(1))


def next_of_my_calls(session: Session, principal: Principal, call_id: str) -> str | None:
    """The call to open after `call_id` (decided or skipped) when it was opened from /mine: the next of the
    user's calls still to review in /mine's order (newest first); past the last it wraps to the newest, and
    None when no other is left or `call_id` is not a call the user can see. A decision does not move a call
    in that order (its start does not change), so unlike `queue_position` it need not be read before one."""
    moment = session.scalar(select(call_moment()).where(visible_calls_clause(principal), Call.id == call_id))
    if moment is None:
        return None
    to_review = CallFilters(states=TO_REVIEW_STATES)
    base = (select(Call.id).where(*_conditions(principal, to_review, with_state=True), Call.id != call_id)
            .order_by(*newest_first_keys()))
    when = call_moment()
    following = session.scalar(base.where(or_(when < moment, and_(when == moment, Call.id > call_id))).limit(1))
    if following is not None:
        return following
    return session.scalar(base.limit(1))
