"""Migration 0028: per-tenant purge marks. History purged before it (events gone below the oldest kept)
left no mark: each tenant starts marked just below the oldest event, so a reader whose cursor is older
is still told it may have missed events (410), not served past the gap. Up and down on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, inspect, text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.handoff.feed import CursorExpiredError, read_feed
from app.models import UserRole
from tests.handoff.conftest import make_principal

BEFORE = "0027"


def _event(conn: Connection, event_id: int, tenant_id: int) -> None:
    conn.execute(text(
        "INSERT INTO outbox (id, event_id, tenant_id, call_id, type, payload, created_at) "
        "VALUES (:id, :event_id, :tenant, 'c', 'call.processed', '{}', CURRENT_TIMESTAMP)"),
        {"id": event_id, "event_id": f"msg_{event_id}", "tenant": tenant_id})


def test_history_purged_before_the_marks_still_answers_410_and_the_downgrade_drops_them(empty_url: str) -> None:
    upgrade(empty_url, BEFORE)
    engine = create_db_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (id, slug, created_at) VALUES (1, 'acme', CURRENT_TIMESTAMP), "
                              "(2, 'globex', CURRENT_TIMESTAMP)"))
            for event_id in (5, 6):  # 1-4 purged by a version without marks
                _event(conn, event_id, 1)
        upgrade(empty_url)
        with engine.connect() as conn:
            marks = dict(conn.execute(text("SELECT tenant_id, purged_through FROM outbox_purge_marks")).all())
        assert marks == {1: 4, 2: 4}
        factory = make_session_factory(engine)
        admin, _ = make_principal(factory, "ada", UserRole.admin)
        with unit_of_work(factory) as session, pytest.raises(CursorExpiredError):
            read_feed(session, admin, "2")
        with unit_of_work(factory) as session:
            assert [item.cursor for item in read_feed(session, admin, "4").items] == ["5", "6"]
        downgrade(empty_url, BEFORE)
        assert "outbox_purge_marks" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_database_whose_outbox_starts_at_one_gets_no_marks(empty_url: str) -> None:
    upgrade(empty_url, BEFORE)
    engine = create_db_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (id, slug, created_at) VALUES (1, 'acme', CURRENT_TIMESTAMP)"))
            _event(conn, 1, 1)
        upgrade(empty_url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM outbox_purge_marks")) == 0
    finally:
        engine.dispose()
