"""Delivery to a real receiver on 127.0.0.1: signatures, retries, Retry-After, 410, dead letters, order, sweep."""

from __future__ import annotations

import dataclasses
import gzip
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.session import unit_of_work
from app.errors import NotFoundError
from app.handoff.delivery import (
    AttemptOutcome,
    DeliveryPolicy,
    DeliveryResult,
    deliver,
    retry_after_seconds,
    sweep_due_deliveries,
)
from app.handoff.endpoints import (
    RotationInProgressError,
    WebhookInputError,
    enable_endpoint,
    get_endpoint,
    replay_deliveries,
    rotate_secret,
)
from app.handoff.secrets import SecretBox
from app.handoff.urls import webhook_client
from app.models import (
    DeliveryStatus,
    OutboxEvent,
    Tenant,
    UserRole,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.tables import utcnow
from app.review import CallDecision, decide_call
from tests.handoff.conftest import TENANT, make_principal, processed_call, register
from tests.support.processes import wait_until
from tests.support.receiver import Received, Reply, Script, raw_receiver, running_receiver, verify

# The timeout is generous: on a loaded 2-core box a loopback answer has taken longer than half a second, and
# a test that expects success must not see a timeout. Only the timeout test uses a short one.
POLICY = DeliveryPolicy(timeout=10.0, retry_period=3600, backoff_base=0.05, backoff_max=0.2,
                        max_client_error_attempts=3, allow_private=True)
SHORT_TIMEOUT = dataclasses.replace(POLICY, timeout=0.5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with webhook_client(httpx.Limits(), public_only=False) as http:  # the workers' client
        yield http


def deliveries(factory: sessionmaker[Session], call_id: str | None = None) -> list[WebhookDelivery]:
    with unit_of_work(factory) as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.outbox_id)
        if call_id is not None:
            query = query.where(WebhookDelivery.call_id == call_id)
        rows = list(session.scalars(query).all())
        session.expunge_all()
        return rows


def attempts(factory: sessionmaker[Session], delivery_id: int) -> list[tuple[str, int | None]]:
    with unit_of_work(factory) as session:
        return [(a.outcome, a.status_code) for a in session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id))]


def send(factory: sessionmaker[Session], delivery_id: int, client: httpx.Client,
         policy: DeliveryPolicy = POLICY, settings: Settings | None = None) -> DeliveryResult:
    box = SecretBox.from_settings(settings) if settings else SecretBox("dev-insecure-change-me")
    return deliver(factory, delivery_id, policy, box, client).result


def send_until_finished(factory: sessionmaker[Session], delivery_id: int, client: httpx.Client,
                        settings: Settings, limit: int = 10) -> list[DeliveryResult]:
    results = []
    for _ in range(limit):
        result = send(factory, delivery_id, client, settings=settings)
        results.append(result)
        if result in (DeliveryResult.succeeded, DeliveryResult.dead):
            break
        time.sleep(POLICY.backoff_max + 0.05)
    return results


def script_by_attempt(*replies: Reply) -> Script:
    def reply(_request: Received, seen: int) -> Reply:
        return replies[min(seen, len(replies)) - 1]

    return reply


def test_a_delivery_is_signed_the_standard_webhooks_way(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver() as receiver:
        _, secret = register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-1")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
    (request,) = receiver.all_requests()
    with unit_of_work(session_factory) as session:
        event = session.get(OutboxEvent, delivery.outbox_id)
        assert event is not None
        assert request.webhook_id == event.event_id
        # Any Standard Webhooks library can check it; the body is the stored payload with its `sequence`
        # (the event's outbox id: the order of a call's events, whatever the writers' clocks say).
        assert verify(request, secret) == {**event.payload, "sequence": event.id}
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 10
    with pytest.raises(Exception, match="signature"):
        verify(request, "whsec_" + "A" * 44)  # another secret does not verify
    (finished,) = deliveries(session_factory, call_id)
    assert finished.status is DeliveryStatus.succeeded and finished.attempts == 1
    assert attempts(session_factory, delivery.id) == [("succeeded", 200)]


def test_retries_keep_the_same_webhook_id(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(500), Reply(503), Reply(200))) as receiver:
        _, secret = register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-2")
        (delivery,) = deliveries(session_factory, call_id)
        results = send_until_finished(session_factory, delivery.id, client, allow_private)
    assert results[-1] is DeliveryResult.succeeded
    requests = receiver.all_requests()
    assert len(requests) == 3 and len({r.webhook_id for r in requests}) == 1
    for request in requests:
        verify(request, secret)
    assert attempts(session_factory, delivery.id) == [("retry", 500), ("retry", 503), ("succeeded", 200)]


