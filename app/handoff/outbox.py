"""The transactional outbox: `record_event` writes an event in the caller's transaction.

The event (and one pending delivery per subscribed endpoint) commits or rolls back with the state change
it reports: no change without its event, no event without its change. After the commit, the process's
delivery notifier (installed by the workers and the web app) hands the new deliveries to the workers; if
that hand-over is lost, the beat sweep finds them in the database.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Table, Text, Update, bindparam, event, insert, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy import text as sql_text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.driver import FixedStatement, run_on_driver
from app.db.json_rows import json_rows, sql_type
from app.db.session import Work, connection_of
from app.handoff.record import CallRecordV1, RecordedCall, bounded, build_record, identity_record, json_size
from app.models import OutboxEvent, Tenant, WebhookDelivery, WebhookEndpoint
from app.models.tables import utcnow

logger = logging.getLogger(__name__)

OUTBOX = cast(Table, OutboxEvent.__table__)
DELIVERIES = cast(Table, WebhookDelivery.__table__)
# Built once: every processed call writes an event. Its values are bound as `event_<column>`: the INSERT
# may carry an UPDATE of the call (`CallChange`), and SQLAlchemy would add every parameter named like a
# column of `calls` (tenant_id, team, created_at, ...) to that UPDATE's SET clause.
_EVENT_COLUMNS = ("event_id", "tenant_id", "call_id", "agent_id", "team", "type", "payload", "created_at")
_INSERT_EVENT = (
    insert(OUTBOX).values({name: bindparam(f"event_{name}") for name in _EVENT_COLUMNS}).returning(OUTBOX.c.id)
)
_INSERT_EVENT_FIXED = FixedStatement(_INSERT_EVENT)
# PostgreSQL: the same INSERT with the payload bound as the JSON text `record_event` has already serialized
# (`event_payload_text`, cast to the column's type), so the driver does not serialize it a second time.
_INSERT_EVENT_TEXT = (
    insert(OUTBOX)
    .values({
        **{name: bindparam(f"event_{name}") for name in _EVENT_COLUMNS if name != "payload"},
        "payload": sql_cast(bindparam("event_payload_text", type_=Text()), OUTBOX.c.payload.type),
    })
    .returning(OUTBOX.c.id)
)
_INSERT_EVENT_TEXT_FIXED = FixedStatement(_INSERT_EVENT_TEXT)


class EventType(StrEnum):
    processed = "call.processed"
    failed = "call.failed"
    approved = "call.approved"
    rejected = "call.rejected"
    reopened = "call.reopened"
    # Its metadata was corrected (agent, team, start, language) by a resubmission; the extraction stands.
    updated = "call.updated"
    deleted = "call.deleted"
    # Taken from its agent or team by a resubmission: told to them, who no longer see the call or its events
    # (identity only, the new owner not named).
    reassigned = "call.reassigned"


class EventV1(BaseModel):
    """The body of every webhook delivery (`envelope`), and what a feed event's `data` is the record of."""

    model_config = ConfigDict(title="postcall.event.v1")

    # A string, not an enum: within v1 event types are added, and a receiver ignores one it does not know
    # (an enum in the schema would make its validator refuse the event instead).
    type: str = Field(description="call.processed | call.failed | call.approved | call.rejected | call.reopened | "
                                  "call.updated | call.reassigned | call.deleted; more may be added within v1: "
                                  "ignore unknown ones.")
    timestamp: datetime = Field(description="When the change the event reports happened (UTC), by the clock of the "
                                            "process that wrote it: informative, not an order (clocks of "
                                            "different hosts differ). Order a call's events by `sequence`.")
    sequence: int = Field(ge=1, description="The event's place in the outbox (the feed's `cursor` of the same "
                                            "event, as a number): a later change of the same call always has a "
                                            "higher sequence. Per call, apply an event only if its sequence is "
                                            "higher than the last one applied (a replayed old event has a lower "
                                            "one). Not contiguous: gaps are normal.")
    data: CallRecordV1 = Field(description="The call's record as of the change (postcall.call.v1).")


def event_json_schema() -> dict[str, Any]:
    schema = EventV1.model_json_schema()
    schema["$id"] = "postcall.event.v1"
    return schema


EVENT_PREFIX = "msg_"
# session.info key: delivery ids created in the open transaction, handed over after it commits.
PENDING_DELIVERIES = "postcall_pending_deliveries"

DeliveryNotifier = Callable[[Sequence[int]], None]
_notifier: DeliveryNotifier | None = None


def install_delivery_notifier(notifier: DeliveryNotifier | None) -> None:
    """Set what this process does with new deliveries after their commit (None: leave them to the sweep)."""
    global _notifier
    _notifier = notifier


