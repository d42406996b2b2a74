"""The Redis transport the worker and publishers use: kombu's, with one client per channel (real Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection

from app.config import get_settings
from app.worker.celery_app import create_celery
from app.worker.transport import Transport, broker_transport
from tests.support.services import redis_url

BROKER_DB = 14


@pytest.fixture
def connection() -> Iterator[Any]:
    with Connection(redis_url(BROKER_DB), transport=Transport) as conn:  # type: ignore[no-untyped-call]
        conn.default_channel.client.flushdb()
        yield conn


def test_redis_urls_get_this_transport_and_others_keep_kombus() -> None:
    assert broker_transport("redis://127.0.0.1:6379/0") == "app.worker.transport:Transport"
    assert broker_transport("rediss://cache.example:6380/0") == "app.worker.transport:Transport"
    assert broker_transport("sentinel://127.0.0.1:26379") is None
    assert broker_transport("amqp://guest@127.0.0.1//") is None


def test_the_celery_app_connects_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTCALL_BROKER_URL", redis_url(BROKER_DB))
    get_settings.cache_clear()
    app = create_celery(get_settings())
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)


def test_a_channel_reuses_one_client_until_its_pool_is_replaced(connection: Any) -> None:
    channel: Any = connection.default_channel
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second
        assert first.connection_pool is channel.pool
    channel._after_fork()  # kombu drops the pools in a forked child: the client must not outlive its pool
    with channel.conn_or_acquire() as after_fork:
        assert after_fork is not first
        assert after_fork.connection_pool is channel.pool
        assert after_fork.ping()


def test_messages_round_trip_with_acknowledgement(connection: Any) -> None:
    queue = connection.SimpleQueue("transport-test")
    for number in range(3):
        queue.put({"n": number})
    received = []
    for _ in range(3):
        message = queue.get(timeout=5)
        received.append(message.payload["n"])
        message.ack()
    assert received == [0, 1, 2]
    channel: Any = connection.default_channel
    with channel.conn_or_acquire() as client:
        assert client.hlen(channel.unacked_key) == 0  # every acknowledgement reached Redis
    queue.close()
