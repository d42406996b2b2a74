"""A real `postcall worker` writes its runs' timings in batches, and a graceful stop writes out the ones
still queued: with an hour-long interval nothing is written while it runs, everything once it stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, CallState, ExtractionRun
from tests.models.test_rollups import assert_rollups_match
from tests.pipeline.test_counts import _check
from tests.support.processes import postcall_env, run_postcall, wait_until, worker_process
from tests.support.services import redis_url

BROKER_DB = 13
DONE_STATES = {CallState.ready_for_review, CallState.needs_attention}


# prefork: the children write theirs out (worker_process_shutdown); threads and gevent (whose recorder
# thread is a greenlet): the worker's own process does (worker_shutdown). SIGTERM to the worker alone
# (docker stop) or to its whole process group (systemd's default), which prefork's children then get too.
@pytest.mark.parametrize(("pool", "group"), [("threads", False), ("gevent", False), ("prefork", False),
                                             ("prefork", True)])
def test_timings_queued_in_a_worker_are_written_when_it_stops(
    pool: str, group: bool, postgres_url: str, samples_dir: Path, tmp_path: Path,
) -> None:
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    env = postcall_env(postgres_url, broker, POSTCALL_TIMINGS_FLUSH_SECONDS="3600",
                       POSTCALL_TIMINGS_BATCH_SIZE="1000")
    ingested = run_postcall(["ingest", str(samples_dir), "--json"], env)
    assert ingested.returncode == 0, ingested.stderr
    call_count = len(json.loads(ingested.stdout)["files"])
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)

    def all_done() -> bool:
        with unit_of_work(factory) as session:
            states = session.scalars(select(Call.state)).all()
        return len(states) == call_count and all(state in DONE_STATES for state in states)

    def timings() -> list[tuple[float | None, float | None, float | None]]:
        with unit_of_work(factory) as session:
            rows = session.execute(select(ExtractionRun.db_ms, ExtractionRun.total_ms, ExtractionRun.cpu_ms)).all()
        return [tuple(row) for row in rows]  # type: ignore[misc]

    log = tmp_path / "worker.log"
    try:
        with worker_process(env, log, concurrency=3, pool=pool) as proc:
            assert wait_until(all_done, timeout=90), log.read_text()[-3000:]
            queued = timings()
            assert len(queued) == call_count and all(row == (None, None, None) for row in queued)
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        stored = timings()
        assert len(stored) == call_count, log.read_text()[-3000:]
        assert all(db is not None and total is not None and cpu is not None and 0 < db <= total
                   for db, total, cpu in stored), log.read_text()[-3000:]
        assert_rollups_match(factory)
        with factory() as session:
            _check(session, [])
    finally:
        engine.dispose()