def new_event_id() -> str:
    return EVENT_PREFIX + uuid.uuid4().hex


def envelope(event_type: str, occurred_at_iso: str, record: CallRecordV1 | dict[str, Any]) -> dict[str, Any]:
    """The stored payload of an event: type, timestamp and the record as `data` (the webhook body without
    its `sequence`, which is the event's row id, known only once the row is written: `webhook_body`)."""
    data = record.model_dump(mode="json") if isinstance(record, CallRecordV1) else record
    return {"type": event_type, "timestamp": occurred_at_iso, "data": data}


def webhook_body(payload: dict[str, Any], outbox_id: int) -> dict[str, Any]:
    """The body a delivery sends (postcall.event.v1): the stored payload with `sequence`, the event's outbox
    id. A call's events are written under the call's row lock (`record_event`'s callers hold it), so each
    later event of a call takes a larger id than the earlier ones: unlike `timestamp`, which comes from the
    clock of whichever process wrote it, the sequence orders a call's events whatever the clocks say. The
    feed serves the same value as each item's `sequence` (and, as a string, its `cursor`)."""
    body: dict[str, Any] = {"type": payload.get("type"), "timestamp": payload.get("timestamp"), "sequence": outbox_id}
    body.update((key, value) for key, value in payload.items() if key not in body)
    return body


class CallChange(NamedTuple):
    """An UPDATE of the call an event reports, with its parameters, for `record_event` to run."""

    statement: Update
    parameters: dict[str, Any]


@functools.cache
def _insert_event_after(change: Update) -> FixedStatement:
    """The event's INSERT (its payload as JSON text) with `change` in front of it as a data-modifying CTE
    (PostgreSQL): one statement, one round trip. Built once per change statement (the callers' are prebuilt)."""
    return FixedStatement(_INSERT_EVENT_TEXT.add_cte(change.cte("call_change")))


def payload_json(payload: dict[str, Any]) -> str:
    """The JSON text of an event's payload as the `payload` column's driver serializer writes it (psycopg's
    default, `json.dumps`): on PostgreSQL the column is `json`, which keeps the text as it is given."""
    return json.dumps(payload)


def record_event(
    work: Work,
    call: RecordedCall,
    event_type: EventType | str,
    *,
    actor: str | None = None,
    record: CallRecordV1 | None = None,
    call_change: CallChange | None = None,
    new_deliveries: list[int] | None = None,
    owner: tuple[str | None, str | None] | None = None,
) -> int:
    """Write `event_type` for `call` to the outbox in the current transaction and return the event's row
    id. Flushes; never commits.

    The caller holds the call's row lock (every caller does: the review functions, the pipeline's final
    writes, the retention purge's chunks, a resubmission): a call's events then take increasing ids in the
    order of its changes, which the body's `sequence` (`webhook_body`) and the feed's cursor promise.

    Call it after the state change (and its review event) is applied, so the record shows them. For
    `call.deleted` call it before the call's rows go: the record is identity only, and the call's earlier
    events are stripped of their content too (a deleted call leaves no transcript text behind; a caller
    that passes the `record` of a deletion has stripped them itself, as `record_deletions` does). A caller
    that has just written the rows the record shows may pass the `record` it assembled from them. The event
    fans out to the tenant's active endpoints as read after the transaction's first event
    (`_endpoints_of_transaction`). A caller that changes the call with a Core UPDATE not yet run may pass
    it as `call_change` (with a `record` that already shows the change): on PostgreSQL it runs in the
    event's INSERT, elsewhere just before it.

    The rows go in through Core inserts: nothing reads them back as ORM objects. `work` may be a Core
    connection (`connection_unit_of_work`) when the caller passes the `record` of an event other than
    `call.deleted` and a `new_deliveries` list: the webhook deliveries the event fans out to are added to it,
    for the caller to hand over once committed (`hand_over_deliveries`); a session hands over its own.
    `owner`: the (agent id, team) the event is shown to in the feed, when not the call's (`record_reassignment`).
    """
    settings = get_settings()
    kind = EventType(event_type)
    now = utcnow()
    if isinstance(work, Session):
        session = work
    elif record is None or kind is EventType.deleted or new_deliveries is None:
        raise TypeError("an event recorded on a Core connection needs its record and a list for its deliveries")
    if kind is EventType.deleted and record is None:
        tenant = session.get(Tenant, call.tenant_id)
        record = _deletion_record(call, tenant.slug if tenant else str(call.tenant_id), actor, now)
        _strip_earlier_events(session, call)
    elif record is None:
        record = build_record(session, call, public_url=settings.public_url)
    connection = connection_of(work)
    postgresql = connection.dialect.name == "postgresql"
    payload, text = _payload(kind, record, now, settings.webhook_max_payload_bytes, as_text=postgresql)
    parameters: dict[str, Any] = {}
    if postgresql:
        statement = _INSERT_EVENT_TEXT_FIXED
        parameters["event_payload_text"] = text
        if call_change is not None:
            statement = _insert_event_after(call_change.statement)
            parameters.update(call_change.parameters)
    else:
        statement = _INSERT_EVENT_FIXED
        parameters["event_payload"] = payload
        if call_change is not None:
            connection.execute(call_change.statement, call_change.parameters)
    outbox_id: int | None = statement.scalar(
        connection,
        {
            **parameters,
            "event_event_id": new_event_id(),
            "event_tenant_id": call.tenant_id,
            "event_call_id": call.id,
            "event_agent_id": call.agent_id if owner is None else owner[0],
            "event_team": call.team if owner is None else owner[1],
            "event_type": kind.value,
            "event_created_at": now,
        },
    )
    assert outbox_id is not None  # RETURNING of a one-row INSERT
    delivery_ids = _fan_out(connection, outbox_id, call, kind, now, retry_period=settings.webhook_retry_period_seconds)
    if delivery_ids:
        if new_deliveries is not None:
            new_deliveries.extend(delivery_ids)
        else:
            session.info.setdefault(PENDING_DELIVERIES, []).extend(delivery_ids)
    return outbox_id


