"""The Redis transport the worker and publishers use: kombu's, with one client per channel, and a channel
whose connection is gone failing as a lost connection (real Redis)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest
from kombu import Exchange, Queue
from kombu.common import ignore_errors
from kombu.connection import Connection
from kombu.message import Message
from kombu.transport import redis as kombu_redis

from app.config import get_settings
from app.worker.celery_app import create_celery
from app.worker.transport import Transport, broker_transport
from tests.support.private_redis import PrivateRedis
from tests.support.services import redis_url

BROKER_DB = 15
FETCH_TIMEOUT = 10.0


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
        message = queue.get(timeout=30)  # returns as soon as it is there; generous for a loaded box
        received.append(message.payload["n"])
        message.ack()
    assert received == [0, 1, 2]
    channel: Any = connection.default_channel
    with channel.conn_or_acquire() as client:
        assert client.hlen(channel.unacked_key) == 0  # every acknowledgement reached Redis
    queue.close()


def _lose_connection_with_a_pending_fetch(transport: type[kombu_redis.Transport]) -> tuple[Connection, Message]:
    """A connection laid out as a Celery worker's consumer (tasks on the default channel, the remote-control
    mailbox, an auto-delete fanout queue, on a second channel) holding one unacknowledged task and waiting
    in BRPOP for the next when Redis dies, then closed as Celery's reconnect closes it: `collect()`, then
    `close()`. While Redis is down each close of the mailbox channel fails deleting its queue, before the
    task channel's turn; the task channel's own close fails reading the pending BRPOP."""
    server = PrivateRedis()
    server.start()
    try:
        connection = Connection(server.url(), transport=transport)  # type: ignore[no-untyped-call]
        tasks = Queue("reconnect-test")
        with connection.Producer() as producer:
            producer.publish({"n": 1}, routing_key=tasks.name, declare=[tasks])
        received: list[Message] = []
        connection.Consumer(tasks, callbacks=[lambda _body, message: received.append(message)]).consume()
        mailbox = Queue("reconnect-test.pidbox", Exchange("reconnect-test.control", type="fanout"), auto_delete=True)
        connection.Consumer(mailbox, channel=connection.channel()).consume()
        deadline = time.monotonic() + FETCH_TIMEOUT
        # Until the task arrived and a fetch for the next is waiting (a drain may return on the mailbox's
        # subscription instead, or on the task's arrival before the next BRPOP is sent).
        while not (received and connection.default_channel._in_poll):
            assert time.monotonic() < deadline, "the consumer never fetched"
            with suppress(socket.timeout):
                connection.drain_events(timeout=0.2)
        assert len(received) == 1
    finally:
        server.crash()
    # celery.worker.consumer.Consumer.on_connection_error_after_connected, in order.
    with suppress(Exception):
        connection.collect()
    ignore_errors(connection, connection.close)  # type: ignore[no-untyped-call]
    return connection, received[0]


def test_kombus_transport_breaks_when_celery_closes_a_lost_connection() -> None:
    """Why `Channel._get_pool` exists: with kombu's own channel the second close escapes as an AttributeError.
    Should this fail after a kombu upgrade, kombu has fixed it, and the override may go."""
    with pytest.raises(AttributeError, match="hostname"):
        _lose_connection_with_a_pending_fetch(kombu_redis.Transport)


def test_a_lost_connection_closes_and_acknowledges_as_a_connection_error() -> None:
    connection, message = _lose_connection_with_a_pending_fetch(Transport)
    channel: Any = message.channel
    assert channel.closed
    # A task that finishes after the reconnect acknowledges on the old channel: a connection error, which
    # Celery logs ("Couldn't ack"); the message comes back from Redis after the visibility timeout.
    with pytest.raises(connection.connection_errors):
        message.ack()
