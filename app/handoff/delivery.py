"""Deliver one webhook: lease it, sign it the Standard Webhooks way, POST it, record the attempt.

Three steps, no transaction held across the HTTP request:
  1. lease the delivery (row lock, SKIP LOCKED), check it is due and first in its call's order for this
     endpoint, and write the attempt as `in_flight`;
  2. POST the event with `webhook-id` (the event's id, the same on every attempt), `webhook-timestamp`
     and `webhook-signature`;
  3. record the outcome: succeeded, retry later (exponential backoff with jitter, Retry-After honoured),
     or dead-lettered; 410 Gone disables the endpoint.
A worker killed between 1 and 3 leaves a lease that lapses; the sweep then hands the delivery out again,
and the lost attempt is marked `lost`. A receiver may therefore see an event twice, with the same id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import Exists, and_, bindparam, exists, insert, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker
from standardwebhooks import Webhook

from app.config import Settings
from app.db.session import unit_of_work
from app.errors import ConfigError
from app.handoff.endpoints import GONE_REASON, disable_endpoint, finished_values
from app.handoff.outbox import webhook_body
from app.handoff.secrets import SecretBox
from app.handoff.urls import Network, WebhookUrlError, attempt_deadline, check_endpoint_url
from app.models import DeliveryStatus, OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.models.tables import utcnow
from app.pipeline.retry import retry_countdown
from app.privacy.mask import stored_error
from app.text.storable import printable

logger = logging.getLogger(__name__)

# How much of an error answer's body goes into its message.
ERROR_BODY_BYTES = 200
# How much of an answer's body is read at most: enough for any acknowledgement, so that the connection is
# kept for the next delivery; past it the connection is closed instead of reading on.
ANSWER_BODY_BYTES = 64 * 1024
# The lease outlives the request timeout by this much, so a slow but live worker is never overtaken.
LEASE_MARGIN_SECONDS = 5.0
# A Retry-After beyond this is capped: the retry period still bounds the whole effort.
MAX_RETRY_AFTER_SECONDS = 6 * 60 * 60
USER_AGENT = "Postcall-Webhooks/1"


class AttemptOutcome(StrEnum):
    in_flight = "in_flight"
    succeeded = "succeeded"
    retry = "retry"
    dead = "dead"
    lost = "lost"


class DeliveryResult(StrEnum):
    succeeded = "succeeded"
    retry = "retry"
    dead = "dead"
    not_due = "not_due"  # leased by another worker, waiting for its next attempt, or already finished
    blocked = "blocked"  # an earlier event of the same call to the same endpoint is still pending
    missing = "missing"


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float
    retry_period: float
    backoff_base: float
    backoff_max: float
    max_client_error_attempts: int
    allow_private: bool
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            timeout=settings.webhook_timeout_seconds,
            retry_period=settings.webhook_retry_period_seconds,
            backoff_base=settings.webhook_backoff_base_seconds,
            backoff_max=settings.webhook_backoff_max_seconds,
            max_client_error_attempts=settings.webhook_max_client_error_attempts,
            allow_private=settings.webhook_allow_private,
            allowed_networks=settings.webhook_allowed_networks,
        )

    @property
    def lease_seconds(self) -> float:
        return self.timeout + LEASE_MARGIN_SECONDS

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2^(attempts-1), capped."""
        return retry_countdown(max(0, attempts - 1), None, self.backoff_base, self.backoff_max)


@dataclass(frozen=True)
class DeliveryReport:
    result: DeliveryResult
    status_code: int | None = None
    # The same call's next delivery to this endpoint, now first in line (hand it out at once).
    next_delivery_id: int | None = None