def _payload(kind: EventType, record: CallRecordV1, now: datetime, max_bytes: int, *,
             as_text: bool) -> tuple[dict[str, Any], str | None]:
    """An event's payload (the webhook body but its outbox id), its record bounded to `max_bytes` where it is
    larger; with `as_text` (PostgreSQL) its JSON text too (`payload_json`), as the column stores it."""
    timestamp = now.isoformat()
    data = record.model_dump(mode="json")
    payload = envelope(kind.value, timestamp, data)
    text = None
    if as_text:
        # Serialized once, here: the text holds `data` serialized with ASCII escapes and spaces, never
        # shorter than its compact UTF-8 form (`json_size`), so a text within the limit needs no measuring.
        text = payload_json(payload)
        too_big = len(text) > max_bytes and json_size(data) > max_bytes
    else:
        too_big = json_size(data) > max_bytes
    if too_big:
        payload = envelope(kind.value, timestamp, bounded(record, max_bytes).model_dump(mode="json"))
        text = payload_json(payload) if as_text else None
    return payload, text


class NewEvent(NamedTuple):
    """One call's event for `record_events`: the call (its identity as the event carries it) and its record."""

    call: RecordedCall
    record: CallRecordV1


def _events_sql(call_change: str | None) -> str:
    """PostgreSQL: several events of one type in ONE statement of a fixed shape (`record_events`): the rows a JSON
    array (`json_to_recordset`), each payload its JSON text as `record_event` stores it; `call_change`, a
    data-modifying statement run in front of the INSERT (as `CallChange` is), reading its own parameters."""
    columns = [name for name in _EVENT_COLUMNS if name != "payload"]
    typed = ", ".join(f"{name} {sql_type(OUTBOX, name)}" for name in columns)
    change = f"WITH call_change AS ({call_change}) " if call_change is not None else ""
    # Built from the table definition only; every value is a bound parameter.
    return (
        f"{change}INSERT INTO outbox ({', '.join(columns)}, payload) "  # noqa: S608
        f"SELECT {', '.join(f'e.{name}' for name in columns)}, e.payload_text::json "
        f"FROM json_to_recordset(%(events)s::json) AS e({typed}, payload_text text, event_order integer) "
        "ORDER BY e.event_order RETURNING id, call_id"
    )


