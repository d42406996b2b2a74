"""`postcall purge`, `postcall retention` and `postcall users grant-pii` (app/cli/privacy.py, app/cli/users.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app
from app.cli.privacy import PURGE_RUNNING_EXIT
from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, User, UserRole
from app.pipeline.retention import purge_turn
from app.pipeline.store import store_transcript
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from app.users import create_user
from app.worker.celery_app import celery_app
from app.worker.names import TASK_PURGE

runner = CliRunner()


def _old_call(url: str) -> str:
    transcript = Transcript(
        metadata=CallMetadata(started_at=datetime.now(UTC) - timedelta(days=100)),
        utterances=[Utterance(index=0, speaker="C", role=Role.customer, text="my card is 4111 1111 1111 1111")],
    )
    engine = create_db_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            return store_transcript(session, transcript, tenant="default", external_id="old").call_id
    finally:
        engine.dispose()


def _call_exists(url: str, call_id: str) -> bool:
    engine = create_db_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return session.get(Call, call_id) is not None
    finally:
        engine.dispose()


def test_retention_then_purge_dry_run_then_purge(database: str) -> None:
    call_id = _old_call(database)

    shown = runner.invoke(app, ["retention"])
    assert shown.exit_code == 0 and "kept forever" in shown.output
    assert runner.invoke(app, ["retention", "--days", "30"]).exit_code == 0
    assert "30 days (tenant setting)" in runner.invoke(app, ["retention"]).output

    dry = runner.invoke(app, ["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would be purged" in dry.output
    assert _call_exists(database, call_id)

    done = runner.invoke(app, ["purge"])
    assert done.exit_code == 0, done.output
    assert not _call_exists(database, call_id)


@pytest.mark.postgres
def test_purge_while_another_purge_runs_says_so_deletes_nothing_and_exits_1(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A manual purge beside the beat's met it on the same oldest rows: a deadlock, or StaleDataError.
    monkeypatch.setenv("POSTCALL_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    call_id = _old_call(postgres_url)
    assert runner.invoke(app, ["retention", "--days", "30"]).exit_code == 0
    holder = create_db_engine(postgres_url)  # the other purge, on a connection of its own
    try:
        with purge_turn(make_session_factory(holder)):
            busy = runner.invoke(app, ["purge"])
            assert busy.exit_code == PURGE_RUNNING_EXIT == 1, busy.output
            assert "another purge is running" in busy.output and "deleted nothing" in busy.output
            assert "purged" not in busy.output  # no report of a purge that did not run
            assert _call_exists(postgres_url, call_id)
            dry = runner.invoke(app, ["purge", "--dry-run"])  # counting is not held up
            assert dry.exit_code == 0 and "would be purged" in dry.output
        done = runner.invoke(app, ["purge"])
        assert done.exit_code == 0, done.output
        assert not _call_exists(postgres_url, call_id)
    finally:
        holder.dispose()
    # The exit code is in the command's help.
    assert "exits 1" in " ".join(runner.invoke(app, ["purge", "--help"]).output.split())


def test_retention_refuses_a_negative_period(database: str) -> None:
    assert runner.invoke(app, ["retention", "--days", "-1"]).exit_code == 2


def test_grant_and_revoke_view_pii(database: str) -> None:
    engine = create_db_engine(database)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        create_user(session, tenant="default", name="sue", role=UserRole.supervisor)

    granted = runner.invoke(app, ["users", "grant-pii", "sue"])
    assert granted.exit_code == 0, granted.output
    with factory() as session:
        assert session.scalars(select(User.view_pii).where(User.name == "sue")).one() is True
    assert runner.invoke(app, ["users", "grant-pii", "sue", "--revoke"]).exit_code == 0
    with factory() as session:
        assert session.scalars(select(User.view_pii).where(User.name == "sue")).one() is False
    assert runner.invoke(app, ["users", "grant-pii", "nobody"]).exit_code == 2
    engine.dispose()


def test_the_beat_schedule_runs_the_purge() -> None:
    import app.worker.tasks  # noqa: F401 - registers the tasks with the app, as a worker does

    entries = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert TASK_PURGE in entries
    assert TASK_PURGE in celery_app.tasks