@dataclass(frozen=True)
class _Leased:
    attempt_id: int
    url: str
    event_id: str
    body: str
    secrets: tuple[str, ...]
    # Why the event cannot be signed (no secret of the endpoint decrypts with this worker's key): the attempt
    # is recorded as failed with this reason and retried with the usual backoff, never sent unsigned.
    unsignable: str | None = None
    # A secret of the endpoint that does not decrypt and was left out of the signatures (the others signed):
    # recorded with the attempt and in the delivery's last_error, whatever the receiver answers.
    warning: str | None = None


def serialize(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signature_headers(event_id: str, body: str, secrets: tuple[str, ...], at: datetime) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` (one `v1,` signature per secret)."""
    signatures = " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


def _earlier_pending(endpoint_id: Any, call_id: Any, outbox_id: Any) -> Exists:
    """An earlier event of the same call to the same endpoint is still pending (this one must wait)."""
    earlier = aliased(WebhookDelivery)
    return exists().where(
        earlier.endpoint_id == endpoint_id,
        earlier.call_id == call_id,
        earlier.status == DeliveryStatus.pending,
        earlier.outbox_id < outbox_id,
    )


# Delivery is a hot path. Its statements are Core, not ORM objects (loading and flushing objects cost more
# CPU than the HTTP request), built once with bound parameters and run on the session's connection:
# building a statement costs about as much Python as executing it, and the ORM execution layer adds more.
# Worker CPU per delivery 5.69 ms built per delivery, 2.48 ms so (bench/handoff, docs/benchmarks.md
# "Hand-off delivery").
_LEASE_ROW = (
    select(
        WebhookDelivery.status, WebhookDelivery.lease_until, WebhookDelivery.next_attempt_at,
        WebhookDelivery.retry_until, WebhookDelivery.endpoint_id, WebhookDelivery.call_id, WebhookDelivery.outbox_id,
        WebhookEndpoint.url, WebhookEndpoint.active, WebhookEndpoint.secret_encrypted,
        WebhookEndpoint.previous_secret_encrypted, WebhookEndpoint.previous_secret_expires_at,
        OutboxEvent.event_id, OutboxEvent.payload,
        _earlier_pending(WebhookDelivery.endpoint_id, WebhookDelivery.call_id, WebhookDelivery.outbox_id)
        .label("blocked"),
    )
    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
    .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_id)
    .where(WebhookDelivery.id == bindparam("delivery_id"))
    .with_for_update(of=WebhookDelivery, skip_locked=True)
)
_DELIVERY_EXISTS = select(WebhookDelivery.id).where(WebhookDelivery.id == bindparam("delivery_id"))
_LOSE_IN_FLIGHT_ATTEMPTS = (
    update(WebhookAttempt)
    .where(WebhookAttempt.delivery_id == bindparam("lapsed_delivery_id"),
           WebhookAttempt.outcome == AttemptOutcome.in_flight.value)
    .values(outcome=AttemptOutcome.lost.value, error="the worker stopped before the attempt finished",
            finished_at=bindparam("now"))
)
_TAKE_LEASE = (
    update(WebhookDelivery).where(WebhookDelivery.id == bindparam("delivery_id"))
    .values(attempts=WebhookDelivery.attempts + 1, lease_until=bindparam("lease_until"))
)
_START_ATTEMPT = insert(WebhookAttempt).values(
    delivery_id=bindparam("delivery_id"), outcome=AttemptOutcome.in_flight.value, started_at=bindparam("now")
).returning(WebhookAttempt.id)
_RECORD_ROW = (
    select(WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.retry_until,
           WebhookDelivery.endpoint_id, WebhookDelivery.call_id, WebhookDelivery.outbox_id)
    .where(WebhookDelivery.id == bindparam("delivery_id"))
    .with_for_update()
)
_FINISH_ATTEMPT = update(WebhookAttempt).where(WebhookAttempt.id == bindparam("attempt_id")).values(
    outcome=bindparam("outcome"), status_code=bindparam("status_code"), latency_ms=bindparam("latency_ms"),
    error=bindparam("error"), finished_at=bindparam("now"))
_NEXT_IN_LINE = (
    select(WebhookDelivery.id)
    .where(WebhookDelivery.endpoint_id == bindparam("endpoint_id"), WebhookDelivery.call_id == bindparam("call_id"),
           WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.outbox_id > bindparam("outbox_id"))
    .order_by(WebhookDelivery.outbox_id)
    .limit(1)
)
# One UPDATE of a delivery per set of columns an outcome writes (a handful of shapes), built on first use.
_SET_DELIVERY: dict[tuple[str, ...], Any] = {}


def _set_delivery(session: Session, delivery_id: int, **values: Any) -> None:
    columns = tuple(sorted(values))
    statement = _SET_DELIVERY.get(columns)
    if statement is None:
        statement = _SET_DELIVERY[columns] = (
            update(WebhookDelivery).where(WebhookDelivery.id == bindparam("_delivery_id"))
            .values({column: bindparam(column) for column in columns})
        )
    session.connection().execute(statement, {"_delivery_id": delivery_id, **values})


def _lease(session: Session, delivery_id: int, policy: DeliveryPolicy, box: SecretBox,
           now: datetime) -> _Leased | DeliveryReport:
    # One round trip for the delivery (locked), its endpoint, its event and whether it must wait its turn.
    connection = session.connection()
    row = connection.execute(_LEASE_ROW, {"delivery_id": delivery_id}).first()
    if row is None:
        exists_at_all = connection.scalar(_DELIVERY_EXISTS, {"delivery_id": delivery_id})
        return DeliveryReport(DeliveryResult.not_due if exists_at_all else DeliveryResult.missing)
    if row.status is not DeliveryStatus.pending:
        return DeliveryReport(DeliveryResult.not_due)
    if row.lease_until is not None and row.lease_until > now:
        return DeliveryReport(DeliveryResult.not_due)
    if row.next_attempt_at > now:
        return DeliveryReport(DeliveryResult.not_due)
    if row.blocked:
        return DeliveryReport(DeliveryResult.blocked)
    if row.lease_until is not None:
        # A lapsed lease: the worker holding it died mid-send, and its attempt never finished.
        connection.execute(_LOSE_IN_FLIGHT_ATTEMPTS, {"lapsed_delivery_id": delivery_id, "now": now})
        if row.retry_until <= now:
            # Only a finished attempt checked the retry period: one that kept dying never ended.
            _set_delivery(session, delivery_id, **finished_values(DeliveryStatus.dead, now,
                                                            "retry period over; last attempt lost"))
            # Given up on: the call's next event to this endpoint goes now, as after any dead letter.
            return DeliveryReport(DeliveryResult.dead, next_delivery_id=_next_in_line(
                session, row.endpoint_id, row.call_id, row.outbox_id))
    if not row.active:
        _set_delivery(session, delivery_id, **finished_values(DeliveryStatus.dead, now, "endpoint disabled"))
        return DeliveryReport(DeliveryResult.dead)
    connection.execute(_TAKE_LEASE, {"delivery_id": delivery_id,
                                     "lease_until": now + timedelta(seconds=policy.lease_seconds)})
    attempt_id = connection.scalar(_START_ATTEMPT, {"delivery_id": delivery_id, "now": now})
    assert attempt_id is not None
    sealed = [("current", row.secret_encrypted)]
    if (row.previous_secret_encrypted and row.previous_secret_expires_at is not None
            and row.previous_secret_expires_at > now):
        sealed.append(("previous", row.previous_secret_encrypted))
    secrets, unreadable = _open_secrets(box, sealed)
    if not secrets:
        # Raised here, it rolled the lease back: the delivery stayed due, untouched, and the sweep handed it
        # out again every few seconds with nothing recorded. Now it is a failed attempt saying why.
        return _Leased(attempt_id, row.url, row.event_id, "", (), unsignable=unreadable[0][1])
    warning = None
    if unreadable:
        # One secret that did not decrypt made the whole delivery unsignable: after a rotation under the wrong
        # key (or the key changed) the readable secret could not sign either, for the 24 h of the overlap.
        which = " and ".join(f"the {name} secret" for name, _ in unreadable)
        warning = (f"signed without {which} of endpoint {row.endpoint_id}: {unreadable[0][1]}")
        logger.warning("webhook delivery %s: %s", delivery_id, warning)
    return _Leased(attempt_id, row.url, row.event_id, serialize(webhook_body(row.payload, row.outbox_id)),
                   tuple(secrets), warning=warning)


def _open_secrets(box: SecretBox, sealed: list[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """The secrets that decrypt with this process's key, and (name, why) of those that do not."""
    opened: list[str] = []
    unreadable: list[tuple[str, str]] = []
    for name, value in sealed:
        try:
            opened.append(box.open(value))
        except ConfigError as exc:
            unreadable.append((name, str(exc)))
    return opened, unreadable


@dataclass(frozen=True)
class _Response:
    status_code: int | None
    retry_after: float | None
    error: str | None
    latency_ms: float


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _read_head(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` bytes of the answer's body, read raw (never decompressed: a small gzip body can unpack
    to gigabytes). A body read to its end leaves the connection to the next delivery; one cut short closes
    it."""
    head = b""
    for chunk in response.iter_raw():
        head += chunk
        if len(head) > limit:
            break
    return head


def _error_text(response: httpx.Response) -> str:
    """The start of an error answer's body, printable, at most ERROR_BODY_BYTES of it."""
    head = _read_head(response, ANSWER_BODY_BYTES)
    if response.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        return f"({response.headers['content-encoding']}-encoded body, not decoded)"
    return printable(head[:ERROR_BODY_BYTES].decode("utf-8", errors="replace"))


