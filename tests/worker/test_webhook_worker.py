"""End to end on the real stack: a real `postcall worker --beat` processes calls from Redis into PostgreSQL
and delivers each call.processed event, signed, to a real receiver on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import DeliveryStatus, OutboxEvent, WebhookDelivery
from app.worker.enqueue import enqueue_calls
from tests.handoff.conftest import register, store_call
from tests.support.processes import postcall_env, wait_until, worker_process
from tests.support.receiver import running_receiver, verify
from tests.support.services import redis_url

BROKER_DB = 6
CALLS = 6
SECRET_KEY = "webhook-worker-test-secret-key"


def test_the_worker_delivers_signed_events_for_processed_calls(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    monkeypatch.setenv("POSTCALL_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    env = postcall_env(postgres_url, broker, POSTCALL_SECRET_KEY=SECRET_KEY, POSTCALL_WEBHOOK_ALLOW_PRIVATE="true",
                       POSTCALL_WEBHOOK_SWEEP_EVERY_SECONDS="1")
    try:
        with running_receiver() as receiver:
            _, secret = register(factory, receiver.url)
            call_ids = [store_call(factory, f"wh-{n}") for n in range(CALLS)]
            with worker_process(env, tmp_path / "worker.log"):
                enqueue_calls(call_ids, broker_url=broker)
                delivered = wait_until(lambda: len(receiver.accepted_requests()) >= CALLS, timeout=120)
                assert delivered, (tmp_path / "worker.log").read_text()[-3000:]
            requests = receiver.accepted_requests()
        with unit_of_work(factory) as session:
            event_ids = dict(session.execute(select(OutboxEvent.call_id, OutboxEvent.event_id)).all())
            statuses = set(session.scalars(select(WebhookDelivery.status)))
        assert sorted(r.call_id for r in requests) == sorted(call_ids)
        for request in requests:
            assert verify(request, secret)["type"] == "call.processed"
            assert request.webhook_id == event_ids[request.call_id]
        assert statuses == {DeliveryStatus.succeeded}
    finally:
        engine.dispose()
