"""The app factory (app/web/app.py): the web app's database pool follows the sizing rule."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import QueuePool

from app.web.app import REQUEST_THREADS, create_app
from tests.web.world import BrokerQueue, settings_for


def _pool(url: str, **overrides: Any) -> QueuePool:
    app = create_app(settings_for(url, **overrides), enqueue=BrokerQueue.fresh())
    engine = app.state.web.session_factory.kw["bind"]
    assert isinstance(engine, Engine) and isinstance(engine.pool, QueuePool)
    engine.dispose()
    return engine.pool


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("overrides", "size"),
    [
        ({}, 20),  # the documented default: POSTCALL_DB_POOL_LIMIT
        ({"db_pool_limit": 7}, 7),
        ({"db_pool_limit": 500}, REQUEST_THREADS),  # never more than requests can use at once
        ({"db_pool_size": 3, "db_pool_limit": 7}, 3),
    ],
)
def test_the_pool_holds_one_connection_per_request_slot_up_to_the_limit_without_overflow(
    postgres_url: str, overrides: dict[str, int], size: int
) -> None:
    pool = _pool(postgres_url, **overrides)
    assert pool.size() == size
    assert pool._max_overflow == 0  # no connection opened and closed again under load


def test_request_slots_are_anyio_s_worker_threads() -> None:
    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert anyio.run(tokens) == REQUEST_THREADS
