"""The worker process's group commits (app/worker/groups.py): made where slots share a process and the database
is PostgreSQL, never larger than the slots, and absent where each call would only wait."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config import get_settings
from app.context import reset_context
from app.worker import groups


@pytest.fixture
def fresh_group(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    def reset() -> None:
        get_settings.cache_clear()
        reset_context()
        monkeypatch.setattr(groups, "_groups_pid", None)

    reset()
    yield monkeypatch
    reset()


def _group_for(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> groups.PersistGroup | None:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(f"POSTCALL_{name.upper()}", value)
    get_settings.cache_clear()
    reset_context()
    monkeypatch.setattr(groups, "_groups_pid", None)
    claims = groups.worker_claim_group()
    results = groups.worker_persist_group()
    # The two groups of a process are sized alike.
    assert (claims is None) == (results is None)
    assert claims is None or results is None or (claims.max_size, claims.wait_seconds) == (
        results.max_size, results.wait_seconds)
    return results


def test_a_threads_worker_on_postgresql_groups_at_most_its_slots(
    fresh_group: pytest.MonkeyPatch, postgres_url: str
) -> None:
    group = _group_for(fresh_group, postgres_url, worker_pool="threads", worker_concurrency="6",
                       group_commit_max_calls="16", group_commit_wait_ms="30")
    assert group is not None and group.max_size == 6 and group.wait_seconds == pytest.approx(0.03)
    assert groups.worker_persist_group() is group  # one per process
    group = _group_for(fresh_group, postgres_url, worker_pool="gevent", worker_concurrency="200")
    assert group is not None and group.max_size == get_settings().group_commit_max_calls


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_process_running_one_call_at_a_time_stores_each_alone(
    fresh_group: pytest.MonkeyPatch, postgres_url: str, pool: str
) -> None:
    assert _group_for(fresh_group, postgres_url, worker_pool=pool, worker_concurrency="4") is None


def test_no_group_on_sqlite_or_when_switched_off(
    fresh_group: pytest.MonkeyPatch, postgres_url: str, sqlite_url: str
) -> None:
    assert _group_for(fresh_group, sqlite_url, worker_pool="threads", worker_concurrency="8") is None
    assert _group_for(fresh_group, postgres_url, worker_pool="threads", worker_concurrency="8",
                      group_commit_max_calls="1") is None


def test_the_calls_running_in_a_process_are_counted_while_they_run() -> None:
    before = groups.calls_running()
    with groups.running_a_call():
        with groups.running_a_call():
            assert groups.calls_running() == before + 2
        assert groups.calls_running() == before + 1
    with pytest.raises(RuntimeError, match="a call failed"), groups.running_a_call():
        raise RuntimeError("a call failed")
    assert groups.calls_running() == before  # counted out whatever ends the call
