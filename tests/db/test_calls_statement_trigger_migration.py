"""Migration 0031 moves the counters and ledgers of calls' updates and runs' inserts to PostgreSQL statement
triggers (one pass over a statement's rows instead of one per row); its downgrade puts the row triggers back.
Either way the counters and ledgers equal the aggregates of the rows; under the statement triggers a statement
that changes many calls writes one ledger row per key instead of one per call, and an update that changes
nothing they read writes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from app.db.migrate import downgrade, earlier_revision, upgrade
from app.db.session import create_db_engine
from tests.db.test_calls_trigger_when_migration import LEDGERS, _measured_in_time, _write, _written
from tests.db.test_trigger_work_migration import _assert_counts_match
from tests.support.services import temporary_pg_database

BEFORE, AFTER = "0030", "0031"
ROLLUPS = earlier_revision("0011_analytics_rollups.py")
TRIGGERS = text("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid IN ('calls'::regclass, 'extraction_runs'::regclass) AND NOT tgisinternal")


@pytest.fixture
def url_before() -> Iterator[str]:
    with temporary_pg_database() as url:
        upgrade(url, BEFORE)
        yield url


def _triggers(url: str) -> dict[str, str]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return {str(name): str(definition) for name, definition in conn.execute(TRIGGERS)}
    finally:
        engine.dispose()


def _execute(url: str, statement: str, **parameters: Any) -> int:
    """Run one statement in its own transaction; the rows it changed."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(statement), parameters).rowcount
    finally:
        engine.dispose()


