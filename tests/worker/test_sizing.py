"""The sizing rule: Little's law for concurrency, one database connection per slot up to a limit, Redis
connections per slot; settings override; the resolved numbers reach the processes that read Settings."""

from __future__ import annotations

import os

import pytest

from app.config import Settings, get_settings
from app.errors import ConfigError
from app.worker.sizing import (
    CPU_SECONDS_PER_CALL,
    LATENCY_HEADROOM,
    derived_concurrency,
    prepare_worker,
    resolve_worker_sizing,
    worker_sizing,
)
from tests.support.processes import postcall_env, run_postcall

SIZING_VARIABLES = ("POSTCALL_WORKER_CONCURRENCY", "POSTCALL_WORKER_POOL", "POSTCALL_DB_POOL_SIZE")


@pytest.fixture(autouse=True)
def _restore_sizing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # resolve_worker_sizing writes the resolved numbers into the environment; monkeypatch puts it back. A bare
    # delenv of a variable that is not set records nothing to undo, so what the test wrote stayed for the tests
    # after it (a worker pool of "solo" sized another file's delivery slots): setenv first records its absence.
    for name in SIZING_VARIABLES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_concurrency_follows_littles_law() -> None:
    # 125 calls/s per process, 2 s per answer: 250 calls in flight, plus CPU time and headroom.
    assert derived_concurrency(125, 2.0) == 315
    assert derived_concurrency(125, 2.0) >= 125 * (2.0 + CPU_SECONDS_PER_CALL) * LATENCY_HEADROOM
    # Twice the latency, twice the slots; an instant model needs next to none.
    assert derived_concurrency(125, 4.0) > 1.9 * derived_concurrency(125, 2.0)
    assert derived_concurrency(125, 0.0) == 2


def test_openai_sizing_by_default_and_pool_without_overflow() -> None:
    sizing = worker_sizing(Settings(llm_provider="openai"))
    assert sizing.model_latency_seconds == 2.0
    assert sizing.concurrency == derived_concurrency(125, 2.0)
    assert sizing.db_pool_size == 20  # one connection per slot, capped by POSTCALL_DB_POOL_LIMIT
    assert sizing.redis_max_connections >= 2 * sizing.concurrency
    assert sizing.pool == "threads"


def test_heuristic_is_cpu_bound_and_gets_few_slots() -> None:
    sizing = worker_sizing(Settings(llm_provider="heuristic"))
    assert sizing.model_latency_seconds == 0.0
    assert sizing.concurrency == 2
    assert sizing.db_pool_size == 2


def test_prefork_slots_are_processes_one_per_core() -> None:
    sizing = worker_sizing(Settings(llm_provider="openai", worker_pool="prefork"))
    assert sizing.concurrency == (os.cpu_count() or 1)


def test_settings_override_the_rule() -> None:
    sizing = worker_sizing(
        Settings(llm_provider="openai", worker_concurrency=40, db_pool_size=7, worker_model_latency_seconds=8)
    )
    assert (sizing.concurrency, sizing.db_pool_size, sizing.model_latency_seconds) == (40, 7, 8)
    slower = worker_sizing(Settings(llm_provider="openai", worker_model_latency_seconds=8))
    assert slower.concurrency == derived_concurrency(125, 8.0)


def test_an_empty_variable_leaves_the_number_to_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose passes `POSTCALL_WORKER_CONCURRENCY=` when .env leaves it empty.
    monkeypatch.setenv("POSTCALL_WORKER_CONCURRENCY", "")
    monkeypatch.setenv("POSTCALL_WORKER_MODEL_LATENCY_SECONDS", "")
    sizing = worker_sizing(Settings(llm_provider="openai"))
    assert sizing.concurrency == derived_concurrency(125, 2.0)


def test_resolved_sizing_reaches_settings_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTCALL_LLM_PROVIDER", "openai")
    sizing = resolve_worker_sizing(concurrency=12, pool="solo")
    assert (sizing.concurrency, sizing.pool, sizing.db_pool_size) == (12, "solo", 12)
    settings = get_settings()
    assert (settings.worker_concurrency, settings.worker_pool, settings.db_pool_size) == (12, "solo", 12)
    assert os.environ["POSTCALL_DB_POOL_SIZE"] == "12"


def test_unknown_pool_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="worker_pool"):
        resolve_worker_sizing(pool="eventlet")


def test_stuck_after_must_exceed_the_visibility_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    Settings(stuck_after_seconds=1_200, broker_visibility_timeout=900).check_redelivery_order()
    expected = r"POSTCALL_STUCK_AFTER_SECONDS \(900\) must exceed POSTCALL_BROKER_VISIBILITY_TIMEOUT"
    with pytest.raises(ConfigError, match=expected):
        Settings(stuck_after_seconds=900, broker_visibility_timeout=900).check_redelivery_order()
    monkeypatch.setenv("POSTCALL_STUCK_AFTER_SECONDS", "60")
    with pytest.raises(ConfigError, match="must exceed"):
        prepare_worker(concurrency=2, pool="threads")


@pytest.mark.parametrize("command", [["worker"], ["serve", "--dev", "--port", "1"]])
def test_worker_and_serve_refuse_to_start_when_the_reconciler_would_race_redelivery(
    command: list[str], sqlite_url: str
) -> None:
    env = postcall_env(sqlite_url, "redis://127.0.0.1:1/0", POSTCALL_STUCK_AFTER_SECONDS="60")
    started = run_postcall(command, env, timeout=60)
    assert started.returncode == 2
    assert "must exceed POSTCALL_BROKER_VISIBILITY_TIMEOUT (900)" in started.stdout + started.stderr
