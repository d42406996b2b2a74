"""analysts: resolved due dates and owner names, tenant time zone, current run, per-tenant analyst views

- claims.due_date / due_at / owner_name: the due phrase as a date (and moment), the named owner;
- tenants.time_zone: the zone due phrases are resolved in (default UTC);
- calls.current_run_id: the latest succeeded run, kept by the pipeline (backfilled here), so the views'
  `is_current` is a column comparison instead of a "latest run" subquery per claim;
- indexes for analysts' time windows: calls (tenant_id, started_at), extraction_runs (started_at),
  claims (due_date) where set;
- analyst_roles: PostgreSQL login roles made by `postcall analysts grant`, each bound to one tenant.

On PostgreSQL the analyst views are security-barrier views: a member of the `postcall_analyst` group
role sees only the rows of the tenant its role is bound to in analyst_roles (none when it is bound to
none: fail closed); every other role that may read the views (their owner, a DBA) sees every tenant.
Analysts get SELECT on the views only, never on the tables. SQLite has no roles: there the views are
unfiltered and an analyst with the file reads every tenant (SQLite is single-tenant for analysts).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 02:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_GROUP = "postcall_analyst"

# The tenants a reader may see. Only direct members of the analyst group are filtered: a superuser is
# a member of every role for pg_has_role(), so membership is read from pg_auth_members instead. The
# login (session_user) decides, not current_user: an analyst may `SET ROLE postcall_analyst`, which
# changes current_user to the unfiltered group but never the login.
TENANT_FILTER = f"""
    (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                 JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                 JOIN pg_catalog.pg_roles u ON u.oid = m.member
                 WHERE g.rolname = '{ANALYST_GROUP}' AND u.rolname = session_user)
     AND current_user <> '{ANALYST_GROUP}'
     OR {{tenant_id}} IN (SELECT ar.tenant_id FROM analyst_roles ar WHERE ar.role_name = session_user))
"""

# Views for analysts (documented in docs/data-model.md). Plain SQL valid on SQLite and PostgreSQL; the
# tenant filter is added on PostgreSQL only.
ANALYST_VIEWS = {
    "analytics_calls": ("c.tenant_id", """
        SELECT c.id AS call_id, t.slug AS tenant, c.external_id, c.agent_id, c.team, c.started_at,
               c.language, c.source_format, c.state, c.state_changed_at, c.attempts, c.last_error,
               c.created_at, c.current_run_id,
               (SELECT COUNT(*) FROM utterances u WHERE u.call_id = c.id) AS utterance_count
        FROM calls c JOIN tenants t ON t.id = c.tenant_id
    """),
    "analytics_runs": ("c.tenant_id", """
        SELECT r.id AS run_id, r.call_id, t.slug AS tenant, c.external_id, r.provider, r.model,
               r.prompt_version, r.status, r.error, r.prompt_tokens, r.completion_tokens,
               r.cached_tokens, r.cost_usd, r.llm_calls, r.queue_wait_ms, r.llm_ms, r.verify_ms,
               r.db_ms, r.total_ms, r.started_at, r.finished_at,
               CASE WHEN r.id = c.current_run_id THEN 1 ELSE 0 END AS is_current
        FROM extraction_runs r JOIN calls c ON c.id = r.call_id JOIN tenants t ON t.id = c.tenant_id
    """),
    "analytics_claims": ("c.tenant_id", """
        SELECT cl.id AS claim_id, cl.call_id, t.slug AS tenant, c.external_id, c.agent_id, c.team,
               c.started_at, c.state AS call_state, cl.run_id, r.provider, r.model, r.prompt_version,
               cl.kind, cl.text_masked AS text, cl.owner, cl.owner_name, cl.due, cl.due_date, cl.due_at,
               cl.grounding_status, cl.grounding_reason, cl.review_status, cl.origin, cl.created_at,
               CASE WHEN cl.run_id = c.current_run_id THEN 1 ELSE 0 END AS is_current
        FROM claims cl JOIN calls c ON c.id = cl.call_id JOIN tenants t ON t.id = c.tenant_id
        LEFT JOIN extraction_runs r ON r.id = cl.run_id
    """),
    "analytics_evidence": ("c.tenant_id", """
        SELECT e.id AS evidence_id, e.claim_id, cl.call_id, t.slug AS tenant, e.cited_utterance,
               e.utterance_index, e.char_start, e.char_end, e.quote_masked AS quote, e.status, e.score, e.reason,
               CASE WHEN cl.run_id = c.current_run_id THEN 1 ELSE 0 END AS is_current
        FROM evidence e JOIN claims cl ON cl.id = e.claim_id JOIN calls c ON c.id = cl.call_id
        JOIN tenants t ON t.id = c.tenant_id
    """),
    # The call's external id and the item's kind and text ride along: a join from one of these views
    # into another cannot use the other's indexes through its security barrier.
    "analytics_review_events": ("ev.tenant_id", """
        SELECT ev.id AS event_id, t.slug AS tenant, ev.call_id, c.external_id, ev.claim_id,
               cl.kind AS claim_kind, cl.text_masked AS claim_text, ev.actor_name, ev.action,
               ev.created_at
        FROM review_events ev JOIN tenants t ON t.id = ev.tenant_id
        LEFT JOIN calls c ON c.id = ev.call_id LEFT JOIN claims cl ON cl.id = ev.claim_id
    """),
}

# The views as revision 0006 left them (masked text), restored on downgrade.
PREVIOUS_VIEWS = {
    "analytics_calls": """
        SELECT c.id AS call_id, t.slug AS tenant, c.external_id, c.agent_id, c.team, c.started_at,
               c.language, c.source_format, c.state, c.state_changed_at, c.attempts, c.last_error,
               c.created_at,
               (SELECT COUNT(*) FROM utterances u WHERE u.call_id = c.id) AS utterance_count
        FROM calls c JOIN tenants t ON t.id = c.tenant_id
    """,
    "analytics_runs": """
        SELECT r.id AS run_id, r.call_id, t.slug AS tenant, c.external_id, r.provider, r.model,
               r.prompt_version, r.status, r.error, r.prompt_tokens, r.completion_tokens,
               r.cached_tokens, r.cost_usd, r.llm_calls, r.queue_wait_ms, r.llm_ms, r.verify_ms,
               r.db_ms, r.total_ms, r.started_at, r.finished_at
        FROM extraction_runs r JOIN calls c ON c.id = r.call_id JOIN tenants t ON t.id = c.tenant_id
    """,
    "analytics_claims": """
        SELECT cl.id AS claim_id, cl.call_id, t.slug AS tenant, c.external_id, c.agent_id,
               c.started_at, c.state AS call_state, cl.run_id, r.provider, r.model, r.prompt_version,
               cl.kind, cl.text_masked AS text, cl.owner, cl.due, cl.grounding_status, cl.grounding_reason,
               cl.review_status, cl.origin,
               CASE WHEN cl.run_id = (SELECT MAX(r2.id) FROM extraction_runs r2
                                      WHERE r2.call_id = cl.call_id AND r2.status = 'succeeded')
                    THEN 1 ELSE 0 END AS is_current
        FROM claims cl JOIN calls c ON c.id = cl.call_id JOIN tenants t ON t.id = c.tenant_id
        LEFT JOIN extraction_runs r ON r.id = cl.run_id
    """,
    "analytics_evidence": """
        SELECT e.id AS evidence_id, e.claim_id, cl.call_id, t.slug AS tenant, e.cited_utterance,
               e.utterance_index, e.char_start, e.char_end, e.quote_masked AS quote, e.status, e.score, e.reason
        FROM evidence e JOIN claims cl ON cl.id = e.claim_id JOIN calls c ON c.id = cl.call_id
        JOIN tenants t ON t.id = c.tenant_id
    """,
}

CREATE_GROUP = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{ANALYST_GROUP}') THEN
        CREATE ROLE {ANALYST_GROUP} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment
WHEN insufficient_privilege THEN
    RAISE NOTICE 'no CREATEROLE: create role {ANALYST_GROUP} (NOLOGIN) as a superuser for analyst logins';
END
$$
"""
GRANT_TO_GROUP = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{ANALYST_GROUP}') THEN
        EXECUTE 'GRANT SELECT ON {", ".join(ANALYST_VIEWS)} TO {ANALYST_GROUP}';
    END IF;
