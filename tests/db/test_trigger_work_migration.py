"""Migration 0016 replaces the bodies of three PostgreSQL trigger functions of 0012 (the claim moves of a
call's update, a run's insert, a run's update) and makes the calls batch index partial; its downgrade puts
0012's functions and the whole index back. On a database with rows it changes no data, and the counters and
ledgers keep equalling the aggregates of the rows either way."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.models import Call, Tenant, UserRole
from app.pipeline.run import process_call
from app.review import delete_call
from app.users import authenticate, create_user
from tests.models.test_rollups import assert_rollups_match
from tests.pipeline.test_counts import _check
from tests.support.analytics import _prompt, build_world
from tests.support.old_schema import todays_code
from tests.support.services import temporary_pg_database

FUNCTIONS = ("postcall_calls_change", "postcall_runs_write", "postcall_runs_change")
SOURCES = text("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(:names)")
BATCH_INDEX = text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_calls_llm_batch_id'")


@pytest.fixture
def url_at_0015() -> Iterator[str]:
    with temporary_pg_database() as url:
        upgrade(url, "0015")
        yield url


def _sources(url: str) -> dict[str, str]:
    """The three functions' bodies, and the batch index's definition."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            sources = dict(conn.execute(SOURCES, {"names": list(FUNCTIONS)}).all())
            return {**sources, "ix_calls_llm_batch_id": conn.execute(BATCH_INDEX).scalar_one()}
    finally:
        engine.dispose()


def _assert_counts_match(url: str) -> None:
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            factory = make_session_factory(engine)
            assert_rollups_match(factory)
            with factory() as session:
                _check(session, list(session.scalars(select(Tenant.id))))
    finally:
        engine.dispose()


def test_upgrade_and_downgrade_swap_the_function_bodies_and_keep_the_counts(url_at_0015: str) -> None:
    url = url_at_0015
    before = _sources(url)
    assert set(before) == {*FUNCTIONS, "ix_calls_llm_batch_id"}
    assert "WHERE" not in before["ix_calls_llm_batch_id"]
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            build_world(make_session_factory(engine))  # written through 0012's triggers
    finally:
        engine.dispose()
    _assert_counts_match(url)

    upgrade(url)
    after = _sources(url)
    assert all(after[name] != before[name] for name in FUNCTIONS)
    assert after["ix_calls_llm_batch_id"].endswith("WHERE (llm_batch_id IS NOT NULL)")
    _assert_counts_match(url)  # nothing was rewritten
    engine = create_db_engine(url)
    try:
        # Writes through 0016's functions: a reprocessed call (its runs' claims moved out and in, a run
        # inserted and its timings written late) and a deleted one.
        factory = make_session_factory(engine)
        with unit_of_work(factory) as session:
            first, second = session.scalars(select(Call.id).order_by(Call.external_id).limit(2)).all()
            admin = create_user(session, tenant="acme", name="admin", role=UserRole.admin)
        prompt = _prompt()
        process_call(factory, first, HeuristicProvider(), dataclasses.replace(prompt, version="extract-v1-r2"),
                     reprocess_reviewed=True)
        _assert_counts_match(url)
        with unit_of_work(factory) as session:
            user = authenticate(session, admin.token)
            assert user is not None
            delete_call(session, user, second)
    finally:
        engine.dispose()
    _assert_counts_match(url)

    downgrade(url, "0015")
    assert _sources(url) == before
    _assert_counts_match(url)