def _send(client: httpx.Client, leased: _Leased, policy: DeliveryPolicy) -> _Response:
    started = time.perf_counter()
    try:
        check_endpoint_url(leased.url, allow_private=policy.allow_private, allowed_networks=policy.allowed_networks)
    except WebhookUrlError as exc:
        if exc.temporary:  # the name did not resolve this time: a DNS hiccup is retried, as a refused connection
            return _Response(None, None, str(exc), 0.0)
        return _Response(None, None, f"refused: {exc}", 0.0)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        # The answer's body is read only for an error message: no compressed one.
        "accept-encoding": "identity",
        **signature_headers(leased.event_id, leased.body, leased.secrets, utcnow()),
    }
    # The whole attempt ends by the timeout, however slowly the receiver answers (webhook_transport).
    deadline = attempt_deadline.set(time.monotonic() + policy.timeout)
    try:
        with client.stream("POST", leased.url, content=leased.body.encode(), headers=headers,
                           timeout=policy.timeout, follow_redirects=False) as response:
            if response.is_success:
                error = None
                # Read (and dropped) so that the connection serves the next delivery; a long body closes it.
                # The receiver has taken the event (its 2xx came): a body that stalls or breaks off after it
                # only closes the connection. Sent again, the event was a duplicate downstream.
                with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
                    _read_head(response, ANSWER_BODY_BYTES)
            elif 300 <= response.status_code < 400:
                # Never followed (the signature is for this URL; a redirect may lead anywhere): the new
                # address is what the integrator needs to register.
                location = printable(response.headers.get("location", "")[:ERROR_BODY_BYTES]) or "none given"
                error = (f"HTTP {response.status_code} redirect to {location}, not followed: register the "
                         f"endpoint's new URL")
            else:
                error = f"HTTP {response.status_code}: {_error_text(response)}"
    except httpx.TimeoutException as exc:
        return _Response(None, None, f"timeout after {policy.timeout:g}s ({type(exc).__name__})",
                         (time.perf_counter() - started) * 1000.0)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
        return _Response(None, None, printable(f"{type(exc).__name__}: {exc}"),
                         (time.perf_counter() - started) * 1000.0)
    finally:
        attempt_deadline.reset(deadline)
    latency = (time.perf_counter() - started) * 1000.0
    return _Response(response.status_code, retry_after_seconds(response.headers.get("retry-after"), utcnow()),
                     error, latency)


