"""Hand-off under faults, on the real stack: real workers (with the beat sweep), a private Redis, PostgreSQL
and a real receiver on 127.0.0.1. Every test ends with the same invariant (`check_handoff`): every event
delivered (2xx), each event under one webhook-id only, and the events of a call accepted in order."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.migrate import upgrade
from app.db.session import unit_of_work
from app.handoff.endpoints import add_endpoint
from app.models import DeliveryStatus, OutboxEvent, UserRole, WebhookAttempt, WebhookDelivery
from app.pipeline.calls import get_or_create_tenant
from app.review import CallDecision, decide_call
from app.users import Principal, create_user, principal_of
from tests.faults.harness import (
    DONE_STATES,
    FAULT_TENANT,
    FaultStack,
    fault_stack,
    ingest,
    private_postgres,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import wait_until
from tests.support.receiver import Received, Receiver, Reply, Script, always_ok, verify
from tests.support.services import migrated_pg_database

SECRET_KEY = "webhook-faults-secret-key"
CALLS = 8
LLM_DELAY_SECONDS = 0.05
PROCESS_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 60.0
WEBHOOK_ENV = {
    "POSTCALL_SECRET_KEY": SECRET_KEY,
    "POSTCALL_WEBHOOK_ALLOW_PRIVATE": "true",
    "POSTCALL_WEBHOOK_TIMEOUT_SECONDS": "1",
    "POSTCALL_WEBHOOK_BACKOFF_BASE_SECONDS": "0.2",
    "POSTCALL_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "POSTCALL_WEBHOOK_SWEEP_EVERY_SECONDS": "0.5",
}


def _settings(**overrides: str) -> Settings:
    env = {**WEBHOOK_ENV, **overrides}
    return Settings(secret_key=env["POSTCALL_SECRET_KEY"], webhook_allow_private=True,
                    webhook_timeout_seconds=float(env["POSTCALL_WEBHOOK_TIMEOUT_SECONDS"]))


def register_endpoint(factory: sessionmaker[Session], url: str, **overrides: str) -> str:
    with unit_of_work(factory) as session:
        tenant = get_or_create_tenant(session, FAULT_TENANT)
        return add_endpoint(session, _settings(**overrides), tenant_id=tenant.id, url=url).secret


def supervisor(factory: sessionmaker[Session]) -> Principal:
    with unit_of_work(factory) as session:
        created = create_user(session, tenant=FAULT_TENANT, name="sam", role=UserRole.supervisor)
        return principal_of(created.user, FAULT_TENANT)


def reject_all(factory: sessionmaker[Session], principal: Principal, call_ids: Sequence[str]) -> None:
    """A second event per call (call.rejected), written by this process: the beat sweep hands it out."""
    for call_id in call_ids:
        with unit_of_work(factory) as session:
            decide_call(session, principal, call_id, CallDecision.reject)


def expected_events(factory: sessionmaker[Session], call_ids: Sequence[str]) -> list[OutboxEvent]:
    with unit_of_work(factory) as session:
        rows = list(session.scalars(select(OutboxEvent).where(OutboxEvent.call_id.in_(list(call_ids)))
                                    .order_by(OutboxEvent.id)).all())
        session.expunge_all()
        return rows


def all_accepted(receiver: Receiver, count: int) -> bool:
    return len({r.webhook_id for r in receiver.accepted_requests()}) >= count


def check_handoff(factory: sessionmaker[Session], receiver: Receiver, call_ids: Sequence[str], secret: str,
                  *, events_per_call: int) -> list[OutboxEvent]:
    events = expected_events(factory, call_ids)
    assert len(events) == len(call_ids) * events_per_call
    accepted_at: dict[str, float] = {}
    for request, answered in receiver.accepted:
        accepted_at.setdefault(request.webhook_id, answered)
        verify(request, secret)
    by_id = {e.event_id: e for e in events}
    missing = [e.event_id for e in events if e.event_id not in accepted_at]
    assert not missing, f"{len(missing)} events never accepted"
    # Never invented, never renamed: every webhook-id the receiver saw is one event's id, and every request
    # for that id carried that event's content.
    for request in receiver.all_requests():
        assert request.webhook_id in by_id, f"unknown webhook-id {request.webhook_id}"
        event = by_id[request.webhook_id]
        assert (request.type, request.call_id) == (event.type, event.call_id)
    # In order per call: event N+1 first arrived after event N had been accepted.
    first_arrival: dict[str, float] = {}
    for request in receiver.all_requests():
        first_arrival.setdefault(request.webhook_id, request.at)
    for call_id in call_ids:
        chain = [e for e in events if e.call_id == call_id]
        for earlier, later in itertools.pairwise(chain):
            assert first_arrival[later.event_id] >= accepted_at[earlier.event_id], f"call {call_id} out of order"
    # The receiver answers before the worker records the outcome: give the last commits a moment.
    assert wait_until(lambda: _all_finished(factory), 15), "deliveries not all recorded as succeeded"
    return events


def _all_finished(factory: sessionmaker[Session]) -> bool:
    try:
        with unit_of_work(factory) as session:
            return set(session.scalars(select(WebhookDelivery.status))) == {DeliveryStatus.succeeded}
    except SQLAlchemyError:
        return False


def attempt_outcomes(factory: sessionmaker[Session]) -> list[tuple[str, int | None, str | None]]:
    with unit_of_work(factory) as session:
        return [(a.outcome, a.status_code, a.error)
                for a in session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id))]


@contextmanager
def shared_database() -> Iterator[str]:
    with migrated_pg_database() as url:
        yield url


@contextmanager
def receiver_on(port: int, script: Script = always_ok) -> Iterator[Receiver]:
    receiver = Receiver(script=script, port=port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def process_and_reject(stack: FaultStack, prefix: str) -> list[str]:
    call_ids = ingest(stack.factory, stack.broker, CALLS, prefix)
    assert wait_until_all_in(stack.factory, call_ids, DONE_STATES, PROCESS_TIMEOUT)
    reject_all(stack.factory, supervisor(stack.factory), call_ids)
    return call_ids


@pytest.mark.faults
def test_receiver_down_then_back(tmp_path: Path) -> None:
    """Connection refused for a while: the events wait and retry, then all arrive, in order, once each id."""
    receiver = Receiver()
    with shared_database() as url, fault_stack(url, LLM_DELAY_SECONDS, **WEBHOOK_ENV) as stack, \
            worker_fleet(stack.env, stack.llm, tmp_path) as fleet:
        secret = register_endpoint(stack.factory, receiver.url)
        fleet.start(beat=True)
        call_ids = process_and_reject(stack, "down")
        # Nothing listens yet: every attempt so far failed to connect.
        assert wait_until(lambda: len(attempt_outcomes(stack.factory)) >= CALLS, 30), fleet.logs()
        time.sleep(2.0)
        with receiver_on(receiver.port) as back:
            delivered = wait_until(lambda: all_accepted(back, 2 * CALLS), DELIVERY_TIMEOUT)
            assert delivered, fleet.logs()
            check_handoff(stack.factory, back, call_ids, secret, events_per_call=2)
        refused = [a for a in attempt_outcomes(stack.factory) if a[0] == "retry"]
        assert refused and all(code is None and error for _, code, error in refused)


@pytest.mark.faults
def test_receiver_answering_500_429_and_timeouts(tmp_path: Path) -> None:
    """Each event meets a 500, a 429 with Retry-After, then a reply slower than the 1 s timeout, then 200."""
    script_replies = [Reply(500), Reply(429, retry_after="1"), Reply(200, delay=1.6), Reply(200)]

    def script(_request: Received, seen: int) -> Reply:
        return script_replies[min(seen, len(script_replies)) - 1]

    receiver = Receiver(script=script)
    with shared_database() as url, fault_stack(url, LLM_DELAY_SECONDS, **WEBHOOK_ENV) as stack, \
            worker_fleet(stack.env, stack.llm, tmp_path) as fleet, receiver_on(receiver.port, script) as live:
        secret = register_endpoint(stack.factory, live.url)
        fleet.start(beat=True)
        call_ids = ingest(stack.factory, stack.broker, CALLS, "flaky")
        assert wait_until_all_in(stack.factory, call_ids, DONE_STATES, PROCESS_TIMEOUT)
        assert wait_until(lambda: all_accepted(live, CALLS), DELIVERY_TIMEOUT), fleet.logs()
        check_handoff(stack.factory, live, call_ids, secret, events_per_call=1)
        per_id: dict[str, int] = {}
        for request in live.all_requests():
            per_id[request.webhook_id] = per_id.get(request.webhook_id, 0) + 1
        assert set(per_id.values()) == {4}, per_id  # 500, 429, timeout, 200: four tries, one id each
        outcomes = attempt_outcomes(stack.factory)
        assert {(o, c) for o, c, _ in outcomes} == {("retry", 500), ("retry", 429), ("retry", None),
                                                    ("succeeded", 200)}
        assert any(error and "timeout" in error for _, code, error in outcomes if code is None)
        with unit_of_work(stack.factory) as session:
            retried_after = session.execute(select(WebhookAttempt.started_at, WebhookAttempt.status_code,
                                                   WebhookAttempt.delivery_id).order_by(WebhookAttempt.id)).all()
        # Retry-After: 1 s was honoured between the 429 and the next try of the same delivery.
        last_429: dict[int, float] = {}
        for started_at, code, delivery_id in retried_after:
            if code == 429:
                last_429[delivery_id] = started_at.timestamp()
            elif delivery_id in last_429:
                assert started_at.timestamp() - last_429.pop(delivery_id) >= 0.95


@pytest.mark.faults
def test_worker_killed_mid_send_redelivers_with_the_same_webhook_id(tmp_path: Path) -> None:
    """The receiver holds the first request of each event; the worker sending it is SIGKILLed meanwhile.
    A new worker sends the event again, under the same webhook-id, and the lost attempt is recorded."""
    held = threading.Event()

    def script(_request: Received, seen: int) -> Reply:
        if seen == 1:
            held.set()
            return Reply(200, delay=3.0)  # the answer goes nowhere: its worker is dead by then
        return Reply(200)

    overrides = {"POSTCALL_WEBHOOK_TIMEOUT_SECONDS": "5"}
    receiver = Receiver(script=script)
    with shared_database() as url, fault_stack(url, LLM_DELAY_SECONDS, **{**WEBHOOK_ENV, **overrides}) as stack, \
            worker_fleet(stack.env, stack.llm, tmp_path, concurrency=2) as fleet, \
            receiver_on(receiver.port, script) as live:
        secret = register_endpoint(stack.factory, live.url, **overrides)
        victim = fleet.start()
        call_ids = ingest(stack.factory, stack.broker, 1, "kill")
        assert held.wait(PROCESS_TIMEOUT), fleet.logs()
        fleet.kill(victim)
        (killed_request,) = live.all_requests()
        fleet.start(beat=True)
        assert wait_until(lambda: all_accepted(live, 1), DELIVERY_TIMEOUT), fleet.logs()
        check_handoff(stack.factory, live, call_ids, secret, events_per_call=1)
        (accepted,) = live.accepted_requests()
        assert accepted.webhook_id == killed_request.webhook_id
        assert [o for o, _, _ in attempt_outcomes(stack.factory)] == ["lost", "succeeded"]


@pytest.mark.faults
def test_postgres_restart_during_deliveries(tmp_path: Path) -> None:
    """PostgreSQL stops for a few seconds while events are being delivered: every one still arrives."""
    slow = Receiver(script=lambda _r, _n: Reply(200, delay=0.3))
    with private_postgres() as server:
        url = server.create_database("postcall")
        upgrade(url)
        with fault_stack(url, LLM_DELAY_SECONDS, **WEBHOOK_ENV) as stack, \
                worker_fleet(stack.env, stack.llm, tmp_path, concurrency=2) as fleet, \
                receiver_on(slow.port, slow.script) as live:
            secret = register_endpoint(stack.factory, live.url)
            fleet.start(beat=True)
            call_ids = process_and_reject(stack, "pg")
            assert wait_until(lambda: len(live.accepted_requests()) >= 3, DELIVERY_TIMEOUT), fleet.logs()
            server.stop("fast")
            accepted_before_restart = len({r.webhook_id for r in live.accepted_requests()})
            time.sleep(3.0)
            server.start()

            assert wait_until(lambda: all_accepted(live, 2 * CALLS) and _all_finished(stack.factory),
                              DELIVERY_TIMEOUT), fleet.logs()
            check_handoff(stack.factory, live, call_ids, secret, events_per_call=2)
            assert all(w.alive for w in fleet.workers), "a worker died with the database"
        assert accepted_before_restart < 2 * CALLS  # the outage did hit deliveries still to make


