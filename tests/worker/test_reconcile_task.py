"""The beat's reconciler (app/worker/tasks.py `reconcile_task`) publishes every stuck call to a real Redis,
oldest first, at most POSTCALL_RECONCILE_MAX_CALLS_PER_RUN per run, and the next run goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import insert, select, update

from app.config import get_settings
from app.context import reset_context
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.db.types import as_utc
from app.models import Call, CallState, Tenant
from app.models.tables import utcnow
from app.pipeline.store import store_transcript
from app.worker.names import QUEUE_NAME
from tests.support.services import redis_url
from tests.support.transcripts import make_transcript

BROKER_DB = 12


@pytest.fixture
def broker(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    url = redis_url(BROKER_DB)
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("POSTCALL_BROKER_URL", url)
    monkeypatch.setenv("POSTCALL_RECONCILE_MAX_CALLS_PER_RUN", "2")
    get_settings.cache_clear()
    reset_context()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield client
    client.flushdb()
    reset_context()


def _stuck_calls(url: str, ages_in_minutes: list[int]) -> list[str]:
    """Calls queued that many minutes ago (past the stuck-after timeout), in the order given."""
    engine = create_db_engine(url)
    try:
        factory = make_session_factory(engine)
        call_ids = []
        for age in ages_in_minutes:
            with unit_of_work(factory) as session:
                call_id = store_transcript(session, make_transcript(external_id=f"age-{age}"), tenant="default",
                                           external_id=f"age-{age}").call_id
                session.execute(update(Call).where(Call.id == call_id).values(
                    state=CallState.queued, state_changed_at=utcnow() - timedelta(minutes=age)))
            call_ids.append(call_id)
        return call_ids
    finally:
        engine.dispose()


def _stuck_rows(url: str, count: int) -> list[str]:
    """`count` calls of one tenant queued two hours ago, as rows of calls alone (many, quickly)."""
    engine = create_db_engine(url)
    try:
        long_ago = utcnow() - timedelta(hours=2)
        with engine.begin() as connection:
            tenant_id = connection.execute(insert(Tenant).values(slug="acme").returning(Tenant.id)).scalar_one()
            rows = [{"id": f"stuck-{n:05d}", "tenant_id": tenant_id, "external_id": f"stuck-{n:05d}",
                     "source_format": "json", "transcript_hash": f"{n:064d}", "state": CallState.queued,
                     "state_changed_at": long_ago, "attempts": 1, "created_at": long_ago} for n in range(count)]
            connection.execute(insert(Call), rows)
        return [row["id"] for row in rows]
    finally:
        engine.dispose()


def _published(client: redis.Redis) -> list[str]:
    """The arguments of the queued messages, in publishing order (kombu pushes on the left)."""
    return [json.loads(raw)["headers"]["argsrepr"] for raw in reversed(client.lrange(QUEUE_NAME, 0, -1))]


def test_each_run_publishes_at_most_its_limit_oldest_first_and_the_next_goes_on(broker: redis.Redis) -> None:
    from app.worker.tasks import reconcile_task

    stuck_after_minutes = get_settings().stuck_after_seconds // 60
    old, older, oldest, fresh = _stuck_calls(get_settings().database_url, [
        stuck_after_minutes + 5, stuck_after_minutes + 10, stuck_after_minutes + 15, 1])

    assert reconcile_task() == 2
    assert _published(broker) == [repr([oldest]), repr([older])]
    assert reconcile_task() == 1
    assert reconcile_task() == 0
    # The fresh call is not stuck: never published, its clock untouched.
    assert _published(broker) == [repr([oldest]), repr([older]), repr([old])]
    engine = create_db_engine(get_settings().database_url)
    try:
        with engine.connect() as connection:
            state, since = connection.execute(
                select(Call.state, Call.state_changed_at).where(Call.id == fresh)).one()
    finally:
        engine.dispose()
    assert state is CallState.queued and utcnow() - as_utc(since) > timedelta(seconds=30)


@pytest.mark.parametrize("messages_in_the_broker", [0, 1_000])
def test_a_run_takes_what_the_broker_lost_not_a_backlog_it_still_holds(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch, messages_in_the_broker: int
) -> None:
    """1,000 calls queued past the timeout. With the broker empty (Redis lost its queue) one run publishes
    them all; with 1,000 messages waiting (a long, healthy backlog) only its floor of 500, not a second copy
    of everything."""
    from app.pipeline.reconcile import RECONCILE_BATCH
    from app.worker.tasks import reconcile_task

    monkeypatch.setenv("POSTCALL_RECONCILE_MAX_CALLS_PER_RUN", "50000")
    get_settings.cache_clear()
    reset_context()
    stuck = _stuck_rows(get_settings().database_url, 1_000)
    if messages_in_the_broker:
        broker.lpush(QUEUE_NAME, *(json.dumps({"headers": {"argsrepr": "waiting"}}) for _ in range(1_000)))

    published = reconcile_task()

    assert published == (RECONCILE_BATCH if messages_in_the_broker else len(stuck))
    assert broker.llen(QUEUE_NAME) == messages_in_the_broker + published