def _as_read(url: str) -> dict[str, Any]:
    """The ledgers as readers see them, each key's measures summed over its rows (keys whose sums are all zero
    left out, measured durations too), and the counters summed over their shards."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            read: dict[str, Any] = {}
            for rollup in ROLLUPS.rollups("postgresql"):
                keys = [name for name, _, _ in rollup.keys]
                measures = [name for name, _, _ in rollup.measures if not _measured_in_time(name)]
                sums = [f"SUM({name})" for name in measures]
                rows = conn.execute(text(  # names from the migration's definitions
                    f"SELECT {', '.join(keys)}, {', '.join(sums)} FROM {rollup.name} GROUP BY {', '.join(keys)} "
                    f"HAVING {' OR '.join(f'{total} <> 0' for total in sums)}"))
                read[rollup.name] = {tuple(row[:len(keys)]): tuple(row[len(keys):]) for row in rows}
    finally:
        engine.dispose()
    written = _written(url)
    return {**read, **{table: written[table] for table in written if table not in LEDGERS}}


def _ledger_rows(url: str) -> Counter[str]:
    return Counter({table: sum(rows.values()) for table, rows in _written(url).items() if table in LEDGERS})


def test_upgrade_and_downgrade_swap_the_triggers_and_keep_the_counts(url_before: str) -> None:
    url = url_before
    before = _triggers(url)
    assert "FOR EACH ROW" in before["calls_ledgers_change"] and "runs_ledgers_insert" not in before
    _write(url, 0)  # through the row triggers
    _assert_counts_match(url)

    upgrade(url, AFTER)
    after = _triggers(url)
    assert "FOR EACH STATEMENT" in after["calls_ledgers_change"] and "OLD TABLE" in after["calls_ledgers_change"]
    assert "AFTER INSERT ON public.extraction_runs" in after["runs_ledgers_insert"]
    assert "FOR EACH STATEMENT" in after["runs_ledgers_insert"]
    # A run's delete keeps its row trigger; its insert no longer fires it.
    assert "AFTER DELETE ON" in after["runs_ledgers_write"] and "INSERT" not in after["runs_ledgers_write"]
    _assert_counts_match(url)  # nothing was rewritten
    _write(url, 1)  # a reprocessed call (its claims moved out and in, a run inserted) and a deleted call
    _assert_counts_match(url)

    downgrade(url, BEFORE)
    assert _triggers(url) == before
    _assert_counts_match(url)
    _write(url, 2)
    _assert_counts_match(url)


def test_the_same_writes_leave_the_same_sums_and_counters_as_the_row_triggers() -> None:
    written = []
    for revision in (BEFORE, AFTER):
        with temporary_pg_database() as url:
            upgrade(url, revision)
            _write(url, 0)
            _write(url, 1)
            _assert_counts_match(url)
            written.append(_as_read(url))
    before, after = written
    assert before["rollup_claims"] and before["rollup_open_items"] and before["call_counts"]  # something to compare
    assert after == before


def test_many_calls_changed_in_one_statement_move_each_key_once(url_before: str) -> None:
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    rows = _ledger_rows(url)
    # Every stored call of one tenant's day closed at once, as a bulk decision would (the world holds three
    # acme calls of 2026-03-11, with their claims and runs).
    closed = _execute(url, "UPDATE calls SET state = 'rejected' WHERE tenant_id = (SELECT id FROM tenants "
                           "WHERE slug = 'acme') AND started_at >= '2026-03-11' AND state <> 'rejected'")
    assert closed >= 2
    _assert_counts_match(url)
    added = _ledger_rows(url) - rows
    # The calls-by-state ledger: each (state, day) key once, whatever the number of calls: at most the
    # states they left plus the one they entered, for the one day and team.
    assert 2 <= added["rollup_calls"] <= 1 + closed
    assert added["rollup_calls"] < 2 * closed  # the row trigger wrote two rows per call


def test_tenant_team_and_current_run_changes_of_many_calls_move_their_runs_and_claims(url_before: str) -> None:
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    assert _execute(url, "UPDATE calls SET team = 'moved' WHERE current_run_id IS NOT NULL") >= 3
    _assert_counts_match(url)
    assert _execute(url, "UPDATE calls SET agent_id = 'X-9', started_at = started_at + interval '2 days' "
                         "WHERE current_run_id IS NOT NULL") >= 3
    _assert_counts_match(url)
    assert _execute(url, "UPDATE calls SET current_run_id = NULL, state = 'queued' WHERE team = 'moved'") >= 3
    _assert_counts_match(url)


def test_an_update_of_nothing_the_counters_or_ledgers_read_writes_nothing(url_before: str) -> None:
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    before = _written(url)
    # A column no counter or ledger reads, and every column they read set to its own value: the statement
    # trigger fires (it has no column list) and finds nothing to move.
    assert _execute(url, "UPDATE calls SET last_error = 'noted'") > 0
    assert _execute(url, "UPDATE calls SET state = state, team = team, tenant_id = tenant_id, attempts = attempts, "
                         "current_run_id = current_run_id, started_at = started_at, flagged_items = flagged_items, "
                         "agent_id = agent_id") > 0
    assert _execute(url, "UPDATE calls SET last_error = NULL WHERE id = 'no-such-call'") == 0
    assert _written(url) == before
    _assert_counts_match(url)


def test_two_calls_swapping_teams_in_one_statement_move_their_runs_costs_and_timings(url_before: str) -> None:
    """Two calls trade teams in one statement, their runs under one ledger key: each team's count of runs nets
    to zero, their costs and timings do not."""
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    # Two calls of one tenant whose runs share provider, model, prompt version and status: one in team a, one
    # in team b, their runs started the same day, one costing 1.0 without a model time, one 2.0 with 5 ms.
    pair = ("SELECT a.call_id AS a, b.call_id AS b FROM extraction_runs a JOIN extraction_runs b "
            "ON (b.tenant_id, b.provider, b.model, b.prompt_version, b.status) = "
            "(a.tenant_id, a.provider, a.model, a.prompt_version, a.status) AND b.call_id > a.call_id "
            "ORDER BY a.id, b.id LIMIT 1")
    assert _execute(url, f"UPDATE calls SET team = CASE WHEN id = p.a THEN 'a' ELSE 'b' END FROM ({pair}) p "
                         "WHERE calls.id IN (p.a, p.b)") == 2
    _execute(url, "UPDATE extraction_runs SET started_at = '2026-03-10 12:00+00', "
                  "cost_usd = CASE WHEN c.team = 'a' THEN 1.0 ELSE 2.0 END, "
                  "llm_ms = CASE WHEN c.team = 'a' THEN NULL ELSE 5.0 END "
                  "FROM calls c WHERE c.id = extraction_runs.call_id AND c.team IN ('a', 'b')")
    _assert_counts_match(url)
    assert _execute(url, "UPDATE calls SET team = CASE team WHEN 'a' THEN 'b' ELSE 'a' END "
                         "WHERE team IN ('a', 'b')") == 2
    _assert_counts_match(url)


def test_tenant_and_id_changes_move_the_calls_counters_and_ledgers(url_before: str) -> None:
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    # A tenant change of processed calls (their claims follow by the key's cascade) ...
    assert _execute(url, "UPDATE calls SET tenant_id = (SELECT id FROM tenants WHERE slug = 'globex') "
                         "WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'acme') "
                         "AND current_run_id IS NOT NULL") >= 2
    _assert_counts_match(url)
    # ... and a call renamed (one without utterances: their key to calls does not cascade), with a new state:
    # it has no row to pair with, and leaves under its old id and arrives under its new one.
    assert _execute(url, "INSERT INTO calls (id, tenant_id, external_id, source_format, transcript_hash, state, "
                         "state_changed_at, attempts, created_at) SELECT 'bare', id, 'bare', 'json', 'h', 'queued', "
                         "now(), 0, now() FROM tenants WHERE slug = 'acme'") == 1
    assert _execute(url, "UPDATE calls SET id = 'renamed', state = 'approved' WHERE id = 'bare'") == 1
    _assert_counts_match(url)


def test_a_bulk_update_after_a_one_row_update_in_one_session_keeps_the_counts(url_before: str) -> None:
    """One session (one set of the trigger's cached plans) updates one call, then every call."""
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT id FROM calls ORDER BY id LIMIT 1")).scalar_one()
            conn.execute(text("UPDATE calls SET attempts = attempts + 1 WHERE id = :id"), {"id": first})
            conn.commit()
            assert conn.execute(text("UPDATE calls SET state = 'failed', team = 'bulk'")).rowcount >= 4
            conn.commit()
    finally:
        engine.dispose()
    _assert_counts_match(url)


def test_no_statement_of_the_trigger_joins_its_transition_tables() -> None:
    """The function pairs each call's two rows with a window: a join of old_calls to new_calls, planned once per
    session for the first statement's size, turned quadratic on a later bulk UPDATE of that session."""
    migration = earlier_revision("0031_calls_statement_trigger.py")
    body = migration._body()
    assert "old_calls" in body and "new_calls" in body
    for table in ("old_calls", "new_calls"):
        assert f"JOIN {table}" not in body and f"{table} o JOIN" not in body and f"{table} n JOIN" not in body
    assert body.count("OVER call") > 0
