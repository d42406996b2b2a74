"""extraction_runs.cpu_ms: the CPU time the worker spent on the call, beside its wall time (total_ms)

Under a threaded worker, wall time counts waits for the interpreter lock and the other threads' work as
this call's; the CPU time is what the call itself cost. Both are written after the run's commit.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 05:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD/DROP COLUMN (SQLite >= 3.35 has both): no table rebuild, so the analyst views stay.
    op.add_column('extraction_runs', sa.Column('cpu_ms', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('extraction_runs', 'cpu_ms')
