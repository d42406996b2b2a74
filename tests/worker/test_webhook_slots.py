"""A worker process sends at most POSTCALL_WEBHOOK_DELIVERY_SLOTS deliveries at once: a delivery over the
bound is left pending for the sweep, so slow receivers never hold every slot the calls need."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

import app.worker.webhooks as webhook_tasks
from app.config import get_settings
from app.context import reset_context
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.handoff.delivery import DeliveryPolicy, sweep_due_deliveries
from app.handoff.outbox import install_delivery_notifier
from app.models import DeliveryStatus, WebhookDelivery
from app.models.tables import utcnow
from tests.handoff.conftest import processed_call, register
from tests.support.receiver import running_receiver


@pytest.fixture
def worker_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("POSTCALL_WEBHOOK_DELIVERY_SLOTS", "2")
    monkeypatch.setenv("POSTCALL_SECRET_KEY", "webhook-slots-test-key-" + "k" * 24)
    get_settings.cache_clear()
    reset_context()
    install_delivery_notifier(None)  # the test hands deliveries to the task itself
    monkeypatch.setattr(webhook_tasks, "_slots", None)
    monkeypatch.setattr(webhook_tasks, "_sender", None)
    yield sqlite_url
    reset_context()


def test_a_delivery_over_the_bound_waits_for_the_sweep_then_goes(worker_database: str) -> None:
    factory = make_session_factory(create_db_engine(worker_database))
    with running_receiver() as receiver:
        register(factory, receiver.url)
        call_id = processed_call(factory, "slots-1")
        with unit_of_work(factory) as session:
            delivery_id = session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.call_id == call_id)).one()
        slots = webhook_tasks.delivery_slots()
        held = [slots.acquire(blocking=False) for _ in range(2)]  # two slow receivers hold both slots
        assert held == [True, True]
        try:
            assert webhook_tasks.deliver_webhook_task(delivery_id) == webhook_tasks.DEFERRED
        finally:
            for _ in held:
                slots.release()
        assert receiver.accepted_requests() == []
        with unit_of_work(factory) as session:
            assert session.get(WebhookDelivery, delivery_id).status is DeliveryStatus.pending
            # Untouched: the next sweep hands it out again.
            assert sweep_due_deliveries(session, utcnow(), DeliveryPolicy.from_settings(get_settings())) == [
                delivery_id]
        assert webhook_tasks.deliver_webhook_task(delivery_id) == "succeeded"
        assert len(receiver.accepted_requests()) == 1
    with unit_of_work(factory) as session:
        assert session.get(WebhookDelivery, delivery_id).status is DeliveryStatus.succeeded


def test_the_bound_defaults_to_a_quarter_of_the_slots(worker_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTCALL_WEBHOOK_DELIVERY_SLOTS")
    monkeypatch.setenv("POSTCALL_WORKER_CONCURRENCY", "40")
    get_settings.cache_clear()
    reset_context()
    slots = webhook_tasks.delivery_slots()
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        slots.release()
    assert taken == 10
