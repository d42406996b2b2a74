"""Migration 0020 drops the WHEN clause of the PostgreSQL trigger on a call's update (its function tests what
changed); its downgrade puts the clause back. The same writes leave the same ledger rows and the same
counters under either, an update that changes none of the columns the function reads writes nothing, and
the counters and ledgers keep equalling the aggregates of the rows."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.models import Call, UserRole
from app.pipeline.run import process_call
from app.review import delete_call
from app.users import authenticate
from tests.db.test_trigger_work_migration import _assert_counts_match
from tests.support.analytics import _prompt, add_user, build_world
from tests.support.old_schema import todays_code
from tests.support.services import temporary_pg_database

BEFORE = "0019"
AFTER = "0020"
TRIGGER = text("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'calls_ledgers_change'")
LEDGERS = ("rollup_calls", "rollup_claims", "rollup_reasons", "rollup_open_items", "rollup_agent_due", "rollup_runs")
COUNTERS = ("call_counts", "run_totals")


@pytest.fixture
def url_before() -> Iterator[str]:
    with temporary_pg_database() as url:
        upgrade(url, BEFORE)
        yield url


def _trigger(url: str) -> str:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(TRIGGER).scalar_one())
    finally:
        engine.dispose()


def _measured_in_time(column: str) -> bool:
    """Columns holding measured durations (sums and histogram buckets): they differ from run to run."""
    return column.endswith(("_sum", "_sum_ms")) or "_le_" in column


def _written(url: str) -> dict[str, Any]:
    """Every ledger's rows (less their id) as a multiset, and every counter's values summed over its shards
    (the shard is the writing backend's pid), durations left out."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            written: dict[str, Any] = {}
            for table in LEDGERS:
                columns = [c["name"] for c in inspect(conn).get_columns(table)
                           if c["name"] != "id" and not _measured_in_time(c["name"])]
                rows = conn.execute(text(f"SELECT {', '.join(columns)} FROM {table}"))  # names from the schema
                written[table] = Counter(tuple(row) for row in rows)
            for table in COUNTERS:
                primary = inspect(conn).get_pk_constraint(table)["constrained_columns"]
                key = [c for c in primary if c != "shard"]
                values = [c["name"] for c in inspect(conn).get_columns(table)
                          if c["name"] not in primary and not _measured_in_time(c["name"])]
                summed = ", ".join(f"SUM({c})" for c in values)
                written[table] = {tuple(row[:len(key)]): tuple(row[len(key):]) for row in conn.execute(
                    text(f"SELECT {', '.join(key)}, {summed} FROM {table} GROUP BY {', '.join(key)}"))}
            return written
    finally:
        engine.dispose()


def _write(url: str, round_: int) -> None:
    """The world the first time (processed calls, reviews), then each time a reprocessed call (its claims
    moved out and in, a run inserted) and a deleted call."""
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            factory = make_session_factory(engine)
            if round_ == 0:
                build_world(factory)
            with unit_of_work(factory) as session:
                first, second = session.scalars(select(Call.id).order_by(Call.external_id).limit(2)).all()
                # (Without the user audit trail `create_user` writes: it is later than this revision.)
                token, _ = add_user(session, "acme", f"admin-{round_}", UserRole.admin)
            process_call(factory, first, HeuristicProvider(),
                         dataclasses.replace(_prompt(), version=f"extract-v1-r{round_ + 2}"), reprocess_reviewed=True)
            with unit_of_work(factory) as session:
                user = authenticate(session, token)
                assert user is not None
                delete_call(session, user, second)
    finally:
        engine.dispose()


def test_upgrade_and_downgrade_drop_and_restore_the_when_clause_and_keep_the_counts(url_before: str) -> None:
    url = url_before
    before = _trigger(url)
    assert " WHEN (" in before and "AFTER UPDATE OF " in before
    _write(url, 0)  # through 0019's trigger
    _assert_counts_match(url)

    upgrade(url, AFTER)
    after = _trigger(url)
    assert " WHEN (" not in after
    assert after.split(" ON ", 1)[0] == before.split(" ON ", 1)[0]  # the same columns fire it
    _assert_counts_match(url)  # nothing was rewritten
    _write(url, 1)  # through 0020's
    _assert_counts_match(url)

    downgrade(url, BEFORE)
    assert _trigger(url) == before
    _assert_counts_match(url)
    _write(url, 2)
    _assert_counts_match(url)


def test_an_update_that_changes_nothing_the_function_reads_writes_nothing(url_before: str) -> None:
    url = url_before
    upgrade(url, AFTER)
    _write(url, 0)
    before = _written(url)
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            # Every column the trigger watches, set to its own value: the trigger fires (no WHEN clause).
            changed = conn.execute(text("UPDATE calls SET state = state, team = team, tenant_id = tenant_id, "
                                        "attempts = attempts, current_run_id = current_run_id, "
                                        "started_at = started_at, flagged_items = flagged_items"))
            assert changed.rowcount > 0
    finally:
        engine.dispose()
    assert _written(url) == before
    _assert_counts_match(url)


def test_the_same_writes_leave_the_same_ledger_rows_and_counters_as_before() -> None:
    written = []
    for revision in (BEFORE, AFTER):
        with temporary_pg_database() as url:
            upgrade(url, revision)
            _write(url, 0)
            _assert_counts_match(url)
            written.append(_written(url))
    before, after = written
    assert before["rollup_claims"] and before["rollup_open_items"] and before["call_counts"]  # something to compare
    assert after == before
