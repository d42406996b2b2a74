"""review_events is append-only: database triggers refuse UPDATE and DELETE

The application never changes an audit event (app/review.py refuses it in the ORM too); these triggers
make the database refuse it for every client, psql and analysts' tools included. Hard-deleting a call is
unaffected: review_events has no foreign key to calls, so a call's events outlive it.

Deleting a tenant (whose events cascade) is refused as well, on purpose: an audit trail is not removed by
a cascade. A future SQLite batch migration that rebuilds review_events drops these triggers with the
old table and must create them again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:10:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "review_events is append-only"

POSTGRESQL_UPGRADE = [
    f"""
    CREATE FUNCTION review_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER review_events_no_change BEFORE UPDATE OR DELETE ON review_events
    FOR EACH ROW EXECUTE FUNCTION review_events_append_only()
    """,
    """
    CREATE TRIGGER review_events_no_truncate BEFORE TRUNCATE ON review_events
    FOR EACH STATEMENT EXECUTE FUNCTION review_events_append_only()
    """,
]
POSTGRESQL_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS review_events_no_truncate ON review_events",
    "DROP TRIGGER IF EXISTS review_events_no_change ON review_events",
    "DROP FUNCTION IF EXISTS review_events_append_only()",
]
SQLITE_UPGRADE = [
    f"""
    CREATE TRIGGER review_events_no_update BEFORE UPDATE ON review_events
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER review_events_no_delete BEFORE DELETE ON review_events
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused'); END
    """,
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS review_events_no_delete",
    "DROP TRIGGER IF EXISTS review_events_no_update",
]


def _statements(upgrade: bool) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return POSTGRESQL_UPGRADE if upgrade else POSTGRESQL_DOWNGRADE
    if dialect == "sqlite":
        return SQLITE_UPGRADE if upgrade else SQLITE_DOWNGRADE
    # Another backend still gets the application-level guard in app/review.py.
    return []


def upgrade() -> None:
    for statement in _statements(upgrade=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(upgrade=False):
        op.execute(statement)