def test_retry_after_is_honoured_on_429(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(429, retry_after="30"), Reply(200))) as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-3")
        (delivery,) = deliveries(session_factory, call_id)
        before = utcnow()
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.retry
        (waiting,) = deliveries(session_factory, call_id)
        assert waiting.next_attempt_at >= before + timedelta(seconds=29)
        # Asked again before then (a duplicate message, an eager sweep): nothing is sent.
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.not_due
    assert len(receiver.all_requests()) == 1


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Wed, 04 Mar 2026 12:01:00 GMT", now) == 60
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_410_gone_disables_the_endpoint(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(410))) as receiver:
        endpoint_id, _ = register(session_factory, receiver.url)
        first = processed_call(session_factory, "del-4a")
        second = processed_call(session_factory, "del-4b")
        (delivery,) = deliveries(session_factory, first)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.dead
        third = processed_call(session_factory, "del-4c")
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None and not endpoint.active and "410" in (endpoint.disabled_reason or "")
    assert [d.status for d in deliveries(session_factory, second)] == [DeliveryStatus.dead]
    assert deliveries(session_factory, third) == []  # a disabled endpoint gets no new deliveries
    assert len(receiver.all_requests()) == 1


def test_a_disabled_endpoints_dead_letters_are_replayed_once_it_is_enabled(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # One 410 (a proxy misconfigured for a minute) disabled the endpoint for good: no way to enable it, and
    # replaying its dead letters said "replaying 0 deliveries" and did nothing.
    with running_receiver(script_by_attempt(Reply(410), Reply(200))) as receiver:
        endpoint_id, _ = register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-enable")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.dead
        with pytest.raises(WebhookInputError, match=f"disabled endpoint.*{endpoint_id}.*enable"), \
                unit_of_work(session_factory) as session:
            replay_deliveries(session, allow_private, _tenant_id(session), delivery_ids=[delivery.id])
        with pytest.raises(NotFoundError, match="not found: 999999"), unit_of_work(session_factory) as session:
            replay_deliveries(session, allow_private, _tenant_id(session), delivery_ids=[999999])
        with unit_of_work(session_factory) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            enable_endpoint(session, allow_private, endpoint)
            assert endpoint.active and endpoint.disabled_reason is None
            assert replay_deliveries(session, allow_private, _tenant_id(session), delivery_ids=[delivery.id]) == [
                delivery.id]
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
        later = processed_call(session_factory, "del-enable-2")
        assert len(deliveries(session_factory, later)) == 1  # new events go to it again
    assert len({request.webhook_id for request in receiver.all_requests()}) == 1


def _tenant_id(session: Session) -> int:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == TENANT))
    assert tenant is not None
    return tenant.id


def test_other_client_errors_are_dead_lettered_after_a_few_attempts(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(400))) as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-5")
        (delivery,) = deliveries(session_factory, call_id)
        results = send_until_finished(session_factory, delivery.id, client, allow_private)
    assert results == [DeliveryResult.retry, DeliveryResult.retry, DeliveryResult.dead]
    (dead,) = deliveries(session_factory, call_id)
    assert dead.status is DeliveryStatus.dead and dead.last_status_code == 400
    assert len(receiver.all_requests()) == POLICY.max_client_error_attempts


