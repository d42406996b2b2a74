"""A migrated, temporary PostgreSQL database for a benchmark run, dropped when its ExitStack closes."""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory
from tests.support.services import temporary_pg_database


def migrated_pg_database(stack: ExitStack) -> tuple[str, Engine, sessionmaker[Session]]:
    """The database's URL, an engine disposed before the database is dropped, and a session factory."""
    url = stack.enter_context(temporary_pg_database())
    upgrade(url)
    engine = create_db_engine(url)
    stack.callback(engine.dispose)
    return url, engine, make_session_factory(engine)
