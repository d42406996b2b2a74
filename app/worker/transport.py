"""kombu's Redis transport, with one Redis client per channel for its short commands.

kombu builds a new `redis.Redis` for every prefetched message's bookkeeping, every acknowledgement and
every publish (`Channel.conn_or_acquire`); building one fills a table of a few hundred response callbacks,
which was a fifth of a worker's CPU per message. A redis-py client is safe to share between threads: each
command takes a connection from the channel's pool, and each pipeline is its own object. The client is
made again whenever kombu replaces the pool (after a fork or a lost connection)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

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
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()  # type: ignore[no-untyped-call]
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel


def broker_transport(broker_url: str) -> str | None:
    """The transport Celery should use for `broker_url`: this one for Redis, kombu's choice otherwise."""
    scheme = broker_url.split("://", 1)[0].lower()
    return f"{__name__}:Transport" if scheme in REDIS_SCHEMES else None
