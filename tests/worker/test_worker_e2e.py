"""End to end on the real stack: `postcall ingest` enqueues on Redis, a real `postcall worker`
processes every call into PostgreSQL, `postcall status --json` counts them."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from sqlalchemy import func, select

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, CallState, ExtractionRun
from tests.support.processes import postcall_env, run_postcall, wait_until, worker_process
from tests.support.services import redis_url

BROKER_DB = 11
DONE_STATES = {CallState.ready_for_review, CallState.needs_attention}


def test_ingest_worker_status_on_postgres_and_redis(postgres_url: str, samples_dir: Path, tmp_path: Path) -> None:
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    env = postcall_env(postgres_url, broker)

    ingested = run_postcall(["ingest", str(samples_dir), "--json"], env)
    assert ingested.returncode == 0, ingested.stderr
    files = json.loads(ingested.stdout)["files"]
    assert len(files) >= 8
    assert all(f["call_id"] and f["error"] is None for f in files)
    # Messages carry ids only: the queue holds one message per call.
    assert redis.Redis.from_url(broker).llen("postcall") == len(files)

    factory = make_session_factory(create_db_engine(postgres_url))

    def all_done() -> bool:
        with unit_of_work(factory) as session:
            states = session.scalars(select(Call.state)).all()
        return len(states) == len(files) and all(s in DONE_STATES for s in states)

    with worker_process(env, tmp_path / "worker.log"):
        finished = wait_until(all_done, timeout=90)
    log = (tmp_path / "worker.log").read_text()
    assert finished, log[-3000:]
    # At INFO the worker logs its startup, not two lines per task (app/logging.py, QUIET_LOGGERS).
    assert "ready." in log
    assert "Received task" not in log and "succeeded in" not in log

    with unit_of_work(factory) as session:
        runs = session.scalar(select(func.count()).select_from(ExtractionRun))
        stamped = session.scalars(select(ExtractionRun.queue_wait_ms)).all()
    assert runs == len(files)  # exactly one run per call
    assert all(wait is not None and wait >= 0 for wait in stamped)

    status = run_postcall(["status", "--json"], env)
    counts = json.loads(status.stdout)["counts"]
    assert counts["ready_for_review"] + counts["needs_attention"] == len(files)
    assert counts["queued"] == counts["processing"] == counts["failed"] == 0

    # Re-ingesting the same files is a no-op: nothing new is enqueued or stored.
    again = run_postcall(["ingest", str(samples_dir), "--json"], env)
    assert {f["status"] for f in json.loads(again.stdout)["files"]} == {"unchanged"}
    assert redis.Redis.from_url(broker).llen("postcall") == 0
