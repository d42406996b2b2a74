"""Migration 0025: runs and evidence get their tenant (backfilled from their call and claim), bindings their
role's oid, and on PostgreSQL every analyst tenant filter becomes a comparison with
postcall_analyst_tenant(), planned as a constant; the counters and rollups are left as they were. The
downgrade puts 0024's filters and schema back."""

from __future__ import annotations

import psycopg
from sqlalchemy import Connection, inspect, make_url, text

from app.analysts import grant_analyst
from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from tests.support.analytics import build_world
from tests.support.old_schema import todays_code
from tests.support.services import PG_HOST, PG_PORT

BEFORE = "0024"
AFTER = "0025"
TABLES = ("extraction_runs", "evidence")


def _columns(conn: Connection, table: str) -> dict[str, bool]:
    """Column name -> nullable."""
    return {c["name"]: bool(c["nullable"]) for c in inspect(conn).get_columns(table)}


def _counted(conn: Connection) -> tuple[int, ...]:
    """The counters' and rollups' rows: a backfill that fired their triggers would add some."""
    tables = ["rollup_runs", "rollup_claims", "rollup_reasons", "rollup_open_items", "call_counts"]
    if conn.dialect.name == "postgresql":
        tables.append("run_totals")
    return tuple(int(conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0) for table in tables)


def _analyst_tenants(url: str, role: str) -> set[str]:
    database = make_url(url).database
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={role} dbname={database}") as conn:
        return {row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_claims")} | {
            row[0] for row in conn.execute("SELECT DISTINCT tenant FROM analytics_run_days")}


def test_the_upgrade_fills_the_tenants_and_the_downgrade_restores_0024(empty_url: str, role_name: str) -> None:
    url = empty_url
    postgresql = url.startswith("postgresql")
    upgrade(url, BEFORE)
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            factory = make_session_factory(engine)
            build_world(factory)
            if postgresql:
                with unit_of_work(factory) as session:
                    grant_analyst(session, role_name, "acme")
        with engine.begin() as conn:
            # A binding whose role is gone: it binds nobody, before and after.
            conn.execute(text("INSERT INTO analyst_roles (role_name, tenant_id, created_at) "
                              "SELECT 'pc_test_gone_role', id, created_at FROM tenants WHERE slug = 'globex'"))
            counted = _counted(conn)
        if postgresql:
            assert _analyst_tenants(url, role_name) == {"acme"}

        upgrade(url, AFTER)
        with engine.connect() as conn:
            for table in TABLES:
                assert _columns(conn, table)["tenant_id"] is False, table
            assert conn.scalar(text("SELECT count(*) FROM extraction_runs r JOIN calls c ON c.id = r.call_id "
                                    "WHERE r.tenant_id = c.tenant_id")) == conn.scalar(
                text("SELECT count(*) FROM extraction_runs")) > 0
            assert conn.scalar(text("SELECT count(*) FROM evidence e JOIN claims cl ON cl.id = e.claim_id "
                                    "WHERE e.tenant_id = cl.tenant_id")) == conn.scalar(
                text("SELECT count(*) FROM evidence")) > 0
            assert _counted(conn) == counted  # the backfill moved no counter or rollup
            bindings = dict(conn.execute(text("SELECT role_name, role_oid FROM analyst_roles")).all())
            assert bindings.pop("pc_test_gone_role") is None
            if postgresql:
                role_oid = conn.scalar(text("SELECT oid FROM pg_roles WHERE rolname = :n"), {"n": role_name})
                assert bindings == {role_name: role_oid}
                policies = dict(conn.execute(text(
                    "SELECT tablename, qual FROM pg_policies WHERE policyname = 'analyst_tenant'")).all())
                assert len(policies) == 6 and all("postcall_analyst_tenant()" in q and "analyst_roles" not in q
                                                  for q in policies.values()), policies
        if postgresql:
            assert _analyst_tenants(url, role_name) == {"acme"}

        downgrade(url, BEFORE)
        with engine.connect() as conn:
            for table in TABLES:
                assert "tenant_id" not in _columns(conn, table), table
            assert "role_oid" not in _columns(conn, "analyst_roles")
            assert _counted(conn) == counted
            if postgresql:
                policies = dict(conn.execute(text(
                    "SELECT tablename, qual FROM pg_policies WHERE policyname = 'analyst_tenant'")).all())
                assert len(policies) == 6 and all("postcall_analyst_tenant" not in q for q in policies.values())
                assert conn.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'postcall_analyst_tenant'")) == 0
        if postgresql:
            assert _analyst_tenants(url, role_name) == {"acme"}
        upgrade(url)
    finally:
        engine.dispose()
