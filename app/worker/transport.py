"""kombu's Redis transport, with one Redis client per channel for its short commands, and a channel whose
connection is gone failing as a lost connection.

One client per channel: kombu builds a new `redis.Redis` for every prefetched message's bookkeeping,
every acknowledgement and every publish (`Channel.conn_or_acquire`); building one fills a table of a few
hundred response callbacks, which was a fifth of a worker's CPU per message. A redis-py client is safe to
share between threads: each command takes a connection from the pool, and each pipeline is its own object.
The channel reuses its client only while the client's pool is the channel's current pool; otherwise it
takes kombu's own path (a new client, on a new pool if the old one was dropped).

A lost connection: Celery's reconnect closes the old connection's channels twice, first in
`Connection.collect()`, which then detaches the transport from its kombu connection (`transport.client =
None`), and again in `Connection.close()`. A pending BRPOP makes the first close raise before the channel
counts as closed, so the second one runs in full: it drops the pools, then needs a new one to put the
unacknowledged messages back, and kombu reads the broker's host from the detached client. That
AttributeError is no connection error, so it escapes Celery's reconnect and the worker exits (kombu's
transport does this too: tests/faults/test_broker_reconnect.py lost a worker with it). Here a channel
without a connection raises a connection error instead: the close is ignored like any other on a lost
connection, a late acknowledgement on the old channel is logged as failed, and the messages come back from
Redis after the visibility timeout."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

# Broker URL schemes served by kombu's plain Redis transport (sentinel has its own).
REDIS_SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self._pool:
            shared = self._shared_client = self._create_client()  # type: ignore[no-untyped-call]
        yield shared

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)  # type: ignore[no-untyped-call]
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            # A message that is not JSON (written by something other than Celery, or cut short): BRPOP has
            # already taken it off the queue, and kombu's error stopped the worker ("Unrecoverable error")
            # with every call in flight. Dropped, said, and the worker goes on.
            logger.error("dropped a message that is not a Celery message from the broker's queue: %s", exc)
            return True

    def _get_pool(self, asynchronous: bool = False) -> Any:
        connection = self.connection
        if connection is None or connection.client is None:
            # redis-py's own type: kombu and Celery handle it as a lost connection.
            raise RedisConnectionError("the channel's broker connection is closed")
        return super()._get_pool(asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel


def broker_transport(broker_url: str) -> str | None:
    """The transport Celery should use for `broker_url`: this one for Redis, kombu's choice otherwise."""
    scheme = broker_url.split("://", 1)[0].lower()
    return f"{__name__}:Transport" if scheme in REDIS_SCHEMES else None
