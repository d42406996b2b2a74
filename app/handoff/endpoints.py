"""Webhook endpoints and their deliveries: register, list, disable, rotate a secret, list and replay
deliveries. Every function is scoped to one tenant; they flush, the entry point commits."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import scalar_for_update, scalars_for_update
from app.errors import ConfigError, NotFoundError, PostcallError
from app.handoff.outbox import DELIVERIES, PENDING_DELIVERIES, EventType, hold_event_writers
from app.handoff.secrets import SecretBox, generate_secret
from app.handoff.urls import check_endpoint_url
from app.models import (
    DeliveryStatus,
    OutboxEvent,
    OutboxPurgeMark,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.tables import utcnow
from app.pipeline.calls import find_call
from app.privacy.mask import stored_error
from app.schemas.api import EndpointOut

logger = logging.getLogger(__name__)

# After a rotation the previous secret keeps signing this long, so receivers can switch without a gap.
ROTATION_OVERLAP = timedelta(hours=24)
MAX_DESCRIPTION_CHARS = 200
# Why a delivery worker disabled an endpoint (a single 410 Gone): shown by `webhooks list` and GET /api/webhooks.
GONE_REASON = "the receiver answered 410 Gone"
# How long disabling or enabling waits for transactions that are writing events (PostgreSQL).
WRITERS_WAIT = "5s"
# Backlog deliveries are inserted this many at a time.
BACKLOG_CHUNK = 1000
# An event id a refusal says back is cut to this (a real one has 36 characters).
MAX_SHOWN_EVENT_ID_CHARS = 64


class EndpointView(EndpointOut):
    """An endpoint as `webhooks list --json` and GET /api/webhooks show it: `EndpointOut` and when it was
    disabled (with `disabled_reason`: why; a 410 from the receiver says so)."""

    disabled_at: datetime | None = Field(description="When it was disabled (by hand, or by a 410 Gone from the "
                                                     "receiver); null while active.")


def subscription_warnings(event_types: Sequence[str] | None) -> list[str]:
    """What a receiver following the call's decisions misses with this subscription (said when it is made,
    not found out from a stale CRM): without call.reopened (and call.rejected) an approved call sent back
    to review, or rejected after a reopen, never reaches it, and what it filed at call.approved stays."""
    if event_types is None or EventType.approved.value not in event_types:
        return []
    missing = [e.value for e in (EventType.reopened, EventType.rejected) if e.value not in event_types]
    if EventType.reopened.value not in missing:
        return []
    return [f"the endpoint takes call.approved but not {' or '.join(missing)}: when an approved call is reopened "
            "(a supervisor, or `postcall reprocess` storing a new extraction) and then rejected or approved with "
            "other items, it is not told: the note and tasks it filed at call.approved stay as they were. "
            "Subscribe to call.approved, call.rejected, call.reopened, call.updated and call.deleted at least "
            "(or leave --events out for all)"]


class WebhookInputError(PostcallError):
    """An endpoint cannot be registered or changed as asked (unknown event type, bad description)."""


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # the only time the plain secret leaves this module
    # What the admin must know about it: what its subscription misses, another active endpoint of the tenant
    # with the same URL (`webhooks add` prints them; POST /api/webhooks answers them as its `warnings`).
    warnings: tuple[str, ...] = ()


def _clean_event_types(event_types: Sequence[str] | None) -> list[str] | None:
    """The subscribed types, sorted; None (not given) is every type. An empty list is refused: stored as
    "every type" it would have subscribed to everything the caller just said they did not want."""
    if event_types is None:
        return None
    if not event_types:
        raise WebhookInputError("an endpoint subscribes to at least one event type; leave the events out for all")
    known = {e.value for e in EventType}
    unknown = [e for e in event_types if e not in known]
    if unknown:
        raise WebhookInputError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return sorted(set(event_types))


def add_endpoint(
    session: Session,
    settings: Settings,
    *,
    tenant_id: int,
    url: str,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
) -> NewEndpoint:
    """Register an endpoint with a fresh signing secret. It receives events written from now on."""
    checked = check_endpoint_url(url, allow_private=settings.webhook_allow_private,
                                 allowed_networks=settings.webhook_allowed_networks)
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise WebhookInputError(f"a description has at most {MAX_DESCRIPTION_CHARS} characters")
    _require_room(session, settings, tenant_id)
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=checked,
        description=description or None,
        event_types=_clean_event_types(event_types),
        secret_encrypted=SecretBox.from_settings(settings).seal(secret),
        active=True,
        created_at=utcnow(),
    )
    duplicates = _active_endpoints_at(session, tenant_id, checked)
    session.add(endpoint)
    session.flush()
    warnings = [*subscription_warnings(endpoint.event_types), *_duplicate_warnings(duplicates, endpoint.id)]
    if duplicates:
        logger.warning("webhook endpoint %s registered for tenant %s with the URL of active endpoint(s) %s",
                       endpoint.id, tenant_id, ", ".join(str(d) for d in duplicates))
    return NewEndpoint(endpoint, secret, tuple(warnings))


def _receiver_key(url: str) -> tuple[str, str, int | None, str, str]:
    """What makes two URLs the same receiver: scheme and host in any case, the default port written or not,
    an empty path or "/"."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path or "/", parts.query


