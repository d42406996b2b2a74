"""A migrated, temporary PostgreSQL database for a benchmark run, dropped when its ExitStack closes."""

from __future__ import annotations

from contextlib import ExitStack

from alembic import command
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import alembic_config, upgrade
from app.db.session import create_db_engine, make_session_factory
from tests.support.services import temporary_pg_database


def migrated_pg_database(stack: ExitStack, revision: str = "head") -> tuple[str, Engine, sessionmaker[Session]]:
    """The database's URL, an engine disposed before the database is dropped, and a session factory.

    `revision` other than head: the schema migrated to that revision, then stamped as head so that today's
    workers (which refuse an old schema) run on it. Only to compare revisions that change triggers or functions,
    never tables, which today's code would miss (e.g. a trigger rewrite against the triggers before it)."""
    url = stack.enter_context(temporary_pg_database())
    upgrade(url, revision)
    if revision != "head":
        command.stamp(alembic_config(url), "head")
    engine = create_db_engine(url)
    stack.callback(engine.dispose)
    return url, engine, make_session_factory(engine)


def analyze_calls(engine: Engine) -> None:
    """ANALYZE calls once a run's calls are stored (the benchmarks' `--analyze-calls`): the statistics a
    production database's autovacuum keeps, which this machine's PostgreSQL (autovacuum off) never takes.
    Without column statistics the planner takes a tenant's share of calls for a default that makes its
    narrowest tenant index look as cheap as a unique lookup, and the claims' foreign-key check on calls
    scans every call of the tenant, once per claim (migration 0022 and bench/onboarding say more). Only
    calls: it holds the run's rows from the start, while runs, claims and the ledgers grow during the run,
    and statistics taken while they are small would have the planner scan them whole later. Off by
    default, so figures stay comparable with earlier rounds, and because statistics of a table this small
    (the benchmarks store a few hundred calls) can make a sequential scan of it look cheaper than an index:
    at 90 calls that cost more than the tenant index did (docs/benchmarks.md has both)."""
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE calls")
        connection.commit()