def test_a_timeout_is_retried(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(200, delay=SHORT_TIMEOUT.timeout + 1.0), Reply(200))) as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-6")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, SHORT_TIMEOUT, settings=allow_private) is DeliveryResult.retry
        (waiting,) = deliveries(session_factory, call_id)
        assert waiting.last_error is not None and "timeout" in waiting.last_error
        results = send_until_finished(session_factory, delivery.id, client, allow_private)
    assert results[-1] is DeliveryResult.succeeded
    assert len({r.webhook_id for r in receiver.all_requests()}) == 1


def test_failures_past_the_retry_period_are_dead_lettered(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(500))) as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-7")
        (delivery,) = deliveries(session_factory, call_id)
        with unit_of_work(session_factory) as session:
            session.execute(update(WebhookDelivery).values(retry_until=utcnow()))
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.dead
    (dead,) = deliveries(session_factory, call_id)
    assert dead.last_error is not None and "retry period over" in dead.last_error
    assert len(receiver.all_requests()) == 1


def test_a_wait_that_ends_past_the_retry_period_gets_one_last_try_as_it_ends(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # A Retry-After (or the last backoff) reaching past the period dead-lettered the delivery at once, up to
    # an hour before the period was over.
    busy = Reply(503, retry_after="3600")
    with running_receiver(script_by_attempt(busy, busy)) as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-7b")
        (delivery,) = deliveries(session_factory, call_id)
        period_end = utcnow() + timedelta(minutes=10)
        with unit_of_work(session_factory) as session:
            session.execute(update(WebhookDelivery).values(retry_until=period_end))
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.retry
        (waiting,) = deliveries(session_factory, call_id)
        assert waiting.next_attempt_at == period_end  # the last try, as the period ends
        with unit_of_work(session_factory) as session:  # the period is over when that try fails
            session.execute(update(WebhookDelivery).values(retry_until=utcnow(), next_attempt_at=utcnow()))
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.dead
    (dead,) = deliveries(session_factory, call_id)
    assert dead.last_error is not None and "retry period over" in dead.last_error
    assert len(receiver.all_requests()) == 2


def test_events_of_one_call_go_out_in_order(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver() as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-8")
        supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)
        with unit_of_work(session_factory) as session:
            decide_call(session, supervisor, call_id, CallDecision.reject)
        first, second = deliveries(session_factory, call_id)
        with unit_of_work(session_factory) as session:
            assert sweep_due_deliveries(session, utcnow(), POLICY) == [first.id]  # the second waits its turn
        assert send(session_factory, second.id, client, settings=allow_private) is DeliveryResult.blocked
        box = SecretBox.from_settings(allow_private)
        report = deliver(session_factory, first.id, POLICY, box, client)
        assert report.result is DeliveryResult.succeeded and report.next_delivery_id == second.id
        assert send(session_factory, second.id, client, settings=allow_private) is DeliveryResult.succeeded
    assert [r.type for r in receiver.all_requests()] == ["call.processed", "call.rejected"]


def test_the_sweep_hands_out_once_and_recovers_a_lapsed_lease(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver() as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-9")
        (delivery,) = deliveries(session_factory, call_id)
        with unit_of_work(session_factory) as session:
            assert sweep_due_deliveries(session, utcnow(), POLICY) == [delivery.id]
        with unit_of_work(session_factory) as session:
            assert sweep_due_deliveries(session, utcnow(), POLICY) == []  # already handed out
        # A worker took it, wrote its attempt and died mid-send: the lease lapses, the sweep hands it out again.
        past = utcnow() - timedelta(seconds=POLICY.lease_seconds + 1)
        with unit_of_work(session_factory) as session:
            session.execute(update(WebhookDelivery).values(attempts=1, lease_until=past, swept_at=past))
            session.add(WebhookAttempt(delivery_id=delivery.id, outcome="in_flight", started_at=past))
        with unit_of_work(session_factory) as session:
            assert sweep_due_deliveries(session, utcnow(), POLICY) == [delivery.id]
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
    assert attempts(session_factory, delivery.id) == [("lost", None), ("succeeded", 200)]


def test_a_rotated_secret_signs_alongside_the_old_one(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver() as receiver:
        endpoint_id, old_secret = register(session_factory, receiver.url)
        with unit_of_work(session_factory) as session:
            endpoint = get_endpoint(session, session.get(WebhookEndpoint, endpoint_id).tenant_id,  # type: ignore[union-attr]
                                    endpoint_id)
            new_secret = rotate_secret(session, allow_private, endpoint).secret
            assert new_secret not in endpoint.secret_encrypted and old_secret != new_secret
        call_id = processed_call(session_factory, "del-10")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
    (request,) = receiver.all_requests()
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(request, new_secret)
    verify(request, old_secret)


def test_a_second_rotation_during_the_overlap_is_refused_unless_forced(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    # Only one previous secret is kept: rotating twice (the printed secret lost) dropped the original at
    # once, and a receiver still on it refused every delivery.
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/hooks")
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        rotate_secret(session, allow_private, endpoint)
        kept = endpoint.previous_secret_encrypted
        with pytest.raises(RotationInProgressError, match="still signs until"):
            rotate_secret(session, allow_private, endpoint)
        assert endpoint.previous_secret_encrypted == kept
        rotate_secret(session, allow_private, endpoint, force=True)  # a leaked secret: drop it now
        assert endpoint.previous_secret_encrypted != kept
        endpoint.previous_secret_expires_at = utcnow() - timedelta(seconds=1)  # the overlap over
        rotate_secret(session, allow_private, endpoint)


def test_a_dead_letter_is_replayed_with_the_same_webhook_id(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    with running_receiver(script_by_attempt(Reply(400), Reply(400), Reply(400), Reply(200))) as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-11")
        (delivery,) = deliveries(session_factory, call_id)
        assert send_until_finished(session_factory, delivery.id, client, allow_private)[-1] is DeliveryResult.dead
        with unit_of_work(session_factory) as session:
            tenant_id = session.get(WebhookEndpoint, delivery.endpoint_id).tenant_id  # type: ignore[union-attr]
            assert replay_deliveries(session, allow_private, tenant_id, all_dead=True) == [delivery.id]
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
    requests = receiver.all_requests()
    assert len(requests) == 4 and len({r.webhook_id for r in requests}) == 1


def test_a_secret_this_worker_cannot_decrypt_is_a_failed_attempt_saying_so(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # Registered under one key, delivered by workers with another: the decrypt error rolled the lease
    # back, so the delivery stayed due and untouched (attempts 0, no error) and was handed out again and
    # again. Now the attempt fails, says why, and waits its backoff; nothing is sent unsigned.
    with running_receiver() as receiver:
        register(session_factory, receiver.url)  # sealed with allow_private's key
        call_id = processed_call(session_factory, "del-key")
        (delivery,) = deliveries(session_factory, call_id)
        other_key = SecretBox("another-key-the-workers-have-" + "x" * 20)
        assert deliver(session_factory, delivery.id, POLICY, other_key, client).result is DeliveryResult.retry
    assert receiver.all_requests() == []
    (failed,) = deliveries(session_factory, call_id)
    assert failed.status is DeliveryStatus.pending and failed.attempts == 1
    assert failed.last_error is not None and "cannot be decrypted" in failed.last_error
    assert failed.finished_at is None  # retried on the policy's backoff, dead-lettered after its period
    assert attempts(session_factory, delivery.id) == [("retry", None)]


def _drip_headers(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(100):  # a header that never ends, a byte every 0.1 s: each read is quick, the whole is not
        connection.sendall(b"X")
        time.sleep(0.1)


def test_a_receiver_answering_a_byte_at_a_time_is_cut_at_the_timeout(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # httpx's timeout bounds each read: the attempt ran 10 s, past its lease (timeout + 5 s), and the sweep
    # sent the same event again meanwhile.
    with raw_receiver(_drip_headers) as url:
        register(session_factory, url)
        call_id = processed_call(session_factory, "del-drip")
        (delivery,) = deliveries(session_factory, call_id)
        started = time.monotonic()
        assert send(session_factory, delivery.id, client, SHORT_TIMEOUT, settings=allow_private) is DeliveryResult.retry
        elapsed = time.monotonic() - started
    assert elapsed < SHORT_TIMEOUT.lease_seconds
    (waiting,) = deliveries(session_factory, call_id)
    assert waiting.last_error is not None and "timeout" in waiting.last_error


def _accept_then_drip_the_body(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(100):  # the status came at once; the body never ends within the attempt's time
        connection.sendall(b"X")
        time.sleep(0.1)


def test_a_2xx_whose_body_stalls_is_delivered_not_sent_again(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # The receiver took the event (200) and its body then stalled past the attempt's time: the attempt was a
    # timeout, retried, and the receiver's system got the event twice.
    with raw_receiver(_accept_then_drip_the_body) as url:
        register(session_factory, url)
        call_id = processed_call(session_factory, "del-slow-body")
        (delivery,) = deliveries(session_factory, call_id)
        started = time.monotonic()
        result = send(session_factory, delivery.id, client, SHORT_TIMEOUT, settings=allow_private)
        elapsed = time.monotonic() - started
    assert result is DeliveryResult.succeeded
    assert elapsed < SHORT_TIMEOUT.lease_seconds
    (done,) = deliveries(session_factory, call_id)
    assert done.status is DeliveryStatus.succeeded and done.last_status_code == 200 and done.last_error is None
    assert attempts(session_factory, delivery.id) == [(AttemptOutcome.succeeded, 200)]


def test_a_redirect_is_not_followed_and_its_location_is_shown(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # A receiver moved (301): the error said only "HTTP 301:" and the integrator had to guess where to.
    moved = "https://hooks.example.com/v2/postcall"
    with raw_receiver(_answer(b"301 Moved Permanently", b"", b"Location: " + moved.encode())) as url:
        register(session_factory, url)
        call_id = processed_call(session_factory, "del-moved")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.retry
    (waiting,) = deliveries(session_factory, call_id)
    assert waiting.last_status_code == 301
    assert waiting.last_error == f"HTTP 301 redirect to {moved}, not followed: register the endpoint's new URL"


def _answer(status: bytes, body: bytes, *headers: bytes) -> Callable[[socket.socket], None]:
    def answer(connection: socket.socket) -> None:
        head = b"".join(header + b"\r\n" for header in (*headers, b"Content-Length: %d" % len(body)))
        connection.sendall(b"HTTP/1.1 " + status + b"\r\n" + head + b"\r\n" + body)
    return answer


# 20 kB that unpack to 20 MB (a 1.5 MB body that unpacked to 1.5 GB took a worker to 21 GB of memory).
GZIP_BOMB = gzip.compress(b"\0" * 20_000_000)
ERROR_ANSWERS = {
    "gzip": (_answer(b"500 Oops", GZIP_BOMB, b"Content-Encoding: gzip"), "HTTP 500: (gzip-encoded body, not decoded)"),
    # NUL: PostgreSQL refused the attempt's record, which stayed in flight and was sent again and again.
    "nul": (_answer(b"500 Oops", b"bad\x00thing \x1b[31mred" + b"x" * 5000), "HTTP 500: bad\\x00thing \\x1b[31mred"),
}


@pytest.mark.parametrize("kind", list(ERROR_ANSWERS))
def test_an_error_body_is_read_raw_and_short_and_stored_printable(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client, kind: str
) -> None:
    answer, expected = ERROR_ANSWERS[kind]
    with raw_receiver(answer) as url:
        register(session_factory, url)
        call_id = processed_call(session_factory, f"del-{kind}")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.retry
    (waiting,) = deliveries(session_factory, call_id)
    assert waiting.last_error is not None and waiting.last_error.startswith(expected), waiting.last_error
    assert len(waiting.last_error) < 300
    with unit_of_work(session_factory) as session:
        outcomes = session.scalars(select(WebhookAttempt.outcome).where(
            WebhookAttempt.delivery_id == delivery.id)).all()
    assert outcomes == [AttemptOutcome.retry]


def test_a_receivers_error_that_echoes_a_card_number_is_stored_masked(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # A receiver's error answer can echo what it was sent; its start is stored on the delivery and the
    # attempt, read by admins in the API and the CLI: masked as every stored error is.
    answer = _answer(b"422 Unprocessable", b"rejected field card=4111 1111 1111 1111 ssn 123-45-6789")
    with raw_receiver(answer) as url:
        register(session_factory, url)
        call_id = processed_call(session_factory, "del-echo")
        (delivery,) = deliveries(session_factory, call_id)
        assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.retry
    (waiting,) = deliveries(session_factory, call_id)
    with unit_of_work(session_factory) as session:
        (attempt_error,) = session.scalars(select(WebhookAttempt.error).where(
            WebhookAttempt.delivery_id == delivery.id)).all()
    for stored in (waiting.last_error, attempt_error):
        assert stored is not None and stored.startswith("HTTP 422: rejected field card="), stored
        assert "4111 1111" not in stored and "123-45" not in stored and "1111" in stored, stored


def test_deliveries_to_one_receiver_share_a_connection(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # A success's body left unread closed the connection after every delivery: a new TCP (and TLS)
    # handshake each time, and a reset the receiver logged.
    with running_receiver() as receiver:
        register(session_factory, receiver.url)
        for n in range(4):
            (delivery,) = deliveries(session_factory, processed_call(session_factory, f"del-keep-{n}"))
            assert send(session_factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
    assert len(receiver.all_requests()) == 4
    assert len({request.peer for request in receiver.all_requests()}) == 1


def test_retry_after_takes_ascii_digits_only() -> None:
    now = utcnow()
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds("²", now) is None  # str.isdigit() took it, float() raised: the worker crashed
    assert retry_after_seconds("١٢", now) is None


def test_a_lease_lapsed_past_the_retry_period_is_dead_lettered_not_sent_again(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # Only a finished attempt checked the retry period: a delivery whose attempts kept dying was sent for ever.
    with running_receiver() as receiver:
        register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-lapsed")
        supervisor, _ = make_principal(session_factory, "sam", UserRole.supervisor)
        with unit_of_work(session_factory) as session:
            decide_call(session, supervisor, call_id, CallDecision.reject)  # the call's next event, waiting
        delivery, rejected = deliveries(session_factory, call_id)
        past = utcnow() - timedelta(seconds=1)
        with unit_of_work(session_factory) as session:
            session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                            .values(lease_until=past, retry_until=past))
        report = deliver(session_factory, delivery.id, POLICY, SecretBox.from_settings(allow_private), client)
        assert report.result is DeliveryResult.dead
        assert report.next_delivery_id == rejected.id  # handed out at once, as after any dead letter
    dead, _ = deliveries(session_factory, call_id)
    assert dead.status is DeliveryStatus.dead
    assert dead.last_error is not None and "retry period over" in dead.last_error
    assert receiver.all_requests() == []


def test_a_host_that_does_not_resolve_this_time_is_retried_not_dead_lettered(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, client: httpx.Client
) -> None:
    # A DNS hiccup was "refused:" and dead-lettered on the first attempt, as a private address is. The
    # resolver is stubbed (no query leaves the box): a public answer at registration, a failure at delivery.
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                                     ("93.184.215.14", 443))])
    register(session_factory, "https://crm.example.com/hook")
    call_id = processed_call(session_factory, "del-dns")
    (delivery,) = deliveries(session_factory, call_id)

    def no_answer(*_args: object, **_kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    public_only = dataclasses.replace(POLICY, allow_private=False)
    assert send(session_factory, delivery.id, client, public_only) is DeliveryResult.retry
    (waiting,) = deliveries(session_factory, call_id)
    assert waiting.status is DeliveryStatus.pending
    assert waiting.last_error is not None and "does not resolve" in waiting.last_error
    assert not waiting.last_error.startswith("refused")
    # The resolver's own words stay in the server's log: the tenant's admin reads last_error.
    assert "Temporary failure" not in waiting.last_error and "Errno" not in waiting.last_error


def test_a_host_that_resolves_to_a_private_address_at_delivery_is_dead_lettered_without_naming_it(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, client: httpx.Client
) -> None:
    # The stored error named the address ("resolves to 10.1.2.3, a loopback, ..."): a tenant's admin could map
    # the server's network from the deliveries list. The resolver is stubbed (no query leaves the box).
    def resolving_to(address: str) -> Callable[..., list[tuple[object, ...]]]:
        return lambda *_a, **_k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 443))]

    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("93.184.215.14"))
    register(session_factory, "https://crm.example.com/hook")
    call_id = processed_call(session_factory, "del-rebound")
    (delivery,) = deliveries(session_factory, call_id)
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("10.1.2.3"))
    public_only = dataclasses.replace(POLICY, allow_private=False)
    assert send(session_factory, delivery.id, client, public_only) is DeliveryResult.dead
    (dead,) = deliveries(session_factory, call_id)
    assert dead.last_error is not None
    assert dead.last_error.startswith("refused: the endpoint host 'crm.example.com' does not resolve to a public")
    assert "10.1.2.3" not in dead.last_error


@pytest.mark.postgres
def test_hand_off_ids_go_past_32_bits(postgres_url: str, allow_private: Settings, client: httpx.Client) -> None:
    # Ids of 32 bits ran out (nextval: reached maximum value) and then every processed call and review
    # failed, the fan-out being in their transactions.
    from app.db.session import create_db_engine, make_session_factory
    from app.handoff.feed import decode_cursor

    factory = make_session_factory(create_db_engine(postgres_url))
    past = 2**31 + 10
    with unit_of_work(factory) as session:
        for sequence in ("outbox_id_seq", "webhook_deliveries_id_seq", "webhook_attempts_id_seq"):
            session.execute(text(f"SELECT setval('{sequence}', {past})"))
    with running_receiver() as receiver:
        register(factory, receiver.url)
        call_id = processed_call(factory, "del-bigint")
        (delivery,) = deliveries(factory, call_id)
        assert delivery.id > 2**31 and delivery.outbox_id > 2**31
        assert send(factory, delivery.id, client, settings=allow_private) is DeliveryResult.succeeded
        assert len(receiver.accepted_requests()) == 1
    with unit_of_work(factory) as session:
        assert session.scalar(select(WebhookAttempt.id).where(WebhookAttempt.delivery_id == delivery.id)) > 2**31
    assert decode_cursor(str(delivery.outbox_id)) == delivery.outbox_id  # the feed's cursor takes it


def test_an_event_the_receiver_took_while_its_endpoint_was_disabled_is_delivered_not_dead(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # Disabled mid-attempt, the delivery was dead-lettered; the receiver then answered 200, the enable advised
    # replaying the dead letters, and the receiver got the event twice.
    import threading

    from app.handoff.endpoints import disable_endpoint

    with running_receiver(script_by_attempt(Reply(200, delay=1.5))) as receiver:
        endpoint_id, _ = register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "del-disabled-midway")
        (delivery,) = deliveries(session_factory, call_id)
        results: list[DeliveryResult] = []
        sender = threading.Thread(target=lambda: results.append(send(session_factory, delivery.id, client,
                                                                     settings=allow_private)))
        sender.start()
        assert wait_until(lambda: len(receiver.all_requests()) == 1, timeout=10)
        with unit_of_work(session_factory) as session:
            disable_endpoint(session, get_endpoint(session, session.scalar(select(Tenant.id)), endpoint_id),
                             "by hand")
        sender.join(timeout=30)
    assert results == [DeliveryResult.succeeded]
    (done,) = deliveries(session_factory, call_id)
    assert done.status is DeliveryStatus.succeeded and done.last_status_code == 200 and done.last_error is None
