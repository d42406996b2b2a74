"""Migration 0022: autovacuum analyzes calls once 0.2% of it changed (PostgreSQL's default waits for 10%), so
a newly onboarded tenant's calls are looked up by their unique keys, not by scanning the tenant's calls;
its downgrade returns the table to the server's defaults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine
from tests.support.call_rows import insert_call_rows
from tests.support.services import temporary_pg_database

BEFORE = "0021"
RELOPTIONS = text("SELECT reloptions FROM pg_class WHERE oid = 'calls'::regclass")
# Enough calls of one tenant that PostgreSQL's default (50 rows + 10%) waits for 2,050 changed rows.
ESTABLISHED_CALLS = 20_000
# A newcomer's calls: past 0022's threshold (50 + 0.2% = 90 rows), far below the default's.
NEW_CALLS = 400


def _lookup_plans(connection: Connection, tenant_id: int, prefix: str) -> tuple[str, str]:
    """The plans of the ingest's (tenant, external id) lookup and of the claims' foreign-key check on calls
    (the statement PostgreSQL runs for it, with the values written in)."""
    ingest = "\n".join(connection.execute(text(
        f"EXPLAIN SELECT * FROM calls WHERE tenant_id = {tenant_id} AND external_id = '{prefix}7' FOR UPDATE"
    )).scalars())
    foreign_key = "\n".join(connection.execute(text(
        f"EXPLAIN SELECT 1 FROM ONLY calls x WHERE id::text = '{prefix}7'::text AND tenant_id = {tenant_id} "
        "FOR KEY SHARE OF x"
    )).scalars())
    return ingest, foreign_key


@pytest.fixture
def engine_with_an_established_tenant() -> Iterator[Engine]:
    """A database at head whose calls hold one analyzed tenant's calls, and a second tenant without any."""
    with temporary_pg_database() as url:
        upgrade(url)
        engine = create_db_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO tenants (id, slug, created_at) VALUES "
                                        "(1, 'established', now()), (2, 'newcomer', now())"))
            # Counted before the ANALYZE below, which resets the count (`insert_call_rows` flushes them).
            insert_call_rows(engine, 1, "e", ESTABLISHED_CALLS)
            with engine.connect() as connection:
                connection.execute(text("ANALYZE calls"))
                connection.commit()
            yield engine
        finally:
            engine.dispose()


def _due_for_autoanalyze(connection: Connection) -> bool:
    """Whether autovacuum analyzes calls on its next look, by its rule: rows changed since the last ANALYZE
    above threshold + scale factor x rows, each the table's own setting or else the server's. (The rule is
    applied here rather than waited for: a server may run with autovacuum off, as this machine's does.)"""
    return bool(connection.execute(text(
        "SELECT s.n_mod_since_analyze > "
        "  coalesce((SELECT split_part(o, '=', 2)::float FROM unnest(c.reloptions) o "
        "            WHERE o LIKE 'autovacuum_analyze_threshold=%'), "
        "           current_setting('autovacuum_analyze_threshold')::float) "
        "  + coalesce((SELECT split_part(o, '=', 2)::float FROM unnest(c.reloptions) o "
        "              WHERE o LIKE 'autovacuum_analyze_scale_factor=%'), "
        "             current_setting('autovacuum_analyze_scale_factor')::float) * c.reltuples "
        "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'calls'"
    )).scalar())


@pytest.mark.parametrize("revision", [BEFORE, "head"])
def test_a_new_tenant_is_due_for_analysis_at_once_and_then_looked_up_by_unique_indexes(
    engine_with_an_established_tenant: Engine, revision: str,
) -> None:
    engine = engine_with_an_established_tenant
    if revision != "head":
        downgrade(engine.url.render_as_string(hide_password=False), revision)
    insert_call_rows(engine, 2, "n", NEW_CALLS)  # counted for the statistics views at its commit
    with engine.connect() as connection:
        ingest, foreign_key = _lookup_plans(connection, 2, "n")
        # Why 0022 exists: statistics that do not know the newcomer estimate it at ~1 row, and a tenant
        # index wins; each lookup then scans every call of the tenant.
        assert "uq_calls_tenant_id_external_id" not in ingest or "ix_calls_id_tenant_id" not in foreign_key, (
            ingest, foreign_key)
        due = _due_for_autoanalyze(connection)
        # PostgreSQL's default waits for 2,050 changed rows at this size; 0022 for 90.
        assert due is (revision == "head")

        connection.execute(text("ANALYZE calls"))  # what autovacuum then does
        connection.commit()
        ingest, foreign_key = _lookup_plans(connection, 2, "n")
    assert "uq_calls_tenant_id_external_id" in ingest, ingest
    assert "ix_calls_tenant" not in foreign_key and ("ix_calls_id_tenant_id" in foreign_key
                                                     or "pk_calls" in foreign_key), foreign_key


def test_the_settings_are_set_and_the_downgrade_resets_them() -> None:
    with temporary_pg_database() as url:
        upgrade(url, BEFORE)
        engine = create_db_engine(url)
        try:
            with engine.connect() as connection:
                assert connection.execute(RELOPTIONS).scalar() is None
            upgrade(url)
            with engine.connect() as connection:
                assert sorted(connection.execute(RELOPTIONS).scalar()) == [
                    "autovacuum_analyze_scale_factor=0.002", "autovacuum_analyze_threshold=50"]
            downgrade(url, BEFORE)
            with engine.connect() as connection:
                assert connection.execute(RELOPTIONS).scalar() is None
        finally:
            engine.dispose()
