"""Migration 0027: the analyst-visible time, date and agent indexes lead with the tenant, so an analyst's
EXPLAIN ANALYZE of a range on one of those columns counts its own tenant's rows only. Up to 0026 the scan
of `ix_claims_due_date` (and its kin) returned every tenant's rows in the range, and the tenant test
dropped the others as `Rows Removed by Filter`: an analyst counted another tenant's items due on a day,
its calls, runs and decisions of any window. Its downgrade restores the old indexes, on both backends."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, inspect, make_url, text

from app.analysts import grant_analyst
from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from tests.support.services import PG_HOST, PG_PORT, temporary_pg_database

BEFORE = "0026"
OLD_INDEXES = {
    "calls": {"ix_calls_started_at", "ix_calls_agent_id"},
    "claims": {"ix_claims_due_date", "ix_claims_created_at"},
    "extraction_runs": {"ix_extraction_runs_started_at"},
    "review_events": {"ix_review_events_created_at", "ix_review_events_tenant_id"},
}
NEW_INDEXES = {
    "calls": {"ix_calls_tenant_started", "ix_calls_agent_review_order"},  # both there before 0027 too
    "claims": {"ix_claims_tenant_due_date", "ix_claims_tenant_created"},
    "extraction_runs": {"ix_extraction_runs_tenant_started"},
    "review_events": {"ix_review_events_tenant_created"},
}

# Two ranges of the same width on every probed column. The analyst's tenant (acme) has OWN rows in each;
# the other tenant (globex) has OTHERS rows in the first and none in the second. The statistics are gathered
# before globex's rows come and never after (autovacuum is off for the tables), so the planner estimates both
# ranges alike and plans them alike: any difference between the two plans is an execution count, i.e.
# globex's rows.
OWN = 20
OTHERS = 500
RANGES = {
    "aimed": {"day": "2026-01-10", "next": "2026-01-11", "agent": "P"},  # globex's rows are here
    "missed": {"day": "2026-02-10", "next": "2026-02-11", "agent": "Q"},  # and none of them here
}
NEXT_LETTER = {"P": "Q", "Q": "R"}
# acme's rows before and after both ranges too: each probed range lies inside the columns' histograms, where
# the planner estimates ranges of the same width alike (at a histogram's end it extrapolates).
EDGES = {"before": {"day": "2025-12-10", "agent": "N"}, "after": {"day": "2026-03-10", "agent": "S"}}

# view -> (condition on the probed column, the column for ORDER BY ... LIMIT), written with the range's
# {day}, {next} and {agent}; every comparison is leakproof (same types), so it may run as an index condition.
PROBES = {
    "claims.due_date": ("analytics_claims", "due_date >= DATE '{day}' AND due_date < DATE '{next}'", "due_date"),
    "claims.created_at": ("analytics_claims",
                          "created_at >= TIMESTAMPTZ '{day} 00:00+00' AND created_at < TIMESTAMPTZ '{next} 00:00+00'",
                          "created_at"),
    "calls.started_at": ("analytics_calls",
                         "started_at >= TIMESTAMPTZ '{day} 00:00+00' AND started_at < TIMESTAMPTZ '{next} 00:00+00'",
                         "started_at"),
    "calls.agent_id": ("analytics_calls", "agent_id >= '{agent}' AND agent_id < '{agent_next}'", "agent_id"),
    "extraction_runs.started_at": (
        "analytics_runs",
        "started_at >= TIMESTAMPTZ '{day} 00:00+00' AND started_at < TIMESTAMPTZ '{next} 00:00+00'", "started_at"),
    "review_events.created_at": (
        "analytics_review_events",
        "created_at >= TIMESTAMPTZ '{day} 00:00+00' AND created_at < TIMESTAMPTZ '{next} 00:00+00'", "created_at"),
}
SHAPES = ("SELECT count(*) FROM {view} WHERE {condition}",
          "SELECT * FROM {view} WHERE {condition} ORDER BY {column} DESC LIMIT 5")
# How an analyst steers the planner (each is a user setting): as it likes, index scans only, bitmap scans only.
STEERING = {
    "default": (),
    "index scans": ("enable_seqscan = off", "enable_bitmapscan = off"),
    "bitmap scans": ("enable_seqscan = off", "enable_indexscan = off", "enable_indexonlyscan = off"),
}
TABLES = ("tenants", "calls", "extraction_runs", "claims", "evidence", "review_events")


def _rows(tenant: int, prefix: str, count: int, day: str, agent: str) -> list[str]:
    """`count` calls of the tenant started on `day` (a second apart) by agent `agent`..., each with a run
    started then, a dated action item made then and falling due that day, and a review decision then."""
    moment = f"TIMESTAMPTZ '{day} 08:00+00' + n * interval '1 second'"
    calls = f"SELECT '{prefix}' || n AS id FROM generate_series(1, {count}) n"
    return [
        "INSERT INTO calls (id, tenant_id, external_id, agent_id, source_format, transcript_hash, state, "
        "state_changed_at, attempts, created_at, started_at) "
        f"SELECT '{prefix}' || n, {tenant}, '{prefix}' || n, '{agent}-' || {tenant} || '-' || n, 'json', md5(n::text), "
        f"'ready_for_review', {moment}, 1, {moment}, {moment} FROM generate_series(1, {count}) n",
        "INSERT INTO extraction_runs (call_id, tenant_id, idempotency_key, provider, model, prompt_version, "
        "transcript_hash, status, prompt_tokens, completion_tokens, cached_tokens, cost_usd, llm_calls, started_at) "
        f"SELECT '{prefix}' || n, {tenant}, md5('{prefix}' || n), 'heuristic', 'heuristic-v2', 'extract-v1', "
        f"md5(n::text), 'succeeded', 0, 0, 0, 0, 1, {moment} FROM generate_series(1, {count}) n",
        "INSERT INTO claims (run_id, call_id, tenant_id, position, kind, text, text_masked, owner, due, due_date, "
        "grounding_status, review_status, origin, created_at) "
        f"SELECT r.id, r.call_id, {tenant}, 0, 'action_item', 'Send the label', 'Send the label', 'agent', 'today', "
        f"DATE '{day}', 'grounded', 'pending', 'model', r.started_at FROM extraction_runs r "
        f"WHERE r.call_id IN ({calls})",
        "INSERT INTO review_events (tenant_id, call_id, claim_id, actor_name, action, created_at) "
        f"SELECT cl.tenant_id, cl.call_id, cl.id, 'supervisor', 'claim_approved', cl.created_at FROM claims cl "
        f"WHERE cl.call_id IN ({calls})",
    ]


@pytest.fixture
def two_tenants(role_name: str) -> Iterator[tuple[str, Engine]]:
    """A database at the head: acme (bound to the analyst `role_name`) with OWN rows in each range, globex
    with OTHERS rows in the aimed range only; statistics of acme's rows only."""
    with temporary_pg_database() as url:
        upgrade(url)
        engine = create_db_engine(url)
        try:
            with engine.begin() as connection:
                for table in TABLES:
                    connection.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
                connection.execute(text("INSERT INTO tenants (id, slug, created_at) "
                                        "VALUES (1, 'acme', now()), (2, 'globex', now())"))
                for name, bounds in {**RANGES, **EDGES}.items():
                    for statement in _rows(1, f"acme-{name}-", OWN, bounds["day"], bounds["agent"]):
                        connection.execute(text(statement))
            with engine.begin() as connection:
                # Statistics of acme's rows alone, alike in both ranges: the planner estimates the two ranges
                # alike (and joins by key rather than by rescanning a tenant's rows in index order, whose
                # counts would tell acme's own rows of one range from the other's).
                for table in TABLES:
                    connection.execute(text(f"ANALYZE {table}"))
            with engine.begin() as connection:
                aimed = RANGES["aimed"]
                for statement in _rows(2, "globex-", OTHERS, aimed["day"], aimed["agent"]):
                    connection.execute(text(statement))
            with unit_of_work(make_session_factory(engine)) as session:
                grant_analyst(session, role_name, "acme")
            yield url, engine
        finally:
            engine.dispose()