def _next_in_line(session: Session, endpoint_id: int, call_id: str, outbox_id: int) -> int | None:
    next_id: int | None = session.connection().scalar(
        _NEXT_IN_LINE, {"endpoint_id": endpoint_id, "call_id": call_id, "outbox_id": outbox_id})
    return next_id


def _outcome(delivery: Any, response: _Response, policy: DeliveryPolicy,
             now: datetime) -> tuple[DeliveryResult, dict[str, Any]]:
    """What the response means for a pending delivery, and the delivery's new column values."""
    code, error = response.status_code, response.error
    values: dict[str, Any] = {"last_status_code": code, "last_error": stored_error(error) if error else None}
    if code is not None and 200 <= code < 300:
        return DeliveryResult.succeeded, {**values, **finished_values(DeliveryStatus.succeeded, now)}
    if code == 410:
        return DeliveryResult.dead, {**values, **finished_values(DeliveryStatus.dead, now,
                                                           "HTTP 410 Gone: the endpoint was disabled")}
    if error and error.startswith("refused:"):
        return DeliveryResult.dead, {**values, **finished_values(DeliveryStatus.dead, now)}
    client_error = code is not None and 400 <= code < 500 and code not in (408, 425, 429)
    redirect = code is not None and 300 <= code < 400
    if (client_error or redirect) and delivery.attempts >= policy.max_client_error_attempts:
        return DeliveryResult.dead, {**values, **finished_values(DeliveryStatus.dead, now)}
    delay = policy.backoff(delivery.attempts)
    if response.retry_after is not None and code in (429, 503):
        delay = max(delay, min(response.retry_after, MAX_RETRY_AFTER_SECONDS))
    next_at = now + timedelta(seconds=delay)
    if next_at > delivery.retry_until:
        if now >= delivery.retry_until:
            return DeliveryResult.dead, {**values, **finished_values(DeliveryStatus.dead, now,
                                                               f"retry period over; last: {error or code}")}
        # The wait (a long Retry-After, the last backoff) ends past the period: one last try as it ends,
        # rather than giving up early (up to the backoff cap, an hour, before the period is over).
        next_at = delivery.retry_until
    return DeliveryResult.retry, {**values, "next_attempt_at": next_at, "lease_until": None}