def record_events(
    connection: Connection, event_type: EventType, events: Sequence[NewEvent], *,
    call_change: tuple[str, dict[str, Any]] | None = None,
) -> list[tuple[int, list[int]]]:
    """`record_event` for several calls' events of one type, each with its record, in the same transaction
    (group commit, PostgreSQL): one INSERT of every event, with `call_change` (driver-level SQL of a data-
    modifying statement and its parameters) in front of it as one statement, then one INSERT of every delivery.
    The caller holds each call's row lock; each event takes its id in the order given. Returns each event's row
    id and its new deliveries, for the caller to hand over once committed. Flushes; never commits."""
    settings = get_settings()
    kind = EventType(event_type)
    now = utcnow()
    rows = []
    for order, (call, record) in enumerate(events):
        _, text = _payload(kind, record, now, settings.webhook_max_payload_bytes, as_text=True)
        rows.append({"event_id": new_event_id(), "tenant_id": call.tenant_id, "call_id": call.id,
                     "agent_id": call.agent_id, "team": call.team, "type": kind.value, "created_at": now,
                     "payload_text": text, "event_order": order})
    sql, parameters = _events_sql(call_change[0] if call_change else None), dict(call_change[1] if call_change else {})
    parameters["events"] = json_rows(rows)
    returned = run_on_driver(connection, sql, parameters, fetch=True)
    # RETURNING gives no order: each call has one event here, so its call id finds it.
    outbox_ids = {call_id: outbox_id for outbox_id, call_id in returned}
    if len(outbox_ids) != len(events):
        raise ValueError("one event per call in `record_events`")
    retry_period = settings.webhook_retry_period_seconds
    deliveries = [
        _delivery_rows(connection, outbox_ids[call.id], call, kind, now, retry_period=retry_period)
        for call, _ in events
    ]
    flat = [row for rows_of_event in deliveries for row in rows_of_event]
    ids = iter(_insert_deliveries(connection, flat))
    return [(outbox_ids[call.id], [next(ids) for _ in rows_of_event])
            for (call, _), rows_of_event in zip(events, deliveries, strict=True)]


def hold_event_writers(session: Session, wait: str) -> bool:
    """PostgreSQL: wait up to `wait` (a PostgreSQL interval, "200ms") for the transactions writing events to
    end, and hold new ones back until this transaction ends (`LOCK TABLE outbox IN SHARE MODE`): the feed then
    reads no gap a later commit fills, and an endpoint switched on or off splits the events cleanly. False when
    a writer took longer. SQLite serializes writers: always True."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    try:
        with session.begin_nested():
            # The wait bounds this lock only: kept for the rest of the transaction (SET LOCAL outlives the
            # savepoint), an enable's row lock on its endpoint, behind a concurrent rotation, failed at once.
            before = session.execute(sql_text("SELECT current_setting('lock_timeout'), "
                                              "set_config('lock_timeout', :wait, true)"), {"wait": wait}).scalar()
            session.execute(sql_text("LOCK TABLE outbox IN SHARE MODE"))
            session.execute(sql_text("SELECT set_config('lock_timeout', :before, true)"), {"before": before})
    except OperationalError:
        return False
    return True


def _endpoints_of_transaction(connection: Connection, tenant_id: int) -> list[Any]:
    """The tenant's active endpoints, read once per transaction, after its first event's INSERT. Read before it
    (when the call was locked, say), an endpoint enabled in between was missed: the enable had found nothing to
    queue, and the event was written as for no endpoint. After it, this transaction holds the outbox in ROW
    EXCLUSIVE mode, which `enable_endpoint`'s SHARE lock waits for: an enable committed before the INSERT is
    seen here, one after waits for this transaction and queues its events itself (SQLite serializes
    writers). The transaction's later events (a purge's chunk) reuse the read."""
    transaction = connection.get_transaction()
    cached = connection.info.get(_ENDPOINTS_READ)
    if cached is not None and cached[0] is transaction and cached[1] == tenant_id:
        return cast(list[Any], cached[2])
    endpoints = _ACTIVE_ENDPOINTS.all(connection, {"tenant_id": tenant_id})
    connection.info[_ENDPOINTS_READ] = (transaction, tenant_id, endpoints)
    return endpoints


_ENDPOINTS_READ = "postcall_endpoints_read"
# Built once: every event's transaction reads them (`_endpoints_of_transaction`).
_ACTIVE_ENDPOINTS = FixedStatement(select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
    WebhookEndpoint.tenant_id == bindparam("tenant_id"), WebhookEndpoint.active.is_(True)))


def _fan_out(connection: Connection, outbox_id: int, call: RecordedCall, kind: EventType, created_at: datetime,
             *, retry_period: float) -> list[int]:
    """One pending delivery of the event per active endpoint of the tenant that takes its type; their ids."""
    return _insert_deliveries(connection, _delivery_rows(connection, outbox_id, call, kind, created_at,
                                                         retry_period=retry_period))


def _insert_deliveries(connection: Connection, deliveries: list[dict[str, Any]]) -> list[int]:
    """Insert pending deliveries; their ids, in the order given."""
    if not deliveries:
        return []
    return list(connection.scalars(
        insert(DELIVERIES).returning(DELIVERIES.c.id, sort_by_parameter_order=True), deliveries
    ))


def _delivery_rows(connection: Connection, outbox_id: int, call: RecordedCall, kind: EventType,
                   created_at: datetime, *, retry_period: float) -> list[dict[str, Any]]:
    """The event's pending deliveries: one per active endpoint of the tenant that takes its type."""
    endpoints = _endpoints_of_transaction(connection, call.tenant_id)
    return [
        {
            "outbox_id": outbox_id,
            "endpoint_id": endpoint.id,
            "call_id": call.id,
            "next_attempt_at": created_at,
            "retry_until": created_at + timedelta(seconds=retry_period),
            "created_at": created_at,
        }
        for endpoint in endpoints
        if endpoint.event_types is None or kind.value in endpoint.event_types
    ]


