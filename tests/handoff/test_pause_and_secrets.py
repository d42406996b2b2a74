"""Integrator probe findings: disabling is a pause (events written meanwhile are queued on enable), an
auto-disable by a 410 is visible, a secret that does not decrypt neither blocks signing nor survives a
rotation, a call's events carry a `sequence` that orders them whatever the writers' clocks say, and the
API refuses what it used to ignore."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.config import Settings
from app.db.session import unit_of_work
from app.handoff import outbox
from app.handoff.delivery import DeliveryPolicy, DeliveryResult, deliver
from app.handoff.endpoints import (
    GONE_REASON,
    EndpointView,
    RotationInProgressError,
    disable_endpoint,
    enable_endpoint,
    rotate_secret,
    subscription_warnings,
)
from app.handoff.outbox import PENDING_DELIVERIES
from app.handoff.secrets import SecretBox
from app.handoff.urls import webhook_client
from app.models import DeliveryStatus, OutboxEvent, OutboxPurgeMark, UserRole, WebhookDelivery, WebhookEndpoint
from app.models.tables import utcnow
from app.review import CallDecision, decide_call
from tests.handoff.conftest import make_principal, processed_call, register
from tests.support.receiver import Reply, running_receiver, verify
from tests.web.world import BrokerQueue, bearer, client_for

POLICY = DeliveryPolicy(timeout=10.0, retry_period=3600, backoff_base=0.05, backoff_max=0.2,
                        max_client_error_attempts=3, allow_private=True)
OTHER_KEY = SecretBox("a-key-the-workers-do-not-have-" + "y" * 20)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with webhook_client(httpx.Limits(), public_only=False) as http:
        yield http


@pytest.fixture
def api(db_url: str, allow_private: Settings) -> Iterator[TestClient]:
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=True) as test_client:
        yield test_client


def _deliveries(factory: sessionmaker[Session], endpoint_id: int) -> list[WebhookDelivery]:
    with unit_of_work(factory) as session:
        rows = list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                                    .order_by(WebhookDelivery.id)).all())
        session.expunge_all()
        return rows


def _event_ids(factory: sessionmaker[Session], call_id: str) -> list[int]:
    with unit_of_work(factory) as session:
        return list(session.scalars(select(OutboxEvent.id).where(OutboxEvent.call_id == call_id)
                                    .order_by(OutboxEvent.id)))


def _disable(factory: sessionmaker[Session], endpoint_id: int, reason: str = "disabled by a test") -> None:
    with unit_of_work(factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        disable_endpoint(session, endpoint, reason)


def _decide(factory: sessionmaker[Session], call_id: str, *decisions: CallDecision) -> None:
    supervisor, _ = make_principal(factory, f"sup-{call_id}", UserRole.supervisor)
    for decision in decisions:
        with unit_of_work(factory) as session:
            decide_call(session, supervisor, call_id, decision)


# ----------------------------------------------------------------------------------- disabling is a pause


def test_events_written_while_an_endpoint_was_disabled_are_queued_in_order_when_it_is_enabled(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # Deliveries were made for active endpoints only: after `enable`, `replay --failed` found nothing and the
    # events of the disabled window never reached the receiver.
    with running_receiver() as receiver:
        endpoint_id, secret = register(session_factory, receiver.url)
        before = processed_call(session_factory, "pause-1")
        _disable(session_factory, endpoint_id)
        _decide(session_factory, before, CallDecision.reject, CallDecision.reopen, CallDecision.reject)
        during = processed_call(session_factory, "pause-2")
        assert [d.outbox_id for d in _deliveries(session_factory, endpoint_id)] == _event_ids(session_factory,
                                                                                              before)[:1]
        with unit_of_work(session_factory) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            enabled = enable_endpoint(session, allow_private, endpoint)
            handed_over = list(session.info.get(PENDING_DELIVERIES, []))
        missed = _event_ids(session_factory, before)[1:] + _event_ids(session_factory, during)
        assert enabled.was_disabled and enabled.queued == len(missed) == 4 and enabled.skipped == 0
        queued = [d for d in _deliveries(session_factory, endpoint_id) if d.status is DeliveryStatus.pending]
        assert [d.outbox_id for d in queued] == sorted(missed)  # outbox order
        # One hand-over per call (the first of each): the others wait their turn in the call's order.
        assert sorted(handed_over) == sorted({d.call_id: d.id for d in reversed(queued)}.values())
        later = processed_call(session_factory, "pause-3")  # new events go to it again, once
        assert len([d for d in _deliveries(session_factory, endpoint_id) if d.call_id == later]) == 1
        for delivery in _deliveries(session_factory, endpoint_id):
            if delivery.status is DeliveryStatus.pending:
                assert deliver(session_factory, delivery.id, POLICY, SecretBox.from_settings(allow_private),
                               client).result is DeliveryResult.succeeded
    bodies = [verify(request, secret) for request in receiver.all_requests()]
    calls = [body["data"]["call_id"] for body in bodies]
    assert calls.count(before) == 3 and calls.count(during) == 1
    sent_for_before = [body for body in bodies if body["data"]["call_id"] == before]
    assert [body["type"] for body in sent_for_before] == ["call.rejected", "call.reopened", "call.rejected"]
    assert [body["sequence"] for body in sent_for_before] == sorted(body["sequence"] for body in sent_for_before)


def test_enabling_with_skip_backlog_queues_nothing_and_says_how_many_were_skipped(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/hooks")
    _disable(session_factory, endpoint_id)
    processed_call(session_factory, "skip-1")
    processed_call(session_factory, "skip-2")
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        enabled = enable_endpoint(session, allow_private, endpoint, backlog=False)
    assert enabled.queued == 0 and enabled.skipped == 2
    assert any("2 event(s)" in note and "/record" in note for note in enabled.notes)
    assert _deliveries(session_factory, endpoint_id) == []


def test_the_backlog_follows_the_subscription_and_the_registration(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    processed_call(session_factory, "sub-0")  # before the endpoint existed: never its event
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/hooks", events=["call.rejected"])
    _disable(session_factory, endpoint_id)
    call_id = processed_call(session_factory, "sub-1")
    _decide(session_factory, call_id, CallDecision.reject)
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert enable_endpoint(session, allow_private, endpoint).queued == 1
    (queued,) = _deliveries(session_factory, endpoint_id)
    assert queued.outbox_id == _event_ids(session_factory, call_id)[-1]  # the call.rejected alone
    # Enabling an enabled endpoint queues nothing more.
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert enable_endpoint(session, allow_private, endpoint).queued == 0
    assert len(_deliveries(session_factory, endpoint_id)) == 1


def test_enabling_after_the_retention_period_says_purged_events_cannot_be_sent(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/hooks")
    _disable(session_factory, endpoint_id)
    processed_call(session_factory, "old-1")
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        endpoint.disabled_at = utcnow() - timedelta(days=allow_private.handoff_retention_days + 1)
        session.add(OutboxPurgeMark(tenant_id=endpoint.tenant_id, purged_through=1))
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        enabled = enable_endpoint(session, allow_private, endpoint)
    assert enabled.queued == 1
    assert any("POSTCALL_HANDOFF_RETENTION_DAYS" in note and "cannot be sent" in note for note in enabled.notes)


def test_a_410_disable_is_logged_listed_with_why_and_when_and_enable_catches_up(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client,
    caplog: pytest.LogCaptureFixture
) -> None:
    # A single misrouted 410 during a receiver's deploy disabled the endpoint silently, and every event until
    # it was enabled again was lost.
    replies = iter([Reply(410)])
    with running_receiver(lambda _request, _seen: next(replies, Reply(200))) as receiver:
        endpoint_id, _ = register(session_factory, receiver.url)
        first = processed_call(session_factory, "gone-1")
        (delivery,) = _deliveries(session_factory, endpoint_id)
        with caplog.at_level(logging.WARNING, logger="app.handoff.delivery"):
            assert deliver(session_factory, delivery.id, POLICY, SecretBox.from_settings(allow_private),
                           client).result is DeliveryResult.dead
        assert any("410 Gone" in record.getMessage() and str(endpoint_id) in record.getMessage()
                   for record in caplog.records)
        with unit_of_work(session_factory) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            shown = EndpointView.model_validate(endpoint)
        assert not shown.active and shown.disabled_reason == GONE_REASON and shown.disabled_at is not None
        _decide(session_factory, first, CallDecision.reject)
        with unit_of_work(session_factory) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            enabled = enable_endpoint(session, allow_private, endpoint)
        assert enabled.queued == 1
        assert any("replay --failed" in note for note in enabled.notes)  # the delivery that drew the 410
        pending = [d for d in _deliveries(session_factory, endpoint_id) if d.status is DeliveryStatus.pending]
        assert deliver(session_factory, pending[0].id, POLICY, SecretBox.from_settings(allow_private),
                       client).result is DeliveryResult.succeeded
    assert [request.payload["type"] for request in receiver.all_requests()] == ["call.processed", "call.rejected"]


def test_the_api_enable_queues_the_backlog_or_skips_it_and_the_list_says_when_it_was_disabled(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hooks"}, headers=bearer(admin)).json()
    other = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/other"}, headers=bearer(admin)).json()
    for endpoint in (created, other):
        assert api.post(f"/api/webhooks/{endpoint['id']}/disable", headers=bearer(admin)).status_code == 200
    listed = api.get("/api/webhooks", headers=bearer(admin)).json()
    assert all(e["disabled_at"] and "ada" in e["disabled_reason"] for e in listed)
    processed_call(session_factory, "api-pause")
    enabled = api.post(f"/api/webhooks/{created['id']}/enable", headers=bearer(admin))
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["queued"] == 1 and enabled.json()["active"] and enabled.json()["disabled_at"] is None
    skipped = api.post(f"/api/webhooks/{other['id']}/enable?skip_backlog=true", headers=bearer(admin)).json()
    assert skipped["queued"] == 0 and skipped["skipped"] == 1 and skipped["notes"]
    assert len(_deliveries(session_factory, created["id"])) == 1 and _deliveries(session_factory, other["id"]) == []


# ------------------------------------------------------------------------------------------ secrets


def _seal_with_another_key(factory: sessionmaker[Session], endpoint_id: int, *, previous: bool) -> None:
    """What a process with another key leaves: a secret the workers cannot decrypt."""
    with unit_of_work(factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        sealed = OTHER_KEY.seal("whsec_" + "A" * 44)
        if previous:
            endpoint.previous_secret_encrypted = sealed
            endpoint.previous_secret_expires_at = utcnow() + timedelta(hours=23)
        else:
            endpoint.secret_encrypted = sealed


def test_a_previous_secret_that_does_not_decrypt_no_longer_blocks_signing(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # One secret that would not decrypt made every delivery unsignable for the 24 h of the overlap.
    with running_receiver() as receiver:
        endpoint_id, secret = register(session_factory, receiver.url)
        _seal_with_another_key(session_factory, endpoint_id, previous=True)
        processed_call(session_factory, "sign-1")
        (delivery,) = _deliveries(session_factory, endpoint_id)
        assert deliver(session_factory, delivery.id, POLICY, SecretBox.from_settings(allow_private),
                       client).result is DeliveryResult.succeeded
    (request,) = receiver.all_requests()
    verify(request, secret)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    (done,) = _deliveries(session_factory, endpoint_id)
    assert done.last_error is not None and "signed without the previous secret" in done.last_error


def test_the_probes_recovery_works_at_once_a_rotation_keeps_no_unreadable_secret(
    session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client
) -> None:
    # An admin shell with another key rotated the secret; rotating again with the right key, as the error
    # advised, kept the unreadable secret as the previous one and the endpoint stayed broken for 24 h.
    with running_receiver() as receiver:
        endpoint_id, original = register(session_factory, receiver.url)
        with unit_of_work(session_factory) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            endpoint.previous_secret_encrypted = endpoint.secret_encrypted  # the wrong-key rotation
            endpoint.previous_secret_expires_at = utcnow() + timedelta(hours=24)
        _seal_with_another_key(session_factory, endpoint_id, previous=False)
        with unit_of_work(session_factory) as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            rotation = rotate_secret(session, allow_private, endpoint)  # no --force needed
            kept = endpoint.previous_secret_encrypted
        assert rotation.previous_until is not None and "dropped" in rotation.notes[0]
        assert SecretBox.from_settings(allow_private).open(kept or "") == original  # the readable one stays
        processed_call(session_factory, "rot-1")
        (delivery,) = _deliveries(session_factory, endpoint_id)
        assert deliver(session_factory, delivery.id, POLICY, SecretBox.from_settings(allow_private),
                       client).result is DeliveryResult.succeeded
    (request,) = receiver.all_requests()
    verify(request, rotation.secret)
    verify(request, original)


def test_rotating_an_unreadable_secret_is_refused_unless_forced_and_then_keeps_no_previous(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/hooks")
    _seal_with_another_key(session_factory, endpoint_id, previous=False)  # the key changed since
    with unit_of_work(session_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        with pytest.raises(RotationInProgressError, match=r"cannot be decrypted.*--force.*another key"):
            rotate_secret(session, allow_private, endpoint)
        rotation = rotate_secret(session, allow_private, endpoint, force=True)
        assert endpoint.previous_secret_encrypted is None and endpoint.previous_secret_expires_at is None
    assert rotation.previous_until is None and "no previous secret is kept" in rotation.notes[0]


# ------------------------------------------------------------------------------------------ sequence


def test_a_calls_events_carry_a_sequence_that_orders_them_whatever_the_clocks_say(
    api: TestClient, session_factory: sessionmaker[Session], allow_private: Settings, client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Receivers were told to drop an event whose timestamp is older than the one filed; a writer whose clock
    # is behind (another host) wrote the newer event with the older timestamp, and it was dropped.
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    with running_receiver() as receiver:
        endpoint_id, secret = register(session_factory, receiver.url)
        call_id = processed_call(session_factory, "seq-1")
        real_now = outbox.utcnow
        monkeypatch.setattr(outbox, "utcnow", lambda: real_now() - timedelta(seconds=100))  # a host behind
        _decide(session_factory, call_id, CallDecision.reject)
        monkeypatch.undo()
        ids = _event_ids(session_factory, call_id)
        for delivery in sorted(_deliveries(session_factory, endpoint_id), key=lambda d: d.outbox_id):
            assert deliver(session_factory, delivery.id, POLICY, SecretBox.from_settings(allow_private),
                           client).result is DeliveryResult.succeeded
    bodies = [verify(request, secret) for request in receiver.all_requests()]
    assert [body["type"] for body in bodies] == ["call.processed", "call.rejected"]
    assert bodies[1]["timestamp"] < bodies[0]["timestamp"]  # the skewed clock
    assert [body["sequence"] for body in bodies] == ids and ids[0] < ids[1]
    page = api.get("/api/events", headers=bearer(admin)).json()
    assert [(e["sequence"], e["cursor"]) for e in page["events"]] == [(i, str(i)) for i in ids]


# --------------------------------------------------------------------- subscription warning, strict input


def test_subscribing_to_approved_without_reopened_warns_in_the_cli_and_the_api(
    api: TestClient, session_factory: sessionmaker[Session], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert subscription_warnings(None) == [] and subscription_warnings(["call.deleted"]) == []
    assert subscription_warnings(["call.approved", "call.rejected", "call.reopened"]) == []
    (warning,) = subscription_warnings(["call.approved", "call.deleted"])
    assert "call.reopened or call.rejected" in warning and "reopened" in warning
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    narrow = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/a", "events": ["call.approved"]},
                      headers=bearer(admin)).json()
    assert narrow["warnings"] and "call.reopened" in narrow["warnings"][0]
    full = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/b"}, headers=bearer(admin)).json()
    assert full["warnings"] == []

    from app.cli.webhooks import webhooks_app
    from app.config import get_settings

    monkeypatch.setenv("POSTCALL_DATABASE_URL", db_url)
    get_settings.cache_clear()
    added = CliRunner().invoke(webhooks_app, ["add", "http://127.0.0.1:9/c", "--tenant", "acme",
                                              "--events", "call.approved,call.deleted"])
    assert added.exit_code == 0, added.output
    assert "call.reopened" in " ".join(added.output.split())


def test_the_feed_refuses_unknown_filters_and_registration_refuses_a_secret(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    filtered = api.get("/api/events?type=call.deleted&call_id=zzz&limit=3", headers=bearer(admin))
    assert filtered.status_code == 422
    assert "call_id, type" in filtered.text and "takes after, limit" in filtered.text
    assert api.get("/api/events?limit=3", headers=bearer(admin)).status_code == 200
    with_secret = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x", "secret": "whsec_abc"},
                           headers=bearer(admin))
    assert with_secret.status_code == 422 and "generates the signing secret" in with_secret.text
    unknown = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x", "evnets": ["call.approved"]},
                       headers=bearer(admin))
    assert unknown.status_code == 422
    assert api.get("/api/webhooks", headers=bearer(admin)).json() == []


@pytest.mark.postgres
def test_an_event_written_while_its_endpoint_is_being_enabled_reaches_it(
    pg_factory: sessionmaker[Session], allow_private: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline reads whether the tenant has an active endpoint when it locks the call, before it holds a
    lock on the outbox. An admin enabling the endpoint in between found nothing to queue, and the event, written
    as for no endpoint, was never delivered (nor queued by a later enable: it lies below deliveries made since)."""
    import threading

    import app.pipeline.persist as persist
    from app.llm.heuristic import HeuristicProvider
    from app.pipeline.run import process_call
    from tests.handoff.conftest import prompt, store_call

    endpoint_id, _ = register(pg_factory, "http://127.0.0.1:9/hooks")
    _disable(pg_factory, endpoint_id)
    call_id = store_call(pg_factory, "race-1")
    reached, release = threading.Event(), threading.Event()
    real_record_event = persist.record_event

    def record_event_after_the_enable(*args: object, **kwargs: object) -> int:
        reached.set()  # the call is locked and "no active endpoint" read: the admin enables now
        assert release.wait(20)
        return real_record_event(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(persist, "record_event", record_event_after_the_enable)
    worker = threading.Thread(target=lambda: process_call(pg_factory, call_id, HeuristicProvider(), prompt()))
    worker.start()
    assert reached.wait(20)
    with unit_of_work(pg_factory) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        enable_endpoint(session, allow_private, endpoint)
    release.set()
    worker.join(30)
    (event,) = _event_ids(pg_factory, call_id)
    assert [d.outbox_id for d in _deliveries(pg_factory, endpoint_id)] == [event]


@pytest.mark.postgres
def test_two_enables_at_once_queue_the_backlog_once_and_the_second_is_a_no_op(
    pg_factory: sessionmaker[Session], allow_private: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    import app.handoff.endpoints as endpoints
    from app.config import get_settings

    monkeypatch.setenv("POSTCALL_WEBHOOK_MAX_ENDPOINTS", "1")  # the second counted the first's endpoint: 422
    get_settings.cache_clear()
    settings = get_settings()
    endpoint_id, _ = register(pg_factory, "http://127.0.0.1:9/hooks")
    _disable(pg_factory, endpoint_id)
    processed_call(pg_factory, "both-1")
    inside, go = threading.Event(), threading.Event()
    real_missed = endpoints._missed_events

    def first_one_waits(session: Session, endpoint: WebhookEndpoint) -> list[tuple[int, str]]:
        if threading.current_thread().name == "first":
            inside.set()
            assert go.wait(10)
        return real_missed(session, endpoint)

    monkeypatch.setattr(endpoints, "_missed_events", first_one_waits)
    results: dict[str, object] = {}

    def enable(name: str) -> None:
        try:
            with unit_of_work(pg_factory) as session:
                endpoint = session.get(WebhookEndpoint, endpoint_id)
                assert endpoint is not None
                done = endpoints.enable_endpoint(session, settings, endpoint)
                results[name] = (done.was_disabled, done.queued)
        except Exception as exc:  # the outcome is what the test reads
            results[name] = repr(exc)

    first = threading.Thread(target=enable, args=("first",), name="first")
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=enable, args=("second",), name="second")
    second.start()
    time.sleep(0.5)
    go.set()
    first.join(20)
    second.join(20)
    assert results == {"first": (True, 1), "second": (False, 0)}
    assert len(_deliveries(pg_factory, endpoint_id)) == 1
