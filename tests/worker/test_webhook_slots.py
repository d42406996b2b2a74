"""A worker process sends at most POSTCALL_WEBHOOK_DELIVERY_SLOTS deliveries at once: a delivery over the
bound is put off and asked for again, so slow receivers never hold every slot the calls need."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select

import app.worker.webhooks as webhook_tasks
from app.config import get_settings
from app.context import reset_context
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.handoff.delivery import DeliveryPolicy, sweep_due_deliveries
from app.handoff.outbox import install_delivery_notifier
from app.models import DeliveryStatus, WebhookDelivery
from app.models.tables import utcnow
from app.worker.names import QUEUE_NAME, TASK_DELIVER_WEBHOOK
from tests.handoff.conftest import processed_call, register
from tests.support.receiver import running_receiver
from tests.support.services import redis_url

BROKER_DB = 7


@pytest.fixture
def worker_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("POSTCALL_BROKER_URL", redis_url(BROKER_DB))
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("POSTCALL_WEBHOOK_DELIVERY_SLOTS", "2")
    monkeypatch.setenv("POSTCALL_WORKER_CONCURRENCY", "8")  # room for 2 deliveries beside the calls
    monkeypatch.setenv("POSTCALL_SECRET_KEY", "webhook-slots-test-key-" + "k" * 24)
    get_settings.cache_clear()
    reset_context()
    install_delivery_notifier(None)  # the test hands deliveries to the task itself
    monkeypatch.setattr(webhook_tasks, "_slots", None)
    monkeypatch.setattr(webhook_tasks, "_worker_slots", None)
    monkeypatch.setattr(webhook_tasks, "_sender", None)
    yield sqlite_url
    reset_context()


def test_a_delivery_over_the_bound_is_put_off_and_asked_for_again(worker_database: str) -> None:
    broker = redis.Redis.from_url(redis_url(BROKER_DB))
    broker.flushdb()
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
        # Asked for again shortly: one message for the same delivery, one deferral later.
        (message,) = [json.loads(raw) for raw in broker.lrange(QUEUE_NAME, 0, -1)]
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        assert message["headers"]["task"] == TASK_DELIVER_WEBHOOK and message["headers"]["eta"] is not None
        assert args == [delivery_id] and kwargs == {"deferrals": 1}
        broker.flushdb()
        with unit_of_work(factory) as session:
            assert session.get(WebhookDelivery, delivery_id).status is DeliveryStatus.pending
            # Untouched: were that message lost, the next sweep hands it out again.
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
