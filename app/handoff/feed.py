"""The pull feed (`GET /api/events`): the outbox in commit order, behind a stable cursor.

The cursor is an event id. A sequence number alone is not commit order: a transaction can take id 7,
commit after the one holding id 8, and a reader that already passed 8 would never see 7. So on
PostgreSQL the reader first takes `LOCK TABLE outbox IN SHARE MODE`, which waits for every transaction
that is writing events to end and holds new writers back while the page is read: every id it sees is
committed, and every id written later is larger. The lock is held only for the read (the caller ends
the transaction right after); it waits at most LOCK_WAIT for writers to finish, and when one takes longer
(a large batch of decisions in one transaction) the page comes back empty with the same cursor, to be
polled again. Transactions that write no events never delay the feed. On SQLite writers are serialized,
so ids are already in commit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.errors import PostcallError
from app.handoff.outbox import hold_event_writers
from app.models import OutboxEvent, OutboxPurgeMark
from app.models.tables import MAX_BIG_ID
from app.users import Principal, visibility_clause

MAX_PAGE = 500
DEFAULT_PAGE = 100
# How long a reader waits for event-writing transactions to commit. New writers queue behind a waiting
# reader, so this also bounds how long a poll can hold the pipeline's event writes back.
LOCK_WAIT = "200ms"
MAX_EVENT_ID = MAX_BIG_ID  # outbox.id is a 64-bit integer (migration 0026)
MAX_CURSOR_DIGITS = len(str(MAX_EVENT_ID))


class CursorError(PostcallError):
    """The cursor is not one this feed handed out."""


class CursorExpiredError(PostcallError):
    """The cursor is older than the events the feed still keeps (the hand-off's retention period deleted
    some after it): the reader has to catch up another way, then start again without a cursor."""


@dataclass(frozen=True)
class FeedItem:
    cursor: str
    event_id: str
    type: str
    call_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class FeedPage:
    items: list[FeedItem]
    # Pass as `after`; the same cursor again when there was no event at all after it, else the last item's or
    # (a page that is not full) the newest event's.
    next_cursor: str


def decode_cursor(cursor: str | None) -> int:
    """The event id a cursor stands for (0: from the start). A cursor is an event id this feed handed out:
    ASCII digits (`str.isdigit` alone takes "²" or "٣") within the 64-bit `outbox.id`; anything else is
    CursorError (422), never a value the database refuses."""
    if not cursor:
        return 0
    if len(cursor) > MAX_CURSOR_DIGITS or not (cursor.isascii() and cursor.isdigit()) or int(cursor) > MAX_EVENT_ID:
        raise CursorError(f"invalid cursor {cursor[:40]!r}: pass back a `next_cursor` from this feed")
    return int(cursor)


def visible_events_clause(principal: Principal) -> ColumnElement[bool]:
    """Events of the calls this user may see (the call's agent and team are copied onto the event)."""
    return visibility_clause(principal, OutboxEvent.tenant_id, OutboxEvent.agent_id, OutboxEvent.team)


def read_feed(session: Session, principal: Principal, after: str | None, limit: int = DEFAULT_PAGE) -> FeedPage:
    """Events after `after`, oldest first. On PostgreSQL this holds a SHARE lock on the outbox until the
    caller ends the transaction: end it as soon as the page is read. CursorExpiredError when events after
    `after` were deleted by the retention purge."""
    seq_after = decode_cursor(after)
    limit = max(1, min(limit, MAX_PAGE))
    if not hold_event_writers(session, LOCK_WAIT):
        return FeedPage([], after or "0")
    # Read first, and the page bounded by it: on SQLite each statement reads the database as it is then, and
    # an event committed between the two reads must not be passed over by a cursor moved to the newest. The
    # reader's own tenant's newest: other tenants' volume is none of its business.
    newest = session.scalar(select(func.max(OutboxEvent.id)).where(OutboxEvent.tenant_id == principal.tenant_id))
    rows = session.scalars(
        select(OutboxEvent)
        .where(visible_events_clause(principal), OutboxEvent.id > seq_after, OutboxEvent.id <= (newest or 0))
        .order_by(OutboxEvent.id)
        .limit(limit)
    ).all()
    # Read after the page: a purge that committed before the page was read (and took events it would have
    # shown) has moved the tenant's mark past the cursor by then. A cursor at or past the mark missed
    # nothing, whatever gaps the ids have and whatever other tenants' events went.
    purged_through = session.scalar(select(OutboxPurgeMark.purged_through)
                                    .where(OutboxPurgeMark.tenant_id == principal.tenant_id))
    if seq_after and purged_through is not None and seq_after < purged_through:
        raise CursorExpiredError(
            f"cursor {seq_after} is older than the events the feed keeps: events after it were deleted at the end "
            "of the hand-off's retention period. Catch up from the calls API, then start again without `after`")
    if seq_after > max(newest or 0, purged_through or 0):
        # A cursor of the feed's own is at most its tenant's newest event when it was handed out, and that
        # event is still there or, purged, at or under the tenant's mark; one past both would skip the events
        # written up to it. The tenant's own events alone: measured against the newest of every tenant's,
        # which cursors were refused told any reader (a binary search over `after`) how many events the
        # other tenants wrote.
        raise CursorError(f"cursor {seq_after} is past the newest event: pass back a `next_cursor` from this "
                          "feed, or start again without `after`")
    items = [FeedItem(str(row.id), row.event_id, row.type, row.call_id, row.payload) for row in rows]
    if len(items) == limit:
        return FeedPage(items, items[-1].cursor)
    # Every event this reader may see up to its tenant's newest is on the page: the cursor moves past the
    # others too (a quiet reader's cursor would otherwise fall behind the purge of events it never sees).
    # A reader that has seen nothing yet gets "0", never null: a client that sent "null" back as text was refused.
    return FeedPage(items, str(newest) if newest is not None and newest > seq_after else (after or "0"))
