"""Alembic environment: the URL comes from the caller (`postcall db upgrade`) or from Settings."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy import Connection

from app.config import get_settings
from app.db.base import Base
from app.db.session import create_db_engine
from app.models import tables  # noqa: F401  (registers every table on Base.metadata)

config = context.config
target_metadata = Base.metadata
# Held for the migration's transaction on PostgreSQL (any fixed number: the key of this lock).
MIGRATION_LOCK = 0x706F737463616C6C  # "postcall"


def _url() -> str:
    return config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch operation reflects the tables its table refers to; SQLAlchemy cannot reflect calls'
        # expression index and says so on every fresh upgrade. No migration rebuilds calls since that
        # index exists (the schema test compares the result with the models), so the warning is noise.
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")
        # SQLite changes a column by copying the table and dropping the old one; with foreign keys
        # enforced, that DROP cascades and deletes every child row (calls' runs, claims, utterances).
        # The pragma only takes effect outside a transaction, so it is set before the migration's.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # ends the implicit transaction, so Alembic's own begins and commits
    try:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if not sqlite:
                # Two `postcall db upgrade` at once (replicas starting together): the second waits here
                # for the first to commit, then reads the version it left and has nothing to do. Without
                # the lock both read the old version and the second failed on objects the first made.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            context.run_migrations()
            if sqlite:
                # What enforcement would have refused must not slip in while it was off.
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows without their parent rows: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_db_engine(_url())
    try:
        with engine.connect() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
