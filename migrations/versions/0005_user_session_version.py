"""users.session_version: browser sessions can be ended server-side

A signed-in browser session remembers the user's session version; signing out increments it, so every
cookie issued before (a saved copy included) stops working at its next request.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 02:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
