"""Append-only audit trails (review_events, user_events), enforced wherever the models are used (the
database triggers of migrations 0002 and 0029 enforce it for everything else, SQL consoles included)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Update, event
from sqlalchemy.orm import Mapper, ORMExecuteState, Session

from app.errors import AppendOnlyError
from app.models.tables import ReviewEvent, UserEvent

APPEND_ONLY_TABLES = frozenset({ReviewEvent.__tablename__, UserEvent.__tablename__})


@event.listens_for(ReviewEvent, "before_update")
def _refuse_event_update(_mapper: Mapper[Any], _connection: Any, target: ReviewEvent) -> None:
    raise AppendOnlyError(f"review event {target.id} is append-only; it cannot be updated")


@event.listens_for(ReviewEvent, "before_delete")
def _refuse_event_delete(_mapper: Mapper[Any], _connection: Any, target: ReviewEvent) -> None:
    raise AppendOnlyError(f"review event {target.id} is append-only; it cannot be deleted")


@event.listens_for(UserEvent, "before_update")
def _refuse_user_event_update(_mapper: Mapper[Any], _connection: Any, target: UserEvent) -> None:
    raise AppendOnlyError(f"user event {target.id} is append-only; it cannot be updated")


@event.listens_for(UserEvent, "before_delete")
def _refuse_user_event_delete(_mapper: Mapper[Any], _connection: Any, target: UserEvent) -> None:
    raise AppendOnlyError(f"user event {target.id} is append-only; it cannot be deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_event_changes(state: ORMExecuteState) -> None:
    # Bulk UPDATE/DELETE statements bypass the mapper events above.
    # The ORM form targets an annotated copy of the table, so compare by name.
    statement = state.statement
    if isinstance(statement, Update | Delete):
        table = getattr(statement.table, "name", None)
        if table in APPEND_ONLY_TABLES:
            raise AppendOnlyError(f"{table} is append-only: UPDATE and DELETE are refused")
