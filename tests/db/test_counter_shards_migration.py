"""Migration 0018 spreads the PostgreSQL counter rows over 256 shards instead of 16: two writers whose
backends share a row under the old modulus no longer wait for each other's row lock; every trigger function
that picked a shard now picks it the new way, nothing else in the functions changes, no data moves, and the
counters and ledgers keep equalling the aggregates of the rows on the way up and down."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.models.counters import COUNTER_SHARDS
from app.pipeline.run import process_call
from tests.db.test_trigger_work_migration import _assert_counts_match
from tests.support.analytics import _prompt, build_world
from tests.support.old_schema import todays_code
from tests.support.services import temporary_pg_database

BEFORE = "0017"
AFTER = "0018"  # later revisions rewrite some of these functions again
OLD, NEW = "pg_backend_pid() % 16", f"pg_backend_pid() % {COUNTER_SHARDS}"
SOURCES = text("SELECT proname, prosrc FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
               "WHERE l.lanname = 'plpgsql' AND p.pronamespace = current_schema()::regnamespace")
# The functions that count calls and runs (0009, 0012, 0016): each must pick a shard.
COUNTING = {"postcall_count_calls", "postcall_calls_change", "postcall_runs_write", "postcall_runs_change"}


@pytest.fixture
def url_before() -> Iterator[str]:
    with temporary_pg_database() as url:
        upgrade(url, BEFORE)
        yield url


def _sources(url: str) -> dict[str, str]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(SOURCES).all())
    finally:
        engine.dispose()


def _process_new_calls(url: str) -> None:
    """Writes through the current functions: the acme calls reprocessed (claims moved out and in, runs
    inserted, timings written late)."""
    engine = create_db_engine(url)
    try:
        factory = make_session_factory(engine)
        with unit_of_work(factory) as session:
            call_ids = list(session.scalars(text("SELECT id FROM calls ORDER BY external_id")))
        with todays_code(engine):
            for call_id in call_ids[1:3]:
                process_call(factory, call_id, HeuristicProvider(), _prompt(), reprocess_reviewed=True)
    finally:
        engine.dispose()


def test_upgrade_rewrites_only_the_shard_expression_and_keeps_the_counts(url_before: str) -> None:
    url = url_before
    before = _sources(url)
    with_shard = {name for name, source in before.items() if OLD in source}
    assert with_shard >= COUNTING
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            build_world(make_session_factory(engine))  # counted on the 16 old shards
    finally:
        engine.dispose()
    _assert_counts_match(url)

    upgrade(url, AFTER)
    after = _sources(url)
    assert {name for name, source in after.items() if NEW in source} == with_shard
    assert not any(OLD in source for source in after.values())
    for name, source in before.items():
        assert after[name] == source.replace(OLD, NEW)  # nothing else changed, in any function
    _assert_counts_match(url)  # no data moved
    _process_new_calls(url)  # counted on the new shards, beside the rows of the old ones
    _assert_counts_match(url)

    downgrade(url, BEFORE)
    assert _sources(url) == before
    _assert_counts_match(url)
    _process_new_calls(url)
    _assert_counts_match(url)


def _backends_sharing_an_old_shard(dsn: str) -> tuple[psycopg.Connection, psycopg.Connection, list[psycopg.Connection]]:
    """Two open connections whose backend pids are equal modulo 16 and differ modulo 256 (pids of a burst
    of connections are close together, so one of a few dozen such pairs turns up), and the rest to close."""
    opened: list[psycopg.Connection] = []
    by_old_shard: dict[int, psycopg.Connection] = {}
    for _ in range(80):
        conn = psycopg.connect(dsn)
        opened.append(conn)
        pid = conn.info.backend_pid
        other = by_old_shard.get(pid % 16)
        if other is not None and other.info.backend_pid % COUNTER_SHARDS != pid % COUNTER_SHARDS:
            return other, conn, [c for c in opened if c not in (other, conn)]
        by_old_shard.setdefault(pid % 16, conn)
    for conn in opened:
        conn.close()
    pytest.fail("no two backends shared a shard modulo 16")


def _second_writer_waits(url: str) -> bool:
    """Two calls of one tenant and team change state in two open transactions, on backends that shared a
    counter row before 0018: does the second wait for the first's row lock?"""
    engine = create_db_engine(url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            call_ids = list(session.scalars(text(
                "SELECT id FROM calls WHERE state = 'queued' AND tenant_id = (SELECT min(tenant_id) FROM calls) "
                "ORDER BY id")))
    finally:
        engine.dispose()
    assert len(call_ids) >= 2
    parsed = make_url(url)
    dsn = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"
    first, second, others = _backends_sharing_an_old_shard(dsn)
    for conn in others:
        conn.close()
    try:
        change = "UPDATE calls SET state = 'processing' WHERE id = %s"
        first.execute(change, (call_ids[0],))  # its transaction stays open, holding its counter row
        second.execute("SET lock_timeout = '1s'")
        try:
            second.execute(change, (call_ids[1],))
        except psycopg.errors.LockNotAvailable:
            return True
        return False
    finally:
        first.rollback()
        second.rollback()
        first.close()
        second.close()


def _queued_calls(url: str) -> None:
    """Calls of a tenant, all queued and without a team: their state changes count on one key."""
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            build_world(make_session_factory(engine))
        with engine.begin() as conn:
            conn.execute(text("UPDATE calls SET state = 'queued', team = NULL"))
    finally:
        engine.dispose()


def test_writers_on_one_old_shard_no_longer_wait_for_each_other(url_before: str) -> None:
    url = url_before
    _queued_calls(url)
    assert _second_writer_waits(url)  # the old modulus: one counter row, one lock
    upgrade(url)
    assert not _second_writer_waits(url)
    _assert_counts_match(url)