def _plan(conn: psycopg.Connection, sql: str) -> str:
    """EXPLAIN ANALYZE's text without timings, costs and totals (they vary by themselves) and without the
    bitmap heap scans' page counts (acme's pages: where its rows of each range happen to start on a page)."""
    rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}").fetchall()
    return "\n".join(row[0] for row in rows if "Heap Blocks:" not in row[0])


def _normalized(plan: str, bounds: dict[str, str]) -> str:
    for value in (bounds["day"], bounds["next"]):
        plan = plan.replace(value, "<bound>")
    return re.sub(r"'[PQR]'", "'<agent>'", plan)


def _leaks(url: str, role: str) -> dict[str, str]:
    """Probe -> the two plans, for every probe whose plan tells the aimed range (globex's rows) from the
    missed one (none), as the analyst of acme, under each steering."""
    leaks: dict[str, str] = {}
    database = make_url(url).database
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={role} dbname={database}", autocommit=True) as conn:
        for steering, settings in STEERING.items():
            conn.execute("RESET ALL")
            for setting in settings:
                conn.execute(f"SET {setting}")
            for probe, (view, condition, column) in PROBES.items():
                for shape in SHAPES:
                    plans = {}
                    for name, bounds in RANGES.items():
                        where = condition.format(**bounds, agent_next=NEXT_LETTER[bounds["agent"]])
                        sql = shape.format(view=view, condition=where, column=column)
                        plans[name] = _normalized(_plan(conn, sql), bounds)
                        if shape.startswith("SELECT count"):  # the analyst's answer itself: its own rows
                            assert conn.execute(sql).fetchone() == (OWN,), (steering, probe, name)
                    if plans["aimed"] != plans["missed"]:
                        leaks[f"{steering}: {probe}: {shape.split(' FROM')[0]}"] = (
                            f"--- globex's range:\n{plans['aimed']}\n--- nobody's:\n{plans['missed']}")
    return leaks


