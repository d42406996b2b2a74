"""The pull feed (`GET /api/events`): the outbox in commit order, behind a stable cursor.

A sequence number alone is not commit order: a transaction can take id 7, commit after the one holding
id 8, and a reader that already passed 8 would never see 7. On PostgreSQL each event carries the id of
the transaction that wrote it; the feed orders by (transaction id, event id) and serves only transactions
older than every transaction still open (`pg_snapshot_xmin`), so whatever commits later sorts after
every cursor already handed out. Events of an open transaction appear once it ends (milliseconds). On
SQLite writers are serialized, so ids are already in commit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Text, and_, cast, func, or_, select, tuple_
from sqlalchemy.orm import Session

from app.errors import PostcallError
from app.models import OutboxEvent
from app.users import Principal, visibility_clause

MAX_PAGE = 500
DEFAULT_PAGE = 100


class CursorError(PostcallError):
    """The cursor is not one this feed handed out."""


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
    next_cursor: str | None  # pass as `after`; the same cursor again when there was nothing new


def encode_cursor(txid: int | None, event_seq: int) -> str:
    return f"{txid or 0}-{event_seq}"


def decode_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return (-1, -1)
    try:
        txid, _, seq = cursor.partition("-")
        return int(txid), int(seq)
    except ValueError:
        raise CursorError(f"invalid cursor {cursor!r}: pass back a `next_cursor` from this feed") from None


def visible_events_clause(principal: Principal) -> ColumnElement[bool]:
    """Events of the calls this user may see (the call's agent and team are copied onto the event)."""
    return visibility_clause(principal, OutboxEvent.tenant_id, OutboxEvent.agent_id, OutboxEvent.team)


def read_feed(session: Session, principal: Principal, after: str | None, limit: int = DEFAULT_PAGE) -> FeedPage:
    """Events after `after`, oldest first, as far as every transaction before them has ended."""
    txid_after, seq_after = decode_cursor(after)
    limit = max(1, min(limit, MAX_PAGE))
    txid = func.coalesce(OutboxEvent.txid, 0)
    query = select(OutboxEvent).where(visible_events_clause(principal))
    if session.get_bind().dialect.name == "postgresql":
        settled_before = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)
        query = query.where(
            tuple_(OutboxEvent.txid, OutboxEvent.id) > tuple_(txid_after, seq_after),
            OutboxEvent.txid < settled_before,
        ).order_by(OutboxEvent.txid, OutboxEvent.id)
    else:
        query = query.where(or_(txid > txid_after, and_(txid == txid_after, OutboxEvent.id > seq_after)))
        query = query.order_by(OutboxEvent.id)
    rows = session.scalars(query.limit(limit)).all()
    items = [FeedItem(encode_cursor(row.txid, row.id), row.event_id, row.type, row.call_id, row.payload)
             for row in rows]
    return FeedPage(items, items[-1].cursor if items else after)