def _active_endpoints_at(session: Session, tenant_id: int, url: str) -> list[int]:
    """The ids of the tenant's active endpoints that send to the same receiver as `url` (a tenant has at most
    POSTCALL_WEBHOOK_MAX_ENDPOINTS active ones, so they are compared here rather than in SQL)."""
    key = _receiver_key(url)
    return [int(endpoint_id) for endpoint_id, other_url in session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.url)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.active.is_(True))
        .order_by(WebhookEndpoint.id)) if _receiver_key(other_url) == key]


def _duplicate_warnings(duplicates: Sequence[int], new_id: int) -> list[str]:
    """Registering the same URL again is allowed (two subscriptions to one receiver can be meant), but is
    mostly an admin who lost a secret: every event then reaches the receiver twice, signed by two secrets,
    and the copy signed with the lost one fails its check. Said at once, with the way back."""
    if not duplicates:
        return []
    others = ", ".join(str(d) for d in duplicates)
    first = duplicates[0]
    return [f"active endpoint(s) {others} of this tenant already send to this URL: every event now goes to the "
            f"receiver once per endpoint, each signed with that endpoint's own secret. If you registered again "
            f"because a secret was lost, use `postcall webhooks rotate-secret {first}` (API: POST "
            f"/api/webhooks/{first}/rotate-secret) for a new one and disable this endpoint (`postcall webhooks "
            f"disable {new_id}`); or keep this one and disable the old one (`postcall webhooks disable {first}`: "
            "its pending deliveries are dead-lettered)"]


def _require_room(session: Session, settings: Settings, tenant_id: int) -> None:
    """Refuse one more active endpoint past POSTCALL_WEBHOOK_MAX_ENDPOINTS. Every event fans out to each
    active endpoint in the transaction of the change it reports: without a bound, one tenant's admin made
    every review slower and used up delivery ids for all. The tenant's row is locked first (FOR NO KEY
    UPDATE on PostgreSQL: it leaves alone the key checks of rows that reference the tenant; SQLite's write
    lock), so two admins adding at once are counted one after the other, never both below the limit."""
    scalar_for_update(session, select(Tenant.id).where(Tenant.id == tenant_id), key_share=True)
    active = session.scalar(select(func.count()).select_from(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.active.is_(True))) or 0
    if active >= settings.webhook_max_endpoints:
        raise WebhookInputError(f"the tenant has {active} active endpoints, the limit "
                                "(POSTCALL_WEBHOOK_MAX_ENDPOINTS): disable one first")


def list_endpoints(session: Session, tenant_id: int) -> list[WebhookEndpoint]:
    return list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id).order_by(WebhookEndpoint.id)
    ).all())


def get_endpoint(session: Session, tenant_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id)
    )
    if endpoint is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id} not found")
    return endpoint


def disable_endpoint(session: Session, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    """Stop sending to the endpoint; its pending deliveries are dead-lettered (replayable). A pause: the
    events written while it is disabled are queued for it when it is enabled (`enable_endpoint`)."""
    if not hold_event_writers(session, WRITERS_WAIT):
        # Without the lock an event committing just after the disable may get no delivery while a newer one
        # got one, and `enable` would then not queue it; rare (a writer busy for seconds), logged.
        logger.warning("disabling webhook endpoint %s without waiting for the event writers (busy over %s): an "
                       "event written at this moment may not be queued when it is enabled", endpoint.id,
                       WRITERS_WAIT)
    now = utcnow()
    endpoint.active = False
    endpoint.disabled_reason = reason[:500]
    endpoint.disabled_at = now
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == DeliveryStatus.pending)
        .values(**finished_values(DeliveryStatus.dead, now, f"endpoint disabled: {reason}"))
    )
    session.flush()
    return endpoint


