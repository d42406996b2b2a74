"""Run Alembic migrations from code (`postcall db upgrade`, tests, the demo)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app.config import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision(database_url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def current_revision(database_url: str) -> str | None:
    """The schema revision the database is at, or None when it was never migrated."""
    from alembic.migration import MigrationContext

    from app.db.session import get_engine

    with get_engine(database_url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_current_schema(database_url: str) -> None:
    """Fail with an actionable message (not a raw 'no such table') when the schema is missing or old."""
    from app.errors import ConfigError

    current, head = current_revision(database_url), head_revision(database_url)
    if current != head:
        state = "has no Postcall schema" if current is None else f"is at schema {current}, this code needs {head}"
        raise ConfigError(f"the database {state}: run `postcall db upgrade` first")
