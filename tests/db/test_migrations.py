"""Migrations run on fresh SQLite and PostgreSQL databases, match the models, and go down cleanly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app.db.base import Base
from app.db.migrate import downgrade, head_revision, upgrade
from app.db.session import create_db_engine
from tests.support.services import temporary_pg_database

EXPECTED_TABLES = {
    "tenants", "users", "calls", "utterances", "extraction_runs", "claims", "evidence", "review_events",
    "outbox", "webhook_endpoints", "webhook_deliveries", "webhook_attempts",
    "llm_batches", "analyst_roles", "rollup_calls", "rollup_claims", "rollup_reasons", "rollup_open_items",
    "rollup_agent_due", "rollup_runs", "user_events", "outbox_purge_marks",
}
EXPECTED_VIEWS = {
    "analytics_calls", "analytics_runs", "analytics_claims", "analytics_evidence", "analytics_events",
    "analytics_webhook_deliveries", "analytics_review_events", "analytics_call_days", "analytics_claim_days",
    "analytics_reason_days", "analytics_open_item_days", "analytics_agent_due", "analytics_run_days",
}


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_upgrade_creates_schema_matching_models(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(backend)
    engine = create_db_engine(url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= EXPECTED_TABLES
        assert set(inspector.get_view_names()) >= EXPECTED_VIEWS
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        with engine.connect() as conn:
            # Views are queryable on an empty database.
            for view in EXPECTED_VIEWS:
                assert conn.execute(text(f"SELECT COUNT(*) FROM {view}")).scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_downgrade_to_base_and_back(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(backend)
    downgrade(url, "base")
    engine = create_db_engine(url)
    try:
        assert not (EXPECTED_TABLES & set(inspect(engine).get_table_names()))
    finally:
        engine.dispose()
    upgrade(url)
    engine = create_db_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_datetimes_come_back_timezone_aware_utc(backend: str, request: pytest.FixtureRequest) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import select

    from app.db.session import make_session_factory, unit_of_work
    from app.models import Tenant

    url = request.getfixturevalue(backend)
    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    plus_two = timezone(timedelta(hours=2))
    try:
        with unit_of_work(factory) as session:
            session.add(Tenant(slug="tz", created_at=datetime(2026, 3, 3, 11, 30, tzinfo=plus_two)))
        with unit_of_work(factory) as session:
            created = session.scalars(select(Tenant.created_at)).one()
        assert created.tzinfo is not None
        assert created == datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_downgrade_past_the_calls_rebuild_keeps_every_row(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite drops a column by rebuilding the table: with foreign keys enforced, dropping the old `calls`
    would cascade and delete every run, claim and utterance. Going down and up again loses no row."""
    from typer.testing import CliRunner

    from app.cli import app
    from app.config import PROJECT_ROOT, get_settings

    url = request.getfixturevalue(backend)
    monkeypatch.setenv("POSTCALL_DATABASE_URL", url)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["process", str(PROJECT_ROOT / "samples"), "--json"])
    assert result.exit_code == 0, result.stderr
    tables = ("calls", "utterances", "extraction_runs", "claims", "evidence")

    def counts() -> dict[str, int]:
        engine = create_db_engine(url)
        try:
            with engine.connect() as conn:
                return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables}
        finally:
            engine.dispose()

    before = counts()
    assert min(before.values()) > 0
    downgrade(url, "0007")  # below 0008, which added columns to calls, claims and tenants
    assert counts() == before
    upgrade(url)
    assert counts() == before
    # 0015 filled claims.tenant_id again from each claim's call.
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT COUNT(*) FROM claims cl JOIN calls c ON c.id = cl.call_id WHERE cl.tenant_id = c.tenant_id"
            )).scalar_one() == before["claims"]
    finally:
        engine.dispose()


def test_two_upgrades_at_once_both_succeed_on_postgresql() -> None:
    """Replicas starting together each run `postcall db upgrade`: the second waits for the first (an
    advisory lock for the migration's transaction) and finds nothing to do; it failed on the tables the
    first had made."""
    with temporary_pg_database() as url:
        env = {**os.environ, "POSTCALL_DATABASE_URL": url}
        upgrades = [subprocess.Popen([sys.executable, "-m", "app.cli", "db", "upgrade"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outcomes = [(done.wait(timeout=120), done.communicate()[1]) for done in upgrades]
        assert [code for code, _ in outcomes] == [0, 0], outcomes
        engine = create_db_engine(url)
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        finally:
            engine.dispose()
        assert version == [head_revision()]
