"""user_events: an append-only audit trail of changes to users; users.token_expires_at: tokens that expire

- user_events: one row per change to a user (created, deactivated, given a new token, granted or refused
  view_pii), written by the application in the change's transaction: the tenant, the user changed (id and
  name), who changed it (an API user's id and name, or `cli:<OS account>`), the action, a small JSON detail
  of what changed (never a token or its hash) and when. Append-only as review_events (migration 0002):
  triggers refuse UPDATE and DELETE (and on PostgreSQL TRUNCATE) for every client, so deleting a tenant,
  whose events would cascade, is refused too. No foreign key to users: an event outlives its user.
- users.token_expires_at: when the user's API token stops working, set at every issue from
  POSTCALL_TOKEN_LIFETIME_DAYS. Existing tokens get NULL (never expire): no integration stops at the
  upgrade; each gets a lifetime at its next rotation.

Analysts: no view reads user_events and nothing is granted on it, as on users; an analyst login (which
holds SELECT on the analyst views only) is refused it. So it needs no row-level security policy: the
application, its only reader, scopes every query by tenant.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 10:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0029'
down_revision: str | None = '0028'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "user_events is append-only"

POSTGRESQL_UPGRADE = [
    f"""
    CREATE FUNCTION user_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER user_events_no_change BEFORE UPDATE OR DELETE ON user_events
    FOR EACH ROW EXECUTE FUNCTION user_events_append_only()
    """,
    """
    CREATE TRIGGER user_events_no_truncate BEFORE TRUNCATE ON user_events
    FOR EACH STATEMENT EXECUTE FUNCTION user_events_append_only()
    """,
]
POSTGRESQL_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS user_events_no_truncate ON user_events",
    "DROP TRIGGER IF EXISTS user_events_no_change ON user_events",
    "DROP FUNCTION IF EXISTS user_events_append_only()",
]
SQLITE_UPGRADE = [
    f"""
    CREATE TRIGGER user_events_no_update BEFORE UPDATE ON user_events
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER user_events_no_delete BEFORE DELETE ON user_events
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused'); END
    """,
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS user_events_no_delete",
    "DROP TRIGGER IF EXISTS user_events_no_update",
]


def _trigger_statements(upgrade: bool) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return POSTGRESQL_UPGRADE if upgrade else POSTGRESQL_DOWNGRADE
    if dialect == "sqlite":
        return SQLITE_UPGRADE if upgrade else SQLITE_DOWNGRADE
    # Another backend still gets the application-level guard in app/models/guards.py.
    return []


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('token_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'user_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('user_name', sa.String(length=200), nullable=False),
        sa.Column('actor_user_id', sa.Integer(), nullable=True),
        sa.Column('actor_name', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=50), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_user_events_tenant_id_tenants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_events')),
    )
    op.create_index('ix_user_events_tenant_user', 'user_events', ['tenant_id', 'user_id', 'id'])
    for statement in _trigger_statements(upgrade=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _trigger_statements(upgrade=False):
        op.execute(statement)
    op.drop_index('ix_user_events_tenant_user', table_name='user_events')
    op.drop_table('user_events')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('token_expires_at')
