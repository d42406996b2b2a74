"""Every pool the settings accept runs a real `postcall worker` that processes what it takes from Redis.

A worker that prefetches messages it cannot run (gevent without monkey-patching: the messages sit in
Redis's `unacked` hash until the visibility timeout) fails here: its calls never reach a final state.
The pools that run many calls in one process (threads, gevent) also run them through the openai provider
against a local model server: the chat route's own keep-alive connections (app/llm/keepalive_pool.py)
are shared by every slot of the process."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from app.config import Settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.scripted_server import ScriptedOpenAIServer
from app.models import Call, CallState
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from bench.answers.model import quoting_answer
from tests.support.processes import postcall_env, run_postcall, wait_until, worker_process
from tests.support.services import redis_url

BROKER_DB = 12
DONE_STATES = {CallState.ready_for_review, CallState.needs_attention}
ACCEPTED_POOLS = typing.get_args(Settings.model_fields["worker_pool"].annotation)


def test_the_accepted_pools_are_the_ones_tested_here() -> None:
    assert set(ACCEPTED_POOLS) == {"threads", "prefork", "solo", "gevent"}


@pytest.mark.parametrize("pool", ACCEPTED_POOLS)
def test_worker_processes_what_it_prefetched(pool: str, postgres_url: str, samples_dir: Path, tmp_path: Path) -> None:
    _process_the_samples(pool, postcall_env(postgres_url, redis_url(BROKER_DB)), postgres_url, samples_dir, tmp_path)


@pytest.mark.parametrize("pool", ["threads", "gevent"])
def test_worker_processes_what_it_prefetched_through_the_openai_provider(
    pool: str, postgres_url: str, samples_dir: Path, tmp_path: Path
) -> None:
    with ScriptedOpenAIServer(quoting_answer) as model:
        env = postcall_env(postgres_url, redis_url(BROKER_DB), POSTCALL_LLM_PROVIDER="openai",
                           OPENAI_BASE_URL=model.base_url, OPENAI_API_KEY="sk-test", POSTCALL_OPENAI_MODEL="test-model")
        _process_the_samples(pool, env, postgres_url, samples_dir, tmp_path)
        assert model.requests >= 8  # every call asked the model


def _process_the_samples(pool: str, env: dict[str, str], postgres_url: str, samples_dir: Path, tmp_path: Path) -> None:
    client = redis.Redis.from_url(env["POSTCALL_BROKER_URL"])
    client.flushdb()
    ingested = run_postcall(["ingest", str(samples_dir), "--json"], env)
    assert ingested.returncode == 0, ingested.stderr
    call_count = len(json.loads(ingested.stdout)["files"])
    assert client.llen(QUEUE_NAME) == call_count >= 8

    factory = make_session_factory(create_db_engine(postgres_url))

    def all_done() -> bool:
        with unit_of_work(factory) as session:
            states = session.scalars(select(Call.state)).all()
        return len(states) == call_count and all(state in DONE_STATES for state in states)

    def nothing_held() -> bool:
        return client.llen(QUEUE_NAME) == 0 and client.hlen(KOMBU_UNACKED_KEY) == 0

    log = tmp_path / "worker.log"
    # Fewer slots than calls: the worker prefetches a window, finishes it and must come back for more.
    with worker_process(env, log, concurrency=3, pool=pool):
        finished = wait_until(all_done, timeout=90)
        released = wait_until(nothing_held, timeout=15)
    assert finished, f"{pool}: calls left unprocessed\n" + log.read_text()[-3000:]
    assert released, f"{pool}: messages still held in Redis\n" + log.read_text()[-3000:]
    assert f"pool={pool}" in log.read_text()  # the sizing the worker announced is the pool it ran
