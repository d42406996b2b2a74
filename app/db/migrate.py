"""Run Alembic migrations from code (`postcall db upgrade`, tests, the demo)."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from app.config import PROJECT_ROOT
from app.errors import ConfigError


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's configuration for the migrations of this code on `database_url` (None: the scripts alone
    are read, no database)."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_HINT = "use sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/name"


def check_database_url(database_url: str) -> None:
    """Refuse a URL Postcall cannot use, with one line saying why (ConfigError), before anything connects."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"POSTCALL_DATABASE_URL is not a database URL ({exc}); {URL_HINT}") from None
    backend = url.get_backend_name()
    if backend == "postgres":
        raise ConfigError(f"POSTCALL_DATABASE_URL uses the scheme 'postgres://'; {URL_HINT}")
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(f"POSTCALL_DATABASE_URL names an unsupported database {backend!r}; {URL_HINT}")
    try:
        url.get_dialect()
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"POSTCALL_DATABASE_URL needs a driver that is not installed ({exc}); {URL_HINT}") from None


def _sqlite_file_missing(database_url: str) -> str | None:
    """The path of a SQLite database file that does not exist (reading must not create it), else None."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    path = Path(url.database)
    return None if path.exists() else str(path)


def _connection_problem(database_url: str, exc: Exception) -> ConfigError:
    from sqlalchemy.engine import make_url

    where = make_url(database_url).render_as_string(hide_password=True)
    first_line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    return ConfigError(f"cannot use the database at {where}: {first_line}")


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def checked_upgrade(database_url: str, revision: str = "head") -> None:
    """`upgrade` for an entry point: a bad URL or an unreachable database is one ConfigError line."""
    from sqlalchemy.exc import SQLAlchemyError

    check_database_url(database_url)
    try:
        upgrade(database_url, revision)
    except SQLAlchemyError as exc:
        raise _connection_problem(database_url, exc) from exc


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@functools.cache
def head_revision() -> str | None:
    """The newest revision of the migration scripts this code carries: the schema it needs. Read once per
    process: the scripts are part of the code, which does not change while it runs, and reading them parses
    every one (about 80 ms), which `/healthz`, open to anyone, paid on every request."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(database_url: str) -> str | None:
    """The schema revision the database is at, or None when it was never migrated."""
    from alembic.migration import MigrationContext

    from app.db.session import get_engine

    with get_engine(database_url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_current_schema(database_url: str) -> None:
    """Fail with an actionable message (not a raw 'no such table' or a driver traceback) when the URL is
    unusable, the database unreachable, or the schema missing or old. A SQLite file that does not exist is
    reported, not created."""
    from sqlalchemy.exc import SQLAlchemyError

    check_database_url(database_url)
    missing = _sqlite_file_missing(database_url)
    if missing is not None:
        raise ConfigError(f"no database at {missing}: run `postcall db upgrade` first")
    try:
        current = current_revision(database_url)
    except SQLAlchemyError as exc:
        raise _connection_problem(database_url, exc) from exc
    head = head_revision()
    if current != head:
        state = "has no Postcall schema" if current is None else f"is at schema {current}, this code needs {head}"
        raise ConfigError(f"the database {state}: run `postcall db upgrade` first")


def earlier_revision(file_name: str) -> ModuleType:
    """An earlier migration's module, read from its file in migrations/versions: a revision that rewrites
    what an earlier one made builds on that revision's frozen definitions instead of carrying a copy."""
    path = PROJECT_ROOT / "migrations" / "versions" / file_name
    spec = importlib.util.spec_from_file_location(f"postcall_migration_{file_name[:4]}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"migration file {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def sqlite_views_and_triggers_set_aside(connection: Connection) -> Iterator[None]:
    """For a migration that rebuilds a SQLite table (a batch operation): every view and trigger of the schema
    dropped before the block and created again after it. Renaming the rebuilt table into place re-reads
    every view and trigger, and fails on any that names the table while it is gone; the table's own
    triggers go with the old table and come back here too."""
    kept = list(connection.execute(text(
        "SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger') AND sql IS NOT NULL "
        "ORDER BY type DESC"  # views first: a trigger may read a view
    )))
    for kind, name, _ in reversed(kept):
        connection.execute(text(f"DROP {kind.upper()} IF EXISTS {name}"))
    yield
    for _, _, sql in kept:
        connection.execute(text(sql))
