"""A real Celery worker SIGKILLed in the middle of a call: the broker redelivers the call after its
visibility timeout, another worker processes it, and the call ends with exactly one run."""

from __future__ import annotations

from pathlib import Path

import redis

from app.db.session import create_db_engine, make_session_factory
from app.models import CallState
from tests.faults.harness import (
    DONE_STATES,
    call_states,
    check_exactly_once,
    extracting_llm,
    fault_env,
    ingest,
    wait_until_all_in,
    worker_fleet,
)
from tests.support.processes import wait_until
from tests.support.services import redis_url

BROKER_DB = 12
VISIBILITY_TIMEOUT_SECONDS = 3
# Long enough that the kill surely lands while the model is still "thinking".
LLM_DELAY_SECONDS = 2.0
WORKER_START_TIMEOUT = 60.0
REDELIVERY_TIMEOUT = 40.0


def test_killed_worker_call_is_redelivered_and_processed_once(postgres_url: str, tmp_path: Path) -> None:
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    env = fault_env(postgres_url, broker, POSTCALL_BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_SECONDS))

    with extracting_llm(delay=LLM_DELAY_SECONDS) as llm, worker_fleet(env, llm, tmp_path, concurrency=1) as fleet:
        fleet.start()
        fleet.start()
        [call_id] = ingest(factory, broker, 1, "kill")
        assert wait_until(lambda: llm.total_requests() >= 1, WORKER_START_TIMEOUT), fleet.logs()
        holder = next(w for w in fleet.workers if llm.requests_from(w.tag))
        survivor = next(w for w in fleet.workers if w is not holder)
        fleet.kill(holder)

        # The dead worker's claim is visible: the call is still `processing`, its message unacknowledged.
        assert call_states(factory, [call_id])[call_id] is CallState.processing
        assert wait_until_all_in(factory, [call_id], DONE_STATES, REDELIVERY_TIMEOUT), fleet.logs()

    report = check_exactly_once(factory, [call_id])
    assert report.attempts == 2  # the killed attempt, then the redelivered one
    assert report.failed_runs == 0
    assert llm.requests_from(holder.tag) == 1
    assert llm.requests_from(survivor.tag) == 1
    engine.dispose()
