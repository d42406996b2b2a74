"""claims.tenant_id: an analyst's count of claims by tenant and time no longer reads calls

An analyst's one-day count on analytics_claims (1.1 s at 1M calls) joined each claim of the day to its
call, only to learn the call's tenant: a hash join with every call of the tenant, or one random lookup into
calls per claim; the claims row-level security policy asked calls once per row too. Here the claim carries
its tenant:

- claims.tenant_id (NOT NULL, FK tenants), backfilled from the claim's call; every writer sets it from the
  call it inserts the claim for.
- PostgreSQL: the claims policy compares claims.tenant_id with the login's tenant directly. The
  analytics_claims and analytics_evidence views take the tenant slug through claims.tenant_id and reach
  calls (and runs) by LEFT JOIN: a claim always has its call, so the rows are the same, and the planner
  drops a LEFT JOIN to a unique key whose columns a query does not use (a count reads claims and tenants).

SQLite keeps its single-tenant views; it only gets the column (by a table rebuild, for NOT NULL and the
foreign key; the views and triggers, which the rebuild would break, are set aside and created again).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 09:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.migrate import earlier_revision, sqlite_views_and_triggers_set_aside

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# 0014's roles, exemption and tenant test, and the claims policy and views it made.
_0014 = earlier_revision("0014_recent_events.py")
ANALYST_GROUP: str = _0014.ANALYST_GROUP
VIEW_OWNER: str = _0014.VIEW_OWNER
NOT_AN_ANALYST: str = _0014.NOT_AN_ANALYST
OWN_TENANT: str = _0014.OWN_TENANT

CLAIMS_VISIBLE = {
    "0014": _0014.ROW_POLICIES["claims"],
    "0015": OWN_TENANT.format(column="claims.tenant_id"),
}

VIEWS = {
    "0014": {name: _0014.ROW_VIEWS[name][1] for name in ("analytics_claims", "analytics_evidence")},
    # The same columns; the tenant comes from the claim, the call's columns by LEFT JOIN (always found).
    "0015": {
        "analytics_claims": """
            SELECT cl.id AS claim_id, cl.call_id, t.slug AS tenant, c.external_id, c.agent_id, c.team,
                   c.started_at, c.state AS call_state, cl.run_id, r.provider, r.model, r.prompt_version,
                   cl.kind, cl.text_masked AS text, cl.owner, cl.owner_name, cl.due, cl.due_date, cl.due_at,
                   cl.grounding_status, cl.grounding_reason, cl.review_status, cl.origin, cl.created_at,
                   CASE WHEN cl.run_id = c.current_run_id THEN 1 ELSE 0 END AS is_current
            FROM claims cl JOIN tenants t ON t.id = cl.tenant_id
            LEFT JOIN calls c ON c.id = cl.call_id
            LEFT JOIN extraction_runs r ON r.id = cl.run_id
        """,
        "analytics_evidence": """
            SELECT e.id AS evidence_id, e.claim_id, cl.call_id, t.slug AS tenant, e.cited_utterance,
                   e.utterance_index, e.char_start, e.char_end, e.quote_masked AS quote, e.status, e.score,
                   e.reason, CASE WHEN cl.run_id = c.current_run_id THEN 1 ELSE 0 END AS is_current
            FROM evidence e JOIN claims cl ON cl.id = e.claim_id JOIN tenants t ON t.id = cl.tenant_id
            LEFT JOIN calls c ON c.id = cl.call_id
        """,
    },
}

# As in 0014, the two views it recreates.
HAND_OVER_VIEWS = _0014.hand_over_views(["analytics_claims", "analytics_evidence"])


def _claims_policy_and_views(revision: str) -> None:
    for name in VIEWS[revision]:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP POLICY IF EXISTS analyst_tenant ON claims")
    op.execute(_0014.if_role_exists(
        VIEW_OWNER,
        f"CREATE POLICY analyst_tenant ON claims AS RESTRICTIVE FOR SELECT TO {VIEW_OWNER} "
        f"USING ({NOT_AN_ANALYST} OR {CLAIMS_VISIBLE[revision]})",
    ))
    for name, sql in VIEWS[revision].items():
        op.execute(f"CREATE VIEW {name} AS {sql}")
    op.execute(HAND_OVER_VIEWS)


def _rebuild_sqlite_claims(change: str) -> None:
    """Rebuild claims on SQLite with the column added or dropped, the schema's views and triggers set aside
    meanwhile."""
    with sqlite_views_and_triggers_set_aside(op.get_bind()):
        with op.batch_alter_table('claims', schema=None) as batch_op:
            if change == "add":
                batch_op.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
            else:
                batch_op.drop_constraint('fk_claims_tenant_id_tenants', type_='foreignkey')
                batch_op.drop_column('tenant_id')
        if change == "add":
            op.execute("UPDATE claims SET tenant_id = (SELECT c.tenant_id FROM calls c WHERE c.id = claims.call_id)")
            with op.batch_alter_table('claims', schema=None) as batch_op:
                batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=False)
                batch_op.create_foreign_key('fk_claims_tenant_id_tenants', 'tenants', ['tenant_id'], ['id'],
                                            ondelete='CASCADE')


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _rebuild_sqlite_claims("add")
        return
    op.add_column('claims', sa.Column('tenant_id', sa.Integer(), nullable=True))
    # One set-based statement (no row trigger fires: its WHEN lists the columns the rollups read).
    op.execute("UPDATE claims SET tenant_id = c.tenant_id FROM calls c WHERE c.id = claims.call_id")
    op.alter_column('claims', 'tenant_id', existing_type=sa.Integer(), nullable=False)
    op.create_foreign_key('fk_claims_tenant_id_tenants', 'claims', 'tenants', ['tenant_id'], ['id'],
                          ondelete='CASCADE')
    _claims_policy_and_views("0015")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _rebuild_sqlite_claims("drop")
        return
    _claims_policy_and_views("0014")
    op.drop_constraint('fk_claims_tenant_id_tenants', 'claims', type_='foreignkey')
    op.drop_column('claims', 'tenant_id')
