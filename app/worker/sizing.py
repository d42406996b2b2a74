"""How big a worker is: pool, concurrency, database and Redis connections, from latency and target rate.

The rule (docs/operations.md, "Sizing"): a call occupies a worker slot for the model's latency plus its own
CPU time, so by Little's law a process that should finish `rate` calls per second needs
`rate x (latency + cpu)` slots, plus headroom for latency spread. Each slot may need a database connection
for its short transactions: the pool holds that many (up to a limit) with no overflow, so connections are
opened once and kept, never closed and reopened under load. Settings override every derived number.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from dataclasses import dataclass

from app.config import Settings, get_settings
from app.db.session import pool_size_for
from app.errors import ConfigError

logger = logging.getLogger(__name__)

# CPU one call costs a worker process (pipeline plus Celery), measured by bench/throughput; it adds to the
# time a call holds its slot.
CPU_SECONDS_PER_CALL = 0.010
# Slots above the mean: model latency varies, and a slot freed late must not starve the queue.
LATENCY_HEADROOM = 1.25
MIN_CONCURRENCY = 2
# The `openai` provider's expected answer time when POSTCALL_WORKER_MODEL_LATENCY_SECONDS is unset. The
# offline heuristic answers at once: its calls are CPU-bound, so more slots would only wait for the GIL.
DEFAULT_MODEL_LATENCY_SECONDS = {"openai": 2.0, "heuristic": 0.0}
# Redis connections: one per slot acknowledging or publishing at the same moment, the consumer's own, and
# a margin (redis-py raises rather than waits when its pool is exhausted).
REDIS_CONNECTIONS_PER_SLOT = 2
REDIS_SPARE_CONNECTIONS = 10


@dataclass(frozen=True)
class WorkerSizing:
    pool: str
    concurrency: int
    db_pool_size: int
    redis_max_connections: int
    model_latency_seconds: float
    target_calls_per_second: float

    def describe(self) -> str:
        return (
            f"pool={self.pool} concurrency={self.concurrency} db_pool={self.db_pool_size} "
            f"redis_max_connections={self.redis_max_connections} (target {self.target_calls_per_second:g} "
            f"calls/s at {self.model_latency_seconds:g} s model latency)"
        )


def model_latency(settings: Settings) -> float:
    if settings.worker_model_latency_seconds is not None:
        return settings.worker_model_latency_seconds
    return DEFAULT_MODEL_LATENCY_SECONDS.get(settings.llm_provider, 0.0)


def derived_concurrency(rate: float, latency: float) -> int:
    """Little's law: slots = arrival rate x time a call holds a slot, with headroom."""
    return max(MIN_CONCURRENCY, math.ceil(rate * (latency + CPU_SECONDS_PER_CALL) * LATENCY_HEADROOM))


def worker_sizing(settings: Settings) -> WorkerSizing:
    latency = model_latency(settings)
    rate = settings.worker_target_calls_per_second
    # Under prefork a slot is a process, with its own memory and connections: one per core, not hundreds.
    prefork = settings.worker_pool == "prefork"
    derived = (os.cpu_count() or 1) if prefork else derived_concurrency(rate, latency)
    concurrency = settings.worker_concurrency or derived
    db_pool = pool_size_for(concurrency, size=settings.db_pool_size, limit=settings.db_pool_limit)
    return WorkerSizing(
        pool=settings.worker_pool,
        concurrency=concurrency,
        db_pool_size=db_pool,
        redis_max_connections=concurrency * REDIS_CONNECTIONS_PER_SLOT + REDIS_SPARE_CONNECTIONS,
        model_latency_seconds=latency,
        target_calls_per_second=rate,
    )


def resolve_worker_sizing(concurrency: int | None = None, pool: str | None = None) -> WorkerSizing:
    """The sizing `postcall worker` runs with: command-line choices over settings over the rule.

    The resolved numbers are written back as POSTCALL_* variables, so every part of the worker that reads
    Settings (the Celery configuration, the database engine, a re-executed gevent process, prefork
    children) sees the same values."""
    if concurrency is not None:
        os.environ["POSTCALL_WORKER_CONCURRENCY"] = str(concurrency)
    if pool is not None:
        os.environ["POSTCALL_WORKER_POOL"] = pool
    get_settings.cache_clear()
    try:
        sizing = worker_sizing(get_settings())
    except ValueError as exc:  # pydantic rejects an unknown pool or a non-positive number
        raise ConfigError(str(exc)) from exc
    os.environ["POSTCALL_WORKER_CONCURRENCY"] = str(sizing.concurrency)
    os.environ["POSTCALL_DB_POOL_SIZE"] = str(sizing.db_pool_size)
    get_settings.cache_clear()
    return sizing


def gevent_is_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


def reexec_under_gevent() -> None:
    """Start this command again in a process that monkey-patches before importing anything else.

    gevent must patch socket, ssl, threading and time before redis, psycopg, httpx or Celery import them;
    by the time a command runs they already have, so patching here would leave blocking sockets that stall
    every greenlet. psycopg 3 (3.1.14+) waits cooperatively once the standard library is patched."""
    try:
        import gevent  # noqa: F401
    except ImportError as exc:
        raise ConfigError("POSTCALL_WORKER_POOL=gevent needs the gevent package installed") from exc
    # The same interpreter and arguments, no shell.
    os.execv(sys.executable, [sys.executable, "-m", "app.worker.green", *sys.argv[1:]])  # noqa: S606


def prepare_worker(concurrency: int | None = None, pool: str | None = None) -> WorkerSizing:
    """What `postcall worker` does before it loads Celery: resolve the sizing, check the timeouts, and
    move to a patched process when the pool is gevent (this call then does not return)."""
    sizing = resolve_worker_sizing(concurrency, pool)
    get_settings().check_redelivery_order()
    if sizing.pool == "gevent" and not gevent_is_patched():
        reexec_under_gevent()
    logger.info("worker sizing: %s", sizing.describe())
    settings = get_settings()
    if sizing.pool in ("threads", "gevent") and settings.group_commit_max_calls > 1 and sizing.concurrency > 1:
        logger.info("group commit: claims and results stored up to %d calls to a transaction, within %g ms "
                    "(PostgreSQL only)", min(settings.group_commit_max_calls, sizing.concurrency),
                    settings.group_commit_wait_ms)
    return sizing