class EndpointActiveError(PostcallError):
    """An endpoint still sending cannot be deleted: it is disabled first."""


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> int:
    """Delete a disabled endpoint for good, with its deliveries and their attempts (database cascades); the
    number of deliveries that went with it. Refused while it is active (EndpointActiveError): disabling first
    dead-letters what was pending and stops new events being fanned out to it, so nothing is written for an
    endpoint being deleted. Its dead letters cannot be replayed afterwards. Flushes."""
    if endpoint.active:
        raise EndpointActiveError(f"endpoint {endpoint.id} is active: disable it first (`postcall webhooks disable "
                                  f"{endpoint.id}`, POST /api/webhooks/{endpoint.id}/disable), then delete it")
    deliveries = session.scalar(select(func.count()).select_from(WebhookDelivery)
                                .where(WebhookDelivery.endpoint_id == endpoint.id)) or 0
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(
        select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id))))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()
    return int(deliveries)


def finished_values(status: DeliveryStatus, now: datetime, error: str | None = None) -> dict[str, Any]:
    """The columns a delivery that ends (accepted or dead-lettered) gets, for every way it ends. Its
    `next_attempt_at` becomes when it finished: no attempt is due any more, and the index on (status,
    next_attempt_at) then finds the deliveries given up on in a time window (/metrics' dead letters of the
    last day) without reading every dead letter ever."""
    values: dict[str, Any] = {"status": status, "finished_at": now, "lease_until": None, "next_attempt_at": now}
    if error is not None:
        # Masked and cut as every stored error is: a receiver's answer can echo the record it was sent.
        values["last_error"] = stored_error(error)
    return values


class WritersBusyError(WebhookInputError):
    """Event-writing transactions kept the outbox busy: enabling now could miss an event being written."""


@dataclass
class Enabled:
    """What `enable_endpoint` did."""

    endpoint: WebhookEndpoint
    # It was disabled; now it is active.
    was_disabled: bool = False
    disabled_at: datetime | None = None
    # Deliveries created for the events written while it was disabled (0 with backlog=False).
    queued: int = 0
    # backlog=False: the events written while it was disabled that were not queued.
    skipped: int = 0
    # What the operator must know: events the retention purge deleted, dead letters to replay.
    notes: list[str] = field(default_factory=list)


def enable_endpoint(session: Session, settings: Settings, endpoint: WebhookEndpoint, *,
                    backlog: bool = True) -> Enabled:
    """Send to the endpoint again (disabled by hand or by a 410). Disabling is a pause: the events of its
    tenant that match its subscription and were written while it was disabled (they have no delivery to it)
    get one now, in outbox order, so each call's events reach it in order, before any newer one
    (`backlog=False`: not queued, counted in `skipped`). What was dead-lettered before or by the disable is
    sent again only when replayed (`replay_deliveries`). An event the retention purge already deleted
    cannot be sent: a note says so."""
    if endpoint.active:
        return Enabled(endpoint)
    # First: an event being written now is either committed before (and queued below) or written after
    # this commits (and fanned out to the endpoint, active by then). Then the limit (SQLite: its write lock).
    if not hold_event_writers(session, WRITERS_WAIT):
        raise WritersBusyError(f"transactions writing events kept the outbox busy for over {WRITERS_WAIT}; "
                               "try again in a moment")
    # Read again under the row's lock: an enable that ran meanwhile has queued the backlog already.
    session.refresh(endpoint, with_for_update=True)
    if endpoint.active:
        return Enabled(endpoint)
    _require_room(session, settings, endpoint.tenant_id)
    result = Enabled(endpoint, was_disabled=True, disabled_at=endpoint.disabled_at)
    missed = _missed_events(session, endpoint)
    if backlog:
        result.queued = _queue_backlog(session, settings, endpoint, missed)
    else:
        result.skipped = len(missed)
    result.notes.extend(_enable_notes(session, settings, endpoint, result))
    if missed:
        logger.info("webhook endpoint %s enabled: %d event(s) written while it was disabled %s", endpoint.id,
                    len(missed), "queued" if backlog else "skipped")
    endpoint.active = True
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    session.flush()
    return result