def _deletion_record(call: RecordedCall, tenant_slug: str, actor: str | None, now: datetime) -> CallRecordV1:
    record = identity_record(call, tenant_slug, state="deleted", deleted=True)
    record.review.decided_by = actor
    record.review.decided_at = now
    return record


def _strip_earlier_events(session: Session, call: RecordedCall) -> None:
    _strip_events(session, {call.id: call})


def _strip_events(session: Session, calls: dict[str, RecordedCall]) -> None:
    """Every event of `calls` (by id, one tenant) keeps the call's identity only. Found by call id alone (a
    call's id is unique across tenants): with the tenant beside it, a planner whose statistics predate a
    purge's new events may read every event of the tenant through the feed index, once per chunk."""
    earlier = session.scalars(select(OutboxEvent).where(OutboxEvent.call_id.in_(list(calls)))).all()
    for old in earlier:
        data = old.payload.get("data", {})
        stripped = identity_record(calls[old.call_id], str(data.get("tenant", "")), state=str(data.get("state", "")),
                                   deleted=True)
        old.payload = envelope(old.type, str(old.payload.get("timestamp", "")), stripped)


def record_deletions(session: Session, calls: Sequence[RecordedCall], tenant: Tenant, *, actor: str) -> None:
    """`call.deleted` for each of `calls` (all of `tenant`), their earlier events stripped first: what
    `record_event` does for one deleted call, with one query for all their earlier events (a retention purge's
    chunk; the tenant's endpoints are read once for the chunk's transaction)."""
    if not calls:
        return
    _strip_events(session, {call.id: call for call in calls})
    now = utcnow()
    for call in calls:
        record_event(session, call, EventType.deleted, actor=actor,
                     record=_deletion_record(call, tenant.slug, actor, now))


def follow_call_owner(session: Session, call_id: str, agent_id: str | None, team: str | None) -> None:
    """The call's events take its new agent and team. The feed shows an event to the users who may see its
    call now, as `/api/calls` shows the call (`visible_events_clause` reads the copies on the events, which
    outlive a deleted call): an agent the call was taken from no longer reads its records, the new one does.
    A `call.reassigned` event stays with the owner it was written for (`record_reassignment`)."""
    session.execute(
        update(OutboxEvent).where(OutboxEvent.call_id == call_id, OutboxEvent.type != EventType.reassigned.value)
        .values(agent_id=agent_id, team=team)
    )


def record_reassignment(session: Session, call: RecordedCall, tenant_slug: str, was: tuple[str | None, str | None],
                        *, shown_to: tuple[str | None, str | None], actor: str | None) -> int:
    """Tell the ones who lost the call, in the feed they read, that it left them: a `call.reassigned` event
    shown to the (agent id, team) `shown_to` (None where that part did not change: an agent moved within a team
    stays the team's call) and to tenant-wide readers and webhooks; identity only, as they knew it (`was`), the
    new owner not named. Without it a team-scoped integration kept the note and tasks it had filed, never
    learning they were stale (the feed simply stopped showing the call). Flushes."""
    agent_id, team = was
    record = identity_record(call, tenant_slug, state=call.state.value).model_copy(
        update={"agent_id": agent_id, "team": team})
    return record_event(session, call, EventType.reassigned, actor=actor, record=record, owner=shown_to)


@event.listens_for(Session, "after_commit")
def _hand_over_after_commit(session: Session) -> None:
    hand_over_deliveries(session.info.pop(PENDING_DELIVERIES, None) or ())


def hand_over_deliveries(delivery_ids: Sequence[int]) -> None:
    """Give deliveries whose rows are committed to this process's notifier (the workers), if any."""
    if delivery_ids and _notifier is not None:
        try:
            _notifier(list(delivery_ids))
        except Exception:  # the sweep delivers what the hand-over loses
            logger.warning(
                "could not hand %d webhook deliveries to the workers; the sweep will", len(delivery_ids),
                exc_info=True,
            )


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(PENDING_DELIVERIES, None)
