"""What a worker does once at startup, before its first call."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.worker import tasks
from tests.support.private_redis import PrivateRedis
from tests.support.processes import postcall_env, run_postcall, stop_process, wait_until, worker_process
from tests.support.services import redis_url

BROKER_DB = 4


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # later tests run with the collector as they always did


def test_startup_builds_the_context_then_freezes_what_is_alive(unfrozen: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_when_built: list[int] = []
    monkeypatch.setattr(tasks, "get_context", lambda: frozen_when_built.append(gc.get_freeze_count()))
    tasks.prepare_context()
    # The context is built first, so its objects (engine, provider, prompt) are among those frozen.
    assert frozen_when_built == [0]
    assert gc.get_freeze_count() > 10_000  # the modules, schemas and metadata loaded so far


def test_objects_made_after_the_freeze_are_still_collected(unfrozen: None) -> None:
    tasks.freeze_startup_objects()
    assert gc.isenabled()  # frozen, not switched off: the calls' cycles are still collected as they go

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    cycle = Cycle()
    gc.collect()  # nothing to find yet: `cycle` is alive
    del cycle
    assert gc.collect() >= 1  # the frozen objects are left alone, not the calls' garbage


def test_a_worker_that_cannot_start_exits_non_zero_and_one_stopped_exits_zero(
    postgres_url: str, tmp_path: Path
) -> None:
    # A broker at maxmemory (noeviction) refuses the worker's first write: Celery logs "Unrecoverable error"
    # and stops. `worker_main` dropped the code and `postcall worker` exited 0, so a supervisor with
    # restart-on-failure left the box with no worker.
    full = PrivateRedis()
    full.start()
    try:
        full.fill()
        failed = run_postcall(["worker", "--concurrency=1", "--loglevel=INFO"],
                              postcall_env(postgres_url, full.url(0)), timeout=60)
    finally:
        full.stop()
    assert failed.returncode != 0
    assert "Unrecoverable error" in failed.stdout + failed.stderr
    # A worker stopped the usual way (SIGTERM: a deploy, `systemctl stop`) still exits 0. On a Redis database
    # of its own: another test's queue may hold messages that are not Celery's.
    log = tmp_path / "worker.log"
    redis.Redis.from_url(redis_url(BROKER_DB)).flushdb()
    with worker_process(postcall_env(postgres_url, redis_url(BROKER_DB)), log, concurrency=1) as proc:
        assert wait_until(lambda: b"ready." in log.read_bytes(), timeout=60), log.read_text()[-2000:]
        stop_process(proc)
        assert proc.returncode == 0, log.read_text()[-2000:]


def test_a_message_that_is_not_celery_s_is_dropped_and_the_worker_goes_on(
    postgres_url: str, tmp_path: Path
) -> None:
    # kombu's read of a message that is not JSON raised, and the worker stopped ("Unrecoverable error") with
    # every call in flight; now it is dropped with an error and the next message is processed.
    from sqlalchemy import select

    from app.db.session import create_db_engine, make_session_factory, unit_of_work
    from app.models import Call, CallState
    from app.worker.enqueue import enqueue_calls
    from app.worker.names import QUEUE_NAME
    from tests.handoff.conftest import store_call

    broker_url = redis_url(BROKER_DB)
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    call_id = store_call(factory, "after-garbage")
    broker.lpush(QUEUE_NAME, "not json at all", b"\xff\xfe")
    enqueue_calls([call_id], broker_url=broker_url)
    log = tmp_path / "worker.log"

    def processed() -> bool:
        with unit_of_work(factory) as session:
            return session.scalar(select(Call.state).where(Call.id == call_id)) in {
                CallState.ready_for_review, CallState.needs_attention}

    try:
        with worker_process(postcall_env(postgres_url, broker_url), log, concurrency=1) as proc:
            assert wait_until(processed, timeout=60), log.read_text()[-3000:]
            assert proc.poll() is None  # still running
            stop_process(proc)
            assert proc.returncode == 0
        text = log.read_text()
        assert text.count("dropped a message that is not a Celery message") == 2
        assert "Unrecoverable error" not in text
    finally:
        broker.flushdb()
        engine.dispose()
