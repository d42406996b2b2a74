"""outbox_purge_marks: per tenant, the newest hand-off event the retention purge has deleted

The feed told a reader it had missed events (410) when its cursor was older than the oldest event kept.
That is wrong twice over. Ids have gaps on PostgreSQL (a rolled-back transaction's id is never used), so a
reader caught up at the newest event got 410 once that event was purged behind a gap, having missed
nothing; and the oldest event kept is every tenant's, so a quiet reader's cursor fell behind other tenants'
deleted events. The purge now records, per tenant, the id of the newest event of that tenant it deleted;
a reader whose cursor is older than its own tenant's mark may have missed events, and only such a reader
gets 410. Each tenant starts marked just below the oldest event kept (history purged before this revision
left no mark).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 23:55:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0028'
down_revision: str | None = '0027'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_purge_marks",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("purged_through", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_outbox_purge_marks_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_outbox_purge_marks")),
    )
    # History purged before the marks existed left none: every tenant is marked just below the oldest event
    # kept, so a cursor older than that is still answered 410, as before (not served past the gap).
    op.execute(
        "INSERT INTO outbox_purge_marks (tenant_id, purged_through) "
        "SELECT t.id, m.oldest - 1 FROM tenants t CROSS JOIN (SELECT MIN(id) AS oldest FROM outbox) m "
        "WHERE m.oldest > 1"
    )


def downgrade() -> None:
    op.drop_table("outbox_purge_marks")
