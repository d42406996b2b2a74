"""Batch mode: llm_batches, the call's mode and batch, the batch a run's answer came from

Plain ALTER TABLE ADD/DROP COLUMN on both backends (SQLite >= 3.35 drops columns natively): a batch
rebuild of `calls` or `extraction_runs` on SQLite would have to recreate the analyst views and the
partial unique index as well.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 01:50:57.131727
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('llm_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('prompt_version', sa.String(length=50), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('provider_batch_id', sa.String(length=200), nullable=True),
    sa.Column('input_file_id', sa.String(length=200), nullable=True),
    sa.Column('output_file_id', sa.String(length=200), nullable=True),
    sa.Column('error_file_id', sa.String(length=200), nullable=True),
    sa.Column('call_count', sa.Integer(), nullable=False),
    sa.Column('request_count', sa.Integer(), nullable=False),
    sa.Column('input_bytes', sa.Integer(), nullable=False),
    sa.Column('completed_count', sa.Integer(), nullable=False),
    sa.Column('failed_count', sa.Integer(), nullable=False),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('collected_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_batches')),
    sa.UniqueConstraint('provider_batch_id', name=op.f('uq_llm_batches_provider_batch_id'))
    )
    op.create_index(op.f('ix_llm_batches_collected_at'), 'llm_batches', ['collected_at'], unique=False)

    op.add_column('calls', sa.Column('llm_mode', sa.Enum('sync', 'batch', name='llm_mode', native_enum=False, length=32), server_default='sync', nullable=False))
    op.add_column('calls', sa.Column('llm_batch_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_calls_llm_batch_id'), 'calls', ['llm_batch_id'], unique=False)
    op.add_column('extraction_runs', sa.Column('llm_batch_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('extraction_runs', 'llm_batch_id')
    op.drop_index(op.f('ix_calls_llm_batch_id'), table_name='calls')
    op.drop_column('calls', 'llm_batch_id')
    op.drop_column('calls', 'llm_mode')
    op.drop_index(op.f('ix_llm_batches_collected_at'), table_name='llm_batches')
    op.drop_table('llm_batches')