def _record(session: Session, delivery_id: int, leased: _Leased, response: _Response, policy: DeliveryPolicy,
            now: datetime) -> DeliveryReport:
    connection = session.connection()
    delivery = connection.execute(_RECORD_ROW, {"delivery_id": delivery_id}).first()
    if delivery is None:
        return DeliveryReport(DeliveryResult.missing)
    code = response.status_code
    if delivery.status is not DeliveryStatus.pending:
        # Finished meanwhile (the endpoint was disabled, or a lapsed lease let another worker win): keep that,
        # unless the receiver took the event all the same: dead-lettered by a disable while this attempt was in
        # flight, it was replayed on the enable's advice and the receiver got it twice.
        result = DeliveryResult.not_due
        if code is not None and 200 <= code < 300 and delivery.status is DeliveryStatus.dead:
            _set_delivery(session, delivery_id, last_status_code=code, last_error=None,
                          **finished_values(DeliveryStatus.succeeded, now))
            result = DeliveryResult.succeeded
    else:
        result, values = _outcome(delivery, response, policy, now)
        _set_delivery(session, delivery_id, **values)
        if code == 410:
            endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
            if endpoint is not None and endpoint.active:
                # Visible: logged here, shown by `webhooks list` / GET /api/webhooks (why and when), counted
                # by /metrics' disabled endpoints. Events written while it is off are queued on `enable`.
                logger.warning("webhook endpoint %s (tenant %s) disabled: the receiver answered 410 Gone to "
                               "delivery %s; `postcall webhooks enable %s` resumes it and queues what it missed",
                               endpoint.id, endpoint.tenant_id, delivery_id, endpoint.id)
                disable_endpoint(session, endpoint, GONE_REASON)
    if code is not None and 200 <= code < 300:
        outcome = AttemptOutcome.succeeded
    elif result is DeliveryResult.retry:
        outcome = AttemptOutcome.retry
    else:
        outcome = AttemptOutcome.dead
    connection.execute(_FINISH_ATTEMPT, {
        "attempt_id": leased.attempt_id, "outcome": outcome.value, "status_code": code,
        "latency_ms": response.latency_ms, "error": stored_error(response.error) if response.error else None,
        "now": now,
    })
    next_id = None
    if result in (DeliveryResult.succeeded, DeliveryResult.dead):
        next_id = _next_in_line(session, delivery.endpoint_id, delivery.call_id, delivery.outbox_id)
    return DeliveryReport(result, code, next_id)


