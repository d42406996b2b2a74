"""Engines and the unit of work.

One engine per process and URL. SQLite gets WAL, foreign keys and a busy timeout so the embedded
default survives a threaded worker. PostgreSQL connections are not pinged at checkout (a round trip
per transaction, two or three per call): a connection that died with a restarted server fails its first
statement instead, SQLAlchemy then discards every connection the pool held from before the failure, and
the caller retries (the worker's task; `process_call` itself for its final write). The web app pings
(`pre_ping=True`): a reviewer's request has nobody to retry it, and one round trip per request is cheap.
Both hide SQL parameters from log lines and exception messages: parameters are transcript text,
and errors end up in logs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20, pre_ping: bool = False) -> Engine:
    """Build a new engine (tests use this directly; the app uses `get_engine`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(
        url, pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=max_overflow, hide_parameters=True
    )


def get_engine(url: str) -> Engine:
    """The process's engine for `url`. Its pool has no overflow, so a connection is opened once and kept:
    `postcall worker` sets POSTCALL_DB_POOL_SIZE from its sizing; elsewhere the pool stops at the limit."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            from app.config import get_settings

            settings = get_settings()
            pool_size = settings.db_pool_size or settings.db_pool_limit
            engine = _engines[url] = create_db_engine(url, pool_size=pool_size, max_overflow=0)
        return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