def _missed_events(session: Session, endpoint: WebhookEndpoint) -> list[tuple[int, str]]:
    """(outbox id, call id), oldest first, of the tenant's events the endpoint subscribes to that were written
    while it was disabled. Those are the events with no delivery to it after the last event that has one
    (every event before the disable was fanned out to it, `hold_event_writers`), written since it was
    registered (an endpoint receives events from its registration on)."""
    last_fanned_out = session.scalar(select(func.max(WebhookDelivery.outbox_id))
                                     .where(WebhookDelivery.endpoint_id == endpoint.id)) or 0
    has_delivery = exists().where(WebhookDelivery.endpoint_id == endpoint.id,
                                  WebhookDelivery.outbox_id == OutboxEvent.id)
    query = (
        select(OutboxEvent.id, OutboxEvent.call_id)
        .where(OutboxEvent.tenant_id == endpoint.tenant_id, OutboxEvent.id > last_fanned_out,
               OutboxEvent.created_at >= endpoint.created_at, ~has_delivery)
        .order_by(OutboxEvent.id)
    )
    if endpoint.event_types is not None:
        query = query.where(OutboxEvent.type.in_(list(endpoint.event_types)))
    return [(int(outbox_id), str(call_id)) for outbox_id, call_id in session.execute(query)]


def _queue_backlog(session: Session, settings: Settings, endpoint: WebhookEndpoint,
                   missed: list[tuple[int, str]]) -> int:
    """One pending delivery per missed event, with a fresh retry period. Only each call's first is handed to
    the workers at commit: the next one of a call waits for it (per-call order) and is handed out when it
    finishes; the sweep covers the rest."""
    if not missed:
        return 0
    now = utcnow()
    retry_until = now + timedelta(seconds=settings.webhook_retry_period_seconds)
    first_of_call: list[int] = []
    seen: set[str] = set()
    for start in range(0, len(missed), BACKLOG_CHUNK):
        chunk = missed[start:start + BACKLOG_CHUNK]
        rows = [{"outbox_id": outbox_id, "endpoint_id": endpoint.id, "call_id": call_id, "next_attempt_at": now,
                 "retry_until": retry_until, "created_at": now} for outbox_id, call_id in chunk]
        ids = list(session.connection().scalars(
            insert(DELIVERIES).returning(DELIVERIES.c.id, sort_by_parameter_order=True), rows))
        for delivery_id, (_, call_id) in zip(ids, chunk, strict=True):
            if call_id not in seen:
                seen.add(call_id)
                first_of_call.append(delivery_id)
    session.info.setdefault(PENDING_DELIVERIES, []).extend(first_of_call)
    return len(missed)


def _enable_notes(session: Session, settings: Settings, endpoint: WebhookEndpoint, result: Enabled) -> list[str]:
    notes: list[str] = []
    days = settings.handoff_retention_days
    disabled_at = endpoint.disabled_at
    purged_through = session.scalar(select(OutboxPurgeMark.purged_through)
                                    .where(OutboxPurgeMark.tenant_id == endpoint.tenant_id))
    if days and disabled_at is not None and purged_through is not None \
            and disabled_at <= utcnow() - timedelta(days=days):
        notes.append(f"it was disabled for more than POSTCALL_HANDOFF_RETENTION_DAYS ({days}): events written "
                     "while it was disabled that the retention purge already deleted cannot be sent; catch up "
                     "those calls from GET /api/calls and GET /api/calls/{id}/record")
    dead = session.scalar(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == DeliveryStatus.dead)) or 0
    if dead:
        notes.append(f"{dead} earlier deliveries to it are dead-lettered (pending when it was disabled, or given "
                     "up before): `postcall webhooks replay --failed` (API: POST /api/webhooks/deliveries/replay "
                     '{"all_dead": true}) sends them again')
    if result.skipped:
        notes.append(f"{result.skipped} event(s) written while it was disabled were not queued (as asked); the "
                     "receiver catches those calls up from GET /api/calls/{id}/record")
    return notes


class RotationInProgressError(PostcallError):
    """The endpoint's previous secret still signs: rotating again would drop it before its overlap ends."""


@dataclass(frozen=True)
class Rotation:
    secret: str  # the new one, shown once
    # The secret it replaced keeps signing until this moment (None: no earlier secret signs any more).
    previous_until: datetime | None
    notes: tuple[str, ...] = ()


def _readable(box: SecretBox, sealed: str | None) -> bool:
    if not sealed:
        return False
    try:
        box.open(sealed)
    except ConfigError:
        return False
    return True


