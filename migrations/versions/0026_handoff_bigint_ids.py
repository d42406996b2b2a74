"""outbox, webhook deliveries and attempts: 64-bit ids

Every event fans out to one delivery per subscribed endpoint, every delivery to its attempts, and none of
them is deleted while its call lives. With 32-bit ids (2,147,483,647) a center with a few million calls a
day and several endpoints runs out within years, and then every processed call and every review fails:
the fan-out runs in their transactions (`nextval: reached maximum value`). PostgreSQL only: SQLite's
integer primary keys are 64-bit already. The columns, the keys that refer to them and their sequences
become bigint; the two hand-over views over them are set aside meanwhile (a column a view reads cannot
change type) and made again as they were, with what was granted on them. Rewrites the three tables.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 21:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0026'
down_revision: str | None = '0025'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0003 = earlier_revision("0003_outbox_webhooks.py")

COLUMNS = (
    ("outbox", "id"),
    ("webhook_deliveries", "id"),
    ("webhook_deliveries", "outbox_id"),
    ("webhook_attempts", "id"),
    ("webhook_attempts", "delivery_id"),
)
SEQUENCES = ("outbox_id_seq", "webhook_deliveries_id_seq", "webhook_attempts_id_seq")


# What an operator granted on the views (to a reporting login, say), as GRANT statements to run again once
# they are made anew: a dropped view takes its privileges with it. The owner's own are the new view's too.
_VIEW_GRANTS = """
    SELECT format('GRANT %s ON %I TO %s', a.privilege_type, c.relname,
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END)
    FROM pg_catalog.pg_class c
    CROSS JOIN LATERAL aclexplode(c.relacl) a
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
    WHERE c.relname = ANY(:views) AND c.relnamespace = current_schema()::regnamespace
      AND a.grantee <> c.relowner
"""


def _change(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    grants = list(op.get_bind().execute(sa.text(_VIEW_GRANTS), {"views": list(_0003.HANDOFF_VIEWS)}).scalars())
    for name in _0003.HANDOFF_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {sql_type}")
    for sequence in SEQUENCES:
        op.execute(f"ALTER SEQUENCE {sequence} AS {sql_type}")
    for name, sql in _0003.HANDOFF_VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")
    for grant in grants:
        op.execute(grant)


def upgrade() -> None:
    _change("bigint")


def downgrade() -> None:
    _change("integer")
