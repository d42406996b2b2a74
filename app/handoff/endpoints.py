"""Webhook endpoints and their deliveries: register, list, disable, rotate a secret, list and replay
deliveries. Every function is scoped to one tenant; they flush, the entry point commits."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import scalar_for_update, scalars_for_update
from app.errors import NotFoundError, PostcallError
from app.handoff.outbox import PENDING_DELIVERIES, EventType
from app.handoff.secrets import SecretBox, generate_secret
from app.handoff.urls import check_endpoint_url
from app.models import DeliveryStatus, OutboxEvent, Tenant, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.models.tables import utcnow
from app.pipeline.calls import find_call
from app.privacy.mask import stored_error

# After a rotation the previous secret keeps signing this long, so receivers can switch without a gap.
ROTATION_OVERLAP = timedelta(hours=24)
MAX_DESCRIPTION_CHARS = 200


class WebhookInputError(PostcallError):
    """An endpoint cannot be registered or changed as asked (unknown event type, bad description)."""


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # the only time the plain secret leaves this module


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
    session.add(endpoint)
    session.flush()
    return NewEndpoint(endpoint, secret)


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
    """Stop sending to the endpoint; its pending deliveries are dead-lettered (replayable)."""
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


def enable_endpoint(session: Session, settings: Settings, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Send to the endpoint again (disabled by hand or by a 410): new events go to it; what was
    dead-lettered meanwhile is sent again only when replayed (`replay_deliveries`)."""
    if not endpoint.active:
        _require_room(session, settings, endpoint.tenant_id)
    endpoint.active = True
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    session.flush()
    return endpoint


class RotationInProgressError(PostcallError):
    """The endpoint's previous secret still signs: rotating again would drop it before its overlap ends."""


def rotate_secret(session: Session, settings: Settings, endpoint: WebhookEndpoint, *, force: bool = False) -> str:
    """A new signing secret. The previous one keeps signing too (two signatures) for ROTATION_OVERLAP.

    Only one previous secret is kept: during an overlap a second rotation (the printed secret lost, say)
    would drop the original at once, and a receiver still on it would refuse every delivery. Refused then,
    unless `force` (the original is compromised: dropping it at once is the point)."""
    now = utcnow()
    expires = endpoint.previous_secret_expires_at
    if not force and endpoint.previous_secret_encrypted and expires is not None and expires > now:
        raise RotationInProgressError(
            f"the secret before the last rotation still signs until {expires:%Y-%m-%d %H:%M} UTC; rotating "
            "again now drops it at once (receivers still using it refuse every delivery): wait, or force it")
    secret = generate_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret_encrypted = SecretBox.from_settings(settings).seal(secret)
    session.flush()
    return secret


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
