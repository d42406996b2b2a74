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

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL aborts one transaction of a lock cycle (deadlock_detected) or one that lost a serialization
# race (serialization_failure): the transaction did nothing and the same work run again succeeds.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
# How often a request runs its unit of work before a repeated conflict is its answer (a 500).
CONFLICT_ATTEMPTS = 3
# Upper bound of the random pause before the next attempt, times the attempt number: long enough for the
# transaction that won to commit, short next to a request.
CONFLICT_PAUSE_SECONDS = 0.05

T = TypeVar("T")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, pre_ping: bool = False,
    lock_timeout_seconds: float | None = None,
) -> Engine:
    """Build a new engine (tests use this directly; the app uses `get_engine`). `lock_timeout_seconds`
    (PostgreSQL): each session's lock_timeout, set when it connects (no statement per transaction)."""
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
    engine = create_engine(
        url, pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=max_overflow, hide_parameters=True
    )
    if lock_timeout_seconds:
        # Set on each new session, not as a startup `options` parameter: that replaced any `options` the
        # URL carries (a statement_timeout, a search_path), and PgBouncer refuses startup options it was not
        # told to ignore.
        setting = f"SET lock_timeout = '{round(lock_timeout_seconds * 1000)}ms'"

        @event.listens_for(engine, "connect")
        def _lock_timeout(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(setting)
            dbapi_connection.commit()  # a session setting: it outlives the transaction SET began

    return engine


def pool_size_for(slots: int, *, size: int | None, limit: int) -> int:
    """Connections a process keeps for `slots` threads that may each hold one: one per slot, at most
    `limit` (POSTCALL_DB_POOL_LIMIT), unless `size` (POSTCALL_DB_POOL_SIZE) says otherwise. Workers and
    the web app both size their pools by it, with no overflow."""
    return size or min(slots, limit)


def get_engine(url: str) -> Engine:
    """The process's engine for `url`. Its pool has no overflow, so a connection is opened once and kept:
    `postcall worker` sets POSTCALL_DB_POOL_SIZE from its sizing; elsewhere the pool stops at the limit."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            from app.config import get_settings

            settings = get_settings()
            pool_size = settings.db_pool_size or settings.db_pool_limit
            engine = _engines[url] = create_db_engine(url, pool_size=pool_size, max_overflow=0,
                                                      lock_timeout_seconds=settings.db_lock_timeout_seconds)
        return engine


def forget_inherited_connections() -> None:
    """In a process forked from one that used the engines: drop the pooled connections the parent opened,
    without closing them (their sockets are the parent's; two processes on one socket corrupt its protocol
    stream). Each engine opens its own from here on (SQLAlchemy's `dispose(close=False)` for forks)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=False)


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


@contextmanager
def connection_unit_of_work(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """One transaction on a Core connection of the factory's engine, without an ORM session: commit when the
    block succeeds, roll back when it raises. For work that runs Core statements only (the pipeline's usual
    path): a session's own transaction bookkeeping (its transaction object, events, identity map and close)
    costs about twice the CPU of the connection's, on a transaction of a few statements. Session events do
    not fire: a caller that writes webhook deliveries hands them over itself after the commit."""
    with factory.kw["bind"].begin() as connection:
        yield connection


# Work in an open transaction: an ORM session, or a Core connection (`connection_unit_of_work`).
Work = Session | Connection


def connection_of(work: Work) -> Connection:
    """The Core connection `work` runs its statements on (a session's, in its transaction)."""
    return work if isinstance(work, Connection) else work.connection()


def is_transient_database_error(exc: BaseException) -> bool:
    """A lost connection, a server restarting or a lock timeout: the same work may succeed later.

    Everything else the database raises (constraint or programming errors) is a bug or bad data.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def is_transaction_conflict(exc: BaseException) -> bool:
    """PostgreSQL rolled the transaction back as a deadlock victim or a serialization failure."""
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) in CONFLICT_SQLSTATES


def retry_conflicts(session: Session, work: Callable[[], T], *, attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run `work`, one unit of work that commits on `session`, again from the start (after a rollback)
    when PostgreSQL aborts it as a deadlock victim or a serialization failure, up to `attempts` times.

    A review request otherwise fails once with a 500 when its locks meet a concurrent write's in the
    other order (the call row and the counter or rollup rows the triggers update). `work` must do all
    of the request's writes and its commit, and keep nothing from a failed attempt: everything the
    rollback undid is read again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except OperationalError as exc:
            if attempt == attempts or not is_transaction_conflict(exc):
                raise
            session.rollback()
            sqlstate = getattr(exc.orig, "sqlstate", None)
            logger.warning("transaction conflict (%s), attempt %d of %d; running it again", sqlstate, attempt,
                           attempts)
            time.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS) * attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


# A write that changes nothing: on SQLite it takes the database's write lock all the same.
_TAKE_SQLITE_WRITE_LOCK = text("UPDATE tenants SET id = id WHERE 0")


def scalars_for_update(session: Session, query: Select[T], *, of: Any, skip_locked: bool = False) -> list[T]:
    """`query`'s rows' first values, locked for the rest of the transaction, as `scalar_for_update` locks
    one (SQLite: its write lock taken first). `of`: the table whose rows are locked (not the joined ones:
    locking those would hold up other writers' key checks). On PostgreSQL a row deleted by the transaction
    it waited for is not returned; with `skip_locked` a row another transaction holds is left out rather than
    waited for (SQLite has one lock, the database's, and waits for it)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(_TAKE_SQLITE_WRITE_LOCK)
    return list(session.scalars(query.with_for_update(of=of, skip_locked=skip_locked)).all())


def scalar_for_update(session: Session, query: Select[T], *, key_share: bool = False) -> T | None:
    """`query`'s first row's value, locked for the rest of the transaction (`SELECT ... FOR UPDATE`). SQLite
    has no row locks and ignores FOR UPDATE, and its driver starts a transaction only at the first write, so
    two requests deciding one call both read it undecided and both wrote their event: there the database's
    write lock is taken first (a write that changes nothing), and the second request waits (busy timeout),
    then reads what the first committed. `key_share`: FOR NO KEY UPDATE on PostgreSQL, which leaves alone the
    key checks of rows that reference the locked one."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(_TAKE_SQLITE_WRITE_LOCK)
    return session.scalar(query.with_for_update(key_share=key_share))