def test_explain_analyze_of_a_range_counts_no_other_tenants_rows(two_tenants: tuple[str, Engine],
                                                                 role_name: str) -> None:
    url, _engine = two_tenants
    leaks = _leaks(url, role_name)
    assert not leaks, f"{len(leaks)} probes tell globex's rows apart: {sorted(leaks)}\n" + next(iter(leaks.values()))


def test_up_to_0026_the_same_probes_counted_them(two_tenants: tuple[str, Engine], role_name: str) -> None:
    """The probe is not blind: on the old indexes it sees globex's 500 rows (what the test above would
    report at 0026), and after the upgrade again it sees nothing."""
    url, _engine = two_tenants
    downgrade(url, BEFORE)
    leaks = _leaks(url, role_name)
    # Every probed column, under one steering or another (calls' by bitmap scans: ix_calls_tenant_started and
    # ix_calls_agent_review_order were there too, and index scans preferred them).
    assert {key.split(": ")[1] for key in leaks} == set(PROBES), sorted(leaks)
    assert any(f"Rows Removed by Filter: {OTHERS}" in plans or f"actual rows={OTHERS + OWN} " in plans
               for plans in leaks.values()), next(iter(leaks.values()))
    upgrade(url)
    assert _leaks(url, role_name) == {}


def _indexes(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {table: {str(index["name"]) for index in inspector.get_indexes(table)} for table in OLD_INDEXES}


def test_upgrade_and_downgrade_swap_the_indexes(empty_url: str) -> None:
    upgrade(empty_url, BEFORE)
    engine = create_db_engine(empty_url)
    try:
        before = _indexes(engine)
        for table, names in OLD_INDEXES.items():
            assert names <= before[table], (table, before[table])
        upgrade(empty_url)
        after = _indexes(engine)
        for table in OLD_INDEXES:
            assert not OLD_INDEXES[table] & after[table], (table, after[table])
            assert NEW_INDEXES[table] <= after[table], (table, after[table])
            # As many indexes as before, or fewer: no write pays for more.
            assert len(after[table]) <= len(before[table]), table
        columns = {index["name"]: index["column_names"]
                   for table in ("claims", "extraction_runs", "review_events")
                   for index in inspect(engine).get_indexes(table)}
        assert columns["ix_claims_tenant_due_date"] == ["tenant_id", "due_date"]
        assert columns["ix_claims_tenant_created"] == ["tenant_id", "created_at"]
        assert columns["ix_extraction_runs_tenant_started"] == ["tenant_id", "started_at"]
        assert columns["ix_review_events_tenant_created"] == ["tenant_id", "created_at"]
        with engine.connect() as connection:
            due_date_index = connection.scalar(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_claims_tenant_due_date'"
                if engine.dialect.name == "postgresql" else
                "SELECT sql FROM sqlite_master WHERE name = 'ix_claims_tenant_due_date'"))
        assert "due_date IS NOT NULL" in str(due_date_index)  # still partial: dated items only
        downgrade(empty_url, BEFORE)
        assert _indexes(engine) == before
        upgrade(empty_url)
    finally:
        engine.dispose()
