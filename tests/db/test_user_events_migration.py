"""Migration 0029: user_events (append-only) and users.token_expires_at. A token issued before it keeps no
expiry (no integration stops at the upgrade); the downgrade removes both and keeps the users. Up and down
on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.users import authenticate, generate_token, hash_token, set_view_pii

BEFORE = "0028"


def test_existing_tokens_keep_working_without_expiry_and_the_downgrade_removes_the_trail(empty_url: str) -> None:
    upgrade(empty_url, BEFORE)
    token = generate_token()
    engine = create_db_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (id, slug, created_at) VALUES (1, 'acme', CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO users (id, tenant_id, name, role, token_hash, active, created_at, session_version, "
                "view_pii) VALUES (1, 1, 'integration', 'supervisor', :hash, :yes, CURRENT_TIMESTAMP, 0, :no)"),
                {"hash": hash_token(token), "yes": True, "no": False})
        upgrade(empty_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT token_expires_at FROM users")).scalar_one() is None
        factory = make_session_factory(engine)
        with factory() as session:
            principal = authenticate(session, token)
        assert principal is not None and principal.token_expires_at is None
        with unit_of_work(factory) as session:
            set_view_pii(session, "acme", "integration", allowed=True)
        with pytest.raises(DBAPIError, match="user_events is append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM user_events"))

        downgrade(empty_url, BEFORE)
        inspector = inspect(engine)
        assert "user_events" not in inspector.get_table_names()
        assert "token_expires_at" not in {column["name"] for column in inspector.get_columns("users")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name, token_hash FROM users")).all() == [
                ("integration", hash_token(token))]
        upgrade(empty_url)  # and up again: the triggers' names are free
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM user_events")).scalar_one() == 0
    finally:
        engine.dispose()