def deliver(
    factory: sessionmaker[Session],
    delivery_id: int,
    policy: DeliveryPolicy,
    box: SecretBox,
    client: httpx.Client,
) -> DeliveryReport:
    """Make one attempt at one delivery, if it is due and first in its call's order. Idempotent: a
    duplicate or early call finds it leased, finished or not yet due and does nothing."""
    with unit_of_work(factory) as session:
        leased = _lease(session, delivery_id, policy, box, utcnow())
    if isinstance(leased, DeliveryReport):
        return leased
    if leased.unsignable is not None:
        response = _Response(None, None, f"not sent: {leased.unsignable}", 0.0)
    else:
        try:
            response = _send(client, leased, policy)
        except Exception as exc:  # recorded: an escape left the attempt in flight, sent again blind
            logger.exception("webhook delivery %s failed unexpectedly", delivery_id)
            response = _Response(None, None, printable(f"not sent: {type(exc).__name__}: {exc}"), 0.0)
        if leased.warning is not None:
            # After the answer's own error (whose prefix `_outcome` reads), so that an operator sees it.
            error = f"{response.error}; {leased.warning}" if response.error else leased.warning
            response = dataclasses.replace(response, error=error)
    with unit_of_work(factory) as session:
        return _record(session, delivery_id, leased, response, policy, utcnow())


def sweep_due_deliveries(session: Session, now: datetime, policy: DeliveryPolicy, *, limit: int = 500) -> list[int]:
    """Deliveries a worker should try now (pending, due, not leased, first in their call's order) that
    the sweep has not handed out since they became due, or handed out longer than a lease ago (that
    message was lost). Marks them swept; the caller commits and enqueues them."""
    stale = now - timedelta(seconds=policy.lease_seconds)
    query = (
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.pending,
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.lease_until.is_(None)) | (WebhookDelivery.lease_until <= now),
            (WebhookDelivery.swept_at.is_(None)) | (WebhookDelivery.swept_at < WebhookDelivery.next_attempt_at)
            | (WebhookDelivery.swept_at < stale),
            WebhookEndpoint.active.is_(True),
            ~_earlier_pending(WebhookDelivery.endpoint_id, WebhookDelivery.call_id, WebhookDelivery.outbox_id),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    deliveries = list(session.scalars(query).all())
    for delivery in deliveries:
        delivery.swept_at = now
    session.flush()
    return [d.id for d in deliveries]


def dead_letter_disabled(session: Session) -> int:
    """Dead-letter pending deliveries of disabled endpoints (a disable racing a fan-out leaves some)."""
    now = utcnow()
    disabled = select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(False))
    result = session.execute(
        update(WebhookDelivery)
        .where(and_(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.endpoint_id.in_(disabled)))
        .values(**finished_values(DeliveryStatus.dead, now, "endpoint disabled"))
    )
    return int(getattr(result, "rowcount", 0) or 0)