def rotate_secret(session: Session, settings: Settings, endpoint: WebhookEndpoint, *,
                  force: bool = False) -> Rotation:
    """A new signing secret. The previous one keeps signing too (two signatures) for ROTATION_OVERLAP.

    Only one previous secret is kept: during an overlap a second rotation (the printed secret lost, say)
    would drop the original at once, and a receiver still on it would refuse every delivery. Refused then,
    unless `force` (the original is compromised: dropping it at once is the point).

    A current secret this process cannot decrypt is never kept as the previous one (it signed nothing and,
    kept, it blocked a readable one): a readable previous secret still in its overlap (the last rotation ran
    with another key) keeps signing; with none, the rotation is refused unless `force`, because the cause
    may be this process's key rather than a changed one, and a secret sealed with the wrong key is one the
    workers cannot read either."""
    now = utcnow()
    box = SecretBox.from_settings(settings)
    expires = endpoint.previous_secret_expires_at
    in_overlap = bool(endpoint.previous_secret_encrypted) and expires is not None and expires > now
    previous_readable = in_overlap and _readable(box, endpoint.previous_secret_encrypted)
    notes: list[str] = []
    previous: str | None
    previous_until: datetime | None
    if _readable(box, endpoint.secret_encrypted):
        if not force and previous_readable:
            raise RotationInProgressError(
                f"the secret before the last rotation still signs until {expires:%Y-%m-%d %H:%M} UTC; rotating "
                "again now drops it at once (receivers still using it refuse every delivery): wait, or force it")
        previous, previous_until = endpoint.secret_encrypted, now + ROTATION_OVERLAP
    else:
        unreadable = ("the endpoint's current secret cannot be decrypted with this process's key "
                      "(POSTCALL_WEBHOOK_SECRETS_KEY, or POSTCALL_SECRET_KEY)")
        if previous_readable and not force:
            previous, previous_until = endpoint.previous_secret_encrypted, expires
            notes.append(f"{unreadable}: it is dropped, not kept as the previous secret; the one before it still "
                         f"signs until {expires:%Y-%m-%d %H:%M} UTC")
        elif not force:
            raise RotationInProgressError(
                f"{unreadable}. If the key changed (every process has the new one), rotate with --force (API: "
                "force=true): the new secret replaces it and no previous secret is kept. If this process runs "
                "with another key than the workers, fix its key first: a secret sealed here would be unreadable "
                "to them too")
        else:
            previous, previous_until = None, None
            notes.append(f"{unreadable}: it is dropped, and no previous secret is kept: deliveries carry the new "
                         "signature alone from now on")
    secret = generate_secret()
    endpoint.previous_secret_encrypted = previous
    endpoint.previous_secret_expires_at = previous_until
    endpoint.secret_encrypted = box.seal(secret)
    session.flush()
    return Rotation(secret, previous_until, tuple(notes))


@dataclass(frozen=True)
class DeliveryRow:
    delivery: WebhookDelivery
    event_id: str
    event_type: str
    url: str


