"""Migration 0019: a claim's tenant is its call's tenant, held by one foreign key on (call_id, tenant_id) to
calls. A claim under another tenant is refused, a call moved to another tenant takes its claims along, a
deleted call takes them away; the upgrade refuses a database that already holds a mismatch; the downgrade
brings back the two keys of 0015 (and with them the old laxity)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory
from tests.support.analytics import build_world
from tests.support.old_schema import todays_code

BEFORE = "0018"


def _world_at_0018(url: str) -> Engine:
    upgrade(url, BEFORE)
    engine = create_db_engine(url)
    with todays_code(engine):
        build_world(make_session_factory(engine))
    return engine


def _copy_claim_under(conn: Connection, tenant_id: int) -> int:
    """INSERT a copy of the first claim with `tenant_id` in place of its own; the new claim's id."""
    columns = [c["name"] for c in inspect(conn).get_columns("claims") if c["name"] not in {"id", "tenant_id"}]
    listed = ", ".join(columns)
    conn.execute(text(f"INSERT INTO claims ({listed}, tenant_id) "  # column names from the schema
                      f"SELECT {listed}, :tenant_id FROM claims WHERE id = (SELECT min(id) FROM claims)"),
                 {"tenant_id": tenant_id})
    return int(conn.scalar(text("SELECT max(id) FROM claims")))


def _first_claims_tenant(conn: Connection) -> int:
    """The tenant of the call of the claim `_copy_claim_under` copies."""
    return int(conn.scalar(text("SELECT c.tenant_id FROM calls c JOIN claims cl ON cl.call_id = c.id "
                                "WHERE cl.id = (SELECT min(id) FROM claims)")))


def _tenants(conn: Connection) -> dict[str, int]:
    return {str(row.slug): int(row.id) for row in conn.execute(text("SELECT slug, id FROM tenants"))}


def _claim_keys(conn: Connection) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(key["constrained_columns"]), key["referred_table"], tuple(key["referred_columns"]),
         (key.get("options") or {}).get("ondelete"), (key.get("options") or {}).get("onupdate"))
        for key in inspect(conn).get_foreign_keys("claims")
        if key["referred_table"] != "extraction_runs"
    )


def test_the_claims_tenant_is_held_to_its_calls_and_the_downgrade_restores_the_old_keys(empty_url: str) -> None:
    url = empty_url
    engine = _world_at_0018(url)
    try:
        with engine.connect() as conn:
            claims_before = conn.scalar(text("SELECT count(*) FROM claims"))
            assert claims_before
        upgrade(url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM claims")) == claims_before
            assert _claim_keys(conn) == [
                (("call_id", "tenant_id"), "calls", ("id", "tenant_id"), "CASCADE", "CASCADE"),
            ]
        tenants = _tenants(engine.connect())
        with engine.begin() as conn:
            call_id, tenant_id = conn.execute(text(
                "SELECT c.id, c.tenant_id FROM calls c WHERE EXISTS (SELECT 1 FROM claims cl WHERE cl.call_id = c.id) "
                "ORDER BY c.id LIMIT 1")).one()
        other = next(t for t in tenants.values() if t != tenant_id)

        with pytest.raises(IntegrityError), engine.begin() as conn:
            _copy_claim_under(conn, next(t for t in tenants.values() if t != _first_claims_tenant(conn)))

        # A call moved to another tenant takes its claims along; deleted, it takes them away.
        with engine.begin() as conn:
            conn.execute(text("UPDATE calls SET tenant_id = :other WHERE id = :id"), {"other": other, "id": call_id})
        with engine.connect() as conn:
            assert set(conn.scalars(text("SELECT tenant_id FROM claims WHERE call_id = :id"), {"id": call_id})) == {
                other}
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM calls WHERE id = :id"), {"id": call_id})
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM claims WHERE call_id = :id"), {"id": call_id}) == 0
            assert conn.scalar(text("SELECT count(*) FROM claims")) > 0  # the other calls' claims stay

        downgrade(url, BEFORE)
        with engine.connect() as conn:
            assert _claim_keys(conn) == [
                (("call_id",), "calls", ("id",), "CASCADE", None),
                (("tenant_id",), "tenants", ("id",), "CASCADE", None),
            ]
            assert "ix_calls_id_tenant_id" not in {index["name"] for index in inspect(conn).get_indexes("calls")}
        with engine.begin() as conn:  # what 0019 refuses, 0018 let through
            _copy_claim_under(conn, next(t for t in tenants.values() if t != _first_claims_tenant(conn)))
    finally:
        engine.dispose()


def test_the_upgrade_refuses_a_database_holding_a_claim_under_another_tenant(empty_url: str) -> None:
    url = empty_url
    engine = _world_at_0018(url)
    try:
        with engine.begin() as conn:
            tenant_of_call = _first_claims_tenant(conn)
            other = next(t for t in _tenants(conn).values() if t != tenant_of_call)
            stray = _copy_claim_under(conn, other)
        with pytest.raises(RuntimeError, match=rf"1 claims name a tenant other than their call's \(the first: "
                                               rf"claim {stray}\)"):
            upgrade(url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == BEFORE
            assert ("call_id", "tenant_id") not in {tuple(key[0]) for key in _claim_keys(conn)}
        with engine.begin() as conn:  # set from the call, as the message says: then it upgrades
            conn.execute(text("UPDATE claims SET tenant_id = :tenant WHERE id = :id"),
                         {"tenant": tenant_of_call, "id": stray})
        upgrade(url, "0019")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0019"
    finally:
        engine.dispose()
