"""Today's code on a database at an earlier revision, for the tests of a migration's upgrade: they build
their world (`build_world`, `process_call`) through the earlier schema's triggers and read it back with
today's models, then upgrade it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, inspect, text

# Columns today's models have (and writers set) that a later revision added (the revision in the comment).
LATER_COLUMNS = (
    ("extraction_runs", "tenant_id", "INTEGER"),  # 0025
    ("evidence", "tenant_id", "INTEGER"),  # 0025
    ("analyst_roles", "role_oid", "BIGINT"),  # 0025
    ("users", "token_expires_at", "TIMESTAMP"),  # 0029
)


@contextmanager
def todays_code(engine: Engine) -> Iterator[None]:
    """Within the block the database has the columns of LATER_COLUMNS that its schema lacks, as nullable
    columns that nothing else reads, and after it no longer: what was written stays the earlier schema's
    rows (a no-op on a database that has them)."""
    with engine.begin() as conn:
        inspector = inspect(conn)
        added = [(table, column, type_) for table, column, type_ in LATER_COLUMNS
                 if inspector.has_table(table) and column not in {c["name"] for c in inspector.get_columns(table)}]
        for table, column, type_ in added:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {type_}"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for table, column, _ in added:
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