def list_deliveries(
    session: Session,
    tenant_id: int,
    *,
    failed_only: bool = False,
    endpoint_id: int | None = None,
    call_id: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[DeliveryRow]:
    """Newest first. `failed_only`: dead-lettered, or pending after at least one failed attempt; `call_id`:
    one call's (its id or external id); `before`: those with a smaller id (the next page: the last id of the
    page before)."""
    query = (
        select(WebhookDelivery, OutboxEvent.event_id, OutboxEvent.type, WebhookEndpoint.url)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if failed_only:
        query = query.where(
            (WebhookDelivery.status == DeliveryStatus.dead)
            | ((WebhookDelivery.status == DeliveryStatus.pending) & (WebhookDelivery.last_error.is_not(None)))
        )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if call_id is not None:
        # A call id or external id; a deleted call's deliveries outlive it, asked for by its id as given.
        with contextlib.suppress(NotFoundError):
            call_id = find_call(session, call_id, tenant_id).id
        query = query.where(WebhookDelivery.call_id == call_id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return [DeliveryRow(d, event_id, event_type, url) for d, event_id, event_type, url in session.execute(query)]


def attempts_of(session: Session, delivery_ids: Sequence[int]) -> dict[int, list[WebhookAttempt]]:
    """Every logged attempt of these deliveries, oldest first (callers pass ids they listed for a tenant)."""
    found: dict[int, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    for attempt in session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
                                   .order_by(WebhookAttempt.id)):
        found[attempt.delivery_id].append(attempt)
    return found


def _refuse_unreplayable(session: Session, tenant_id: int, delivery_ids: set[int]) -> None:
    """Say why deliveries asked for by id cannot be replayed: unknown here, or of a disabled endpoint
    (replaying nothing and saying "0 replayed" looked like success)."""
    if not delivery_ids:
        return
    disabled = {int(delivery_id): int(endpoint_id) for delivery_id, endpoint_id in session.execute(
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(sorted(delivery_ids)), WebhookEndpoint.tenant_id == tenant_id))}
    unknown = sorted(delivery_ids - disabled.keys())
    if unknown:
        raise NotFoundError(f"webhook deliveries not found: {', '.join(map(str, unknown))}")
    endpoints = ", ".join(str(endpoint) for endpoint in sorted(set(disabled.values())))
    raise WebhookInputError(f"deliveries {', '.join(map(str, sorted(disabled)))} are of disabled endpoint(s) "
                            f"{endpoints}: enable the endpoint first, then replay")


def _refuse_unreplayable_event(session: Session, tenant_id: int, event_id: str) -> None:
    """Say why an event asked for by id has nothing to replay (it answered "0 replayed", as if it had worked):
    not found (an unknown id, another tenant's event, one the retention purge deleted: the same answer for
    each, so no tenant learns another's ids), its deliveries are all to disabled endpoints, or it has none."""
    outbox_id = session.scalar(select(OutboxEvent.id).where(OutboxEvent.event_id == event_id,
                                                            OutboxEvent.tenant_id == tenant_id))
    shown = repr(event_id[:MAX_SHOWN_EVENT_ID_CHARS])  # said back, but not a megabyte of it
    if outbox_id is None:
        raise NotFoundError(f"event {shown} not found (an event id is msg_ and 32 hex digits, as "
                            "`postcall webhooks deliveries` and the webhook-id header show it; events are kept for "
                            "POSTCALL_HANDOFF_RETENTION_DAYS)")
    disabled = sorted({int(endpoint_id) for endpoint_id in session.scalars(
        select(WebhookDelivery.endpoint_id).where(WebhookDelivery.outbox_id == outbox_id))})
    if disabled:
        raise WebhookInputError(f"event {shown} was sent only to disabled endpoint(s) "
                                f"{', '.join(map(str, disabled))}: enable the endpoint first, then replay")
    raise WebhookInputError(f"event {shown} has no delivery to replay: no endpoint of the tenant took it "
                            "when it was written (an endpoint receives the events written after it was registered, "
                            "of the types it subscribes to); its call is caught up from GET /api/calls/{id}/record")


def replay_deliveries(
    session: Session,
    settings: Settings,
    tenant_id: int,
    *,
    delivery_ids: Sequence[int] = (),
    event_id: str | None = None,
    all_dead: bool = False,
    now: datetime | None = None,
) -> list[int]:
    """Send deliveries again (same webhook-id), with a fresh retry period. Returns the replayed ids.

    Asked for by id, every one must be replayable (`NotFoundError` for one unknown here, `WebhookInputError`
    for one of a disabled endpoint); asked for by event id, the event must be the tenant's and have a
    delivery to an active endpoint, which is replayed whatever its status (pending, succeeded, dead).

    A replayed event goes out in its call's order again: later events of the same call to the same
    endpoint that were already delivered are not resent, so a receiver must (and can, by webhook-id and
    the record's state) treat an older event arriving late as stale."""
    now = now or utcnow()
    query = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.active.is_(True))
    )
    if delivery_ids:
        query = query.where(WebhookDelivery.id.in_(list(delivery_ids)))
    elif event_id is not None:
        query = query.where(OutboxEvent.event_id == event_id)
    elif all_dead:
        query = query.where(WebhookDelivery.status == DeliveryStatus.dead)
    else:
        raise WebhookInputError("say what to replay: delivery ids, an event id, or all dead-lettered deliveries")
    # Locked: the hand-off's retention purge locks the deliveries it deletes, so a replay that races it
    # either goes first (and the purge keeps the now pending event) or finds them gone (not found), never
    # updates rows deleted under it (a 500).
    deliveries = scalars_for_update(session, query.order_by(WebhookDelivery.outbox_id), of=WebhookDelivery)
    if delivery_ids:
        _refuse_unreplayable(session, tenant_id, set(delivery_ids) - {d.id for d in deliveries})
    elif event_id is not None and not deliveries:
        _refuse_unreplayable_event(session, tenant_id, event_id)
    for delivery in deliveries:
        delivery.status = DeliveryStatus.pending
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.retry_until = now + timedelta(seconds=settings.webhook_retry_period_seconds)
        delivery.lease_until = None
        delivery.finished_at = None
    session.flush()
    ids = [d.id for d in deliveries]
    session.info.setdefault(PENDING_DELIVERIES, []).extend(ids)
    return ids
