"""outbox payload lz4: on PostgreSQL the hand-off event's payload is compressed with lz4 instead of pglz

Every processed call inserts one outbox row whose payload (the hand-off record: the call, its claims and
their evidence, ~2.2 kB of JSON in the bench's calls, up to ~3 kB) is past the size at which PostgreSQL
compresses a row's long values. pglz cost the backend about 3% of a processed call's instructions
(callgrind); lz4 compresses the same JSON in a fraction of that and decompresses faster for the
deliveries that read it. Rows written before keep their pglz values (PostgreSQL reads both); only new
values use lz4. A server built without lz4 support (its default_toast_compression offers no lz4) keeps
pglz: the upgrade changes nothing there. SQLite does not compress: nothing changes.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 19:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LZ4_SUPPORTED = sa.text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not bind.execute(LZ4_SUPPORTED).scalar():
        return
    op.execute("ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION DEFAULT")
