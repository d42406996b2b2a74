"""The beat's retention purge (app/worker/tasks.py `purge_task`) deletes at most
POSTCALL_PURGE_MAX_CALLS_PER_RUN calls per run, and the next run goes on; while another purge runs it
deletes nothing and says so."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.config import get_settings
from app.context import reset_context
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call
from app.pipeline.retention import purge_turn
from app.pipeline.store import store_transcript
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance


@pytest.fixture
def worker_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("POSTCALL_RETENTION_DAYS", "30")
    monkeypatch.setenv("POSTCALL_PURGE_MAX_CALLS_PER_RUN", "2")
    get_settings.cache_clear()
    reset_context()
    yield sqlite_url
    reset_context()


def _stored_calls(url: str, ages_in_days: list[int]) -> int:
    engine = create_db_engine(url)
    try:
        factory = make_session_factory(engine)
        for number, age in enumerate(ages_in_days):
            transcript = Transcript(
                metadata=CallMetadata(started_at=datetime.now(UTC) - timedelta(days=age)),
                utterances=[Utterance(index=0, speaker="C", role=Role.customer, text="hello")],
            )
            with unit_of_work(factory) as session:
                store_transcript(session, transcript, tenant="default", external_id=f"call-{number}")
        with factory() as session:
            return session.scalar(select(func.count()).select_from(Call)) or 0
    finally:
        engine.dispose()


def test_each_run_purges_at_most_its_limit_and_the_next_goes_on(worker_database: str) -> None:
    from app.worker.tasks import purge_task

    assert _stored_calls(worker_database, [100, 90, 80, 5]) == 4

    assert purge_task() == 2
    assert _stored_calls(worker_database, []) == 2
    assert purge_task() == 1  # the last expired one; the 5-day-old call stays
    assert purge_task() == 0
    assert _stored_calls(worker_database, []) == 1


@pytest.fixture
def worker_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", postgres_url)
    monkeypatch.setenv("POSTCALL_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    reset_context()
    yield postgres_url
    reset_context()


@pytest.mark.postgres
def test_a_run_while_another_purge_runs_logs_it_and_deletes_nothing(
    worker_postgres: str, caplog: pytest.LogCaptureFixture
) -> None:
    from app.worker.tasks import purge_task

    assert _stored_calls(worker_postgres, [100, 90, 5]) == 3
    holder = create_db_engine(worker_postgres)  # a `postcall purge`, on a connection of its own
    try:
        with purge_turn(make_session_factory(holder)), caplog.at_level(logging.WARNING, logger="app.worker.tasks"):
            assert purge_task() == 0
            assert _stored_calls(worker_postgres, []) == 3
        assert "retention purge skipped: another purge is running" in caplog.text
        assert purge_task() == 2  # its turn given back, the next run purges
        assert _stored_calls(worker_postgres, []) == 1
    finally:
        holder.dispose()
