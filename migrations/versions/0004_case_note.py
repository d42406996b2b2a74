"""calls.case_note: the agent's own wording of the case note

NULL means the note is derived from the call's current items (app/pipeline/note.py); a text is what an
agent or supervisor wrote in its place, and is what the record hands on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 02:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("case_note", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ too): a batch rebuild of `calls` would break the
    # analytics views that select from it.
    op.drop_column("calls", "case_note")