END
$$
"""


def _drop_views(names: Sequence[str]) -> None:
    for name in names:
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _drop_views(list(PREVIOUS_VIEWS))
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False))
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('current_run_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_calls_tenant_started', ['tenant_id', 'started_at'], unique=False)
    with op.batch_alter_table('extraction_runs', schema=None) as batch_op:
        batch_op.create_index('ix_extraction_runs_started_at', ['started_at'], unique=False)
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('owner_name', sa.String(length=200), nullable=True))
        batch_op.create_index('ix_claims_due_date', ['due_date'], unique=False,
                              postgresql_where=sa.text('due_date IS NOT NULL'),
                              sqlite_where=sa.text('due_date IS NOT NULL'))
    op.create_table('analyst_roles',
    sa.Column('role_name', sa.String(length=63), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_analyst_roles_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('role_name', name=op.f('pk_analyst_roles'))
    )
    with op.batch_alter_table('analyst_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_analyst_roles_tenant_id'), ['tenant_id'], unique=False)
    op.execute(
        "UPDATE calls SET current_run_id = (SELECT MAX(r.id) FROM extraction_runs r "
        "WHERE r.call_id = calls.id AND r.status = 'succeeded')"
    )
    for name, (tenant_column, sql) in ANALYST_VIEWS.items():
        if postgresql:
            where = TENANT_FILTER.format(tenant_id=tenant_column)
            op.execute(f"CREATE VIEW {name} WITH (security_barrier = true) AS {sql} WHERE {where}")
        else:
            op.execute(f"CREATE VIEW {name} AS {sql}")
    if postgresql:
        op.execute(CREATE_GROUP)
        op.execute(GRANT_TO_GROUP)


def downgrade() -> None:
    # The group role is cluster-wide (other databases may use it): it stays.
    _drop_views(list(ANALYST_VIEWS))
    # SQLite drops a column by rebuilding the table, which a view on that table forbids (0003's hand-off
    # views join tenants): the other views are set aside and created again as they were.
    connection = op.get_bind()
    kept_views: list[tuple[str, str]] = []
    if connection.dialect.name == "sqlite":
        kept_views = [
            (name, sql)
            for name, sql in connection.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        ]
        _drop_views([name for name, _ in kept_views])
    with op.batch_alter_table('analyst_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_analyst_roles_tenant_id'))
    op.drop_table('analyst_roles')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index('ix_claims_due_date')
        batch_op.drop_column('owner_name')
        batch_op.drop_column('due_at')
        batch_op.drop_column('due_date')
    with op.batch_alter_table('extraction_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_extraction_runs_started_at')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_tenant_started')
        batch_op.drop_column('current_run_id')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
    for _, sql in kept_views:
        op.execute(sql)
    for name, sql in PREVIOUS_VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")
