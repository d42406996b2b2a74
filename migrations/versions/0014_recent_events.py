"""analyst row views filtered by row-level security, so "the newest N rows" reads an index

The five row views of 0008 (analytics_calls, _runs, _claims, _evidence, _review_events) were
security-barrier views with the tenant filter inside. PostgreSQL plans a security-barrier view as a
subquery of its own: an analyst's `ORDER BY created_at DESC LIMIT 50` cannot reach the time index
inside it, so the view joins and sorts every row of the tenant first (5.4 s for the newest 50 review
decisions at 1M calls). Any bound on the time column was pushed through; an unbounded "newest N" was not.

Here the filter moves from the views onto the tables they read, as row-level security policies, and
the views become plain views, which the planner flattens into the analyst's query (an index scan
backwards on the time column, stopping after N rows). The policies apply to the role that owns the
views (PostgreSQL checks a view's tables as its owner), `postcall_analyst_views`: a NOLOGIN role that
is not a superuser and cannot bypass row-level security, with SELECT on the tables the views read.
Row-level security keeps what the barrier gave: a condition an analyst writes that could show a
value (a failing cast) runs only on rows the policies already let through, and only leakproof
comparisons are used as index conditions before them.

- calls, tenants, review_events: a row is visible when its tenant is the login's tenant in
  analyst_roles; runs and claims when their call is visible, evidence when its claim is (each asks its
  parent table, whose own policy applies). Who is filtered is unchanged from 0008: members of the
  `postcall_analyst` group, by their login, none at all once unbound; any other reader of the views
  (their owner, a DBA, the benchmarks) sees every tenant.
- The policies are RESTRICTIVE and name only the view-owning role; a permissive `USING (true)` policy
  for everyone keeps every other role (the application, whether table owner or not) where it was.
  Table owners and superusers are not subject to row-level security at all.
- If the view-owning role cannot be created or given the views (no CREATEROLE), the views are not
  granted to the analyst group: analysts get "permission denied", never another tenant's rows.
- Indexes for the newest rows of the views whose time column had none: calls (started_at) and
  claims (created_at).

SQLite has no roles and no row-level security (single-tenant for analysts): there only the indexes
are added. The rollup views of 0011 stay security-barrier views (their queries aggregate; none needs
an ordered index scan through the barrier).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0014'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_GROUP = "postcall_analyst"
VIEW_OWNER = "postcall_analyst_views"

# Whether the reader is exempt from the tenant filter (0008's rule, copied: a migration is frozen at its
# revision). Only direct members of the analyst group are filtered, by their login (session_user), so an
# analyst's `SET ROLE postcall_analyst` changes nothing. It has no column in it: PostgreSQL runs it once
# per query (an InitPlan), not per row.
NOT_AN_ANALYST = f"""
    (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                 JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                 JOIN pg_catalog.pg_roles u ON u.oid = m.member
                 WHERE g.rolname = '{ANALYST_GROUP}' AND u.rolname = session_user)
     AND current_user <> '{ANALYST_GROUP}')
"""
OWN_TENANT = "{column} IN (SELECT ar.tenant_id FROM analyst_roles ar WHERE ar.role_name = session_user)"

# Table -> the rows an analyst may see through the views. A child asks its parent, under the parent's policy.
ROW_POLICIES = {
    "tenants": OWN_TENANT.format(column="id"),
    "calls": OWN_TENANT.format(column="tenant_id"),
    "review_events": OWN_TENANT.format(column="tenant_id"),
    "extraction_runs": "EXISTS (SELECT 1 FROM calls c WHERE c.id = extraction_runs.call_id)",
    "claims": "EXISTS (SELECT 1 FROM calls c WHERE c.id = claims.call_id)",
    "evidence": "EXISTS (SELECT 1 FROM claims cl WHERE cl.id = evidence.claim_id)",
}
# What the views read besides those: the utterance count (reached only through a call's id) and the bindings.
OTHER_READ_TABLES = ("utterances", "analyst_roles")

# The row views, as 0008 made them (the same columns; 0008 added a WHERE with the tenant filter).
ROW_VIEWS = {
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
    "analytics_review_events": ("ev.tenant_id", """
        SELECT ev.id AS event_id, t.slug AS tenant, ev.call_id, c.external_id, ev.claim_id,
               cl.kind AS claim_kind, cl.text_masked AS claim_text, ev.actor_name, ev.action,
               ev.created_at
        FROM review_events ev JOIN tenants t ON t.id = ev.tenant_id
        LEFT JOIN calls c ON c.id = ev.call_id LEFT JOIN claims cl ON cl.id = ev.claim_id
    """),
}
# 0008's filter inside each view, restored on downgrade.
BARRIER_FILTER = f"({NOT_AN_ANALYST} OR {OWN_TENANT})"

CREATE_VIEW_OWNER = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{VIEW_OWNER}') THEN
        CREATE ROLE {VIEW_OWNER} NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment
WHEN insufficient_privilege THEN
    RAISE NOTICE 'no CREATEROLE: create role {VIEW_OWNER} (NOLOGIN NOBYPASSRLS) as a superuser, then migrate again';
END
$$
"""
def hand_over_views(views: Sequence[str], tables: Sequence[str] = ()) -> str:
    """The views go to their owner (with SELECT on `tables`, what they read) and to the analysts only
    together, and only when the owner is subject to row-level security; otherwise analysts are refused the
    views (fail closed). 0015 hands over the two views it recreates with it."""
    grant_tables = f"        EXECUTE 'GRANT SELECT ON {', '.join(tables)} TO {VIEW_OWNER}';\n" if tables else ""
    owners = "".join(f"        EXECUTE 'ALTER VIEW {name} OWNER TO {VIEW_OWNER}';\n" for name in views)
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{VIEW_OWNER}'
               AND NOT rolsuper AND NOT rolbypassrls)
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{ANALYST_GROUP}') THEN
{grant_tables}{owners}\
        EXECUTE 'GRANT SELECT ON {", ".join(views)} TO {ANALYST_GROUP}';
    ELSE
        RAISE NOTICE 'analyst views not granted: role {VIEW_OWNER} or {ANALYST_GROUP} is missing (or bypasses RLS)';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'analyst views not granted: % (migrate as a superuser or a member of {VIEW_OWNER})', SQLERRM;
END
$$
"""


def if_role_exists(role: str, *statements: str) -> str:
    """A block that runs `statements` only where `role` exists (a cluster may lack it: see CREATE_VIEW_OWNER)."""
    executes = "".join(f"        EXECUTE $statement${statement}$statement$;\n" for statement in statements)
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN
{executes}\
    END IF;
END
$$
"""


HAND_OVER_VIEWS = hand_over_views(list(ROW_VIEWS), [*ROW_POLICIES, *OTHER_READ_TABLES])
GRANT_TO_GROUP = if_role_exists(ANALYST_GROUP, f"GRANT SELECT ON {', '.join(ROW_VIEWS)} TO {ANALYST_GROUP}")
REVOKE_FROM_VIEW_OWNER = if_role_exists(
    VIEW_OWNER, f"REVOKE SELECT ON {', '.join([*ROW_POLICIES, *OTHER_READ_TABLES])} FROM {VIEW_OWNER}")


def _drop_views() -> None:
    for name in ROW_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    # Analysts' "newest first" on a view whose time column had no index of its own.
    op.create_index('ix_calls_started_at', 'calls', ['started_at'])
    op.create_index('ix_claims_created_at', 'claims', ['created_at'])
    if op.get_bind().dialect.name != "postgresql":
        return
    _drop_views()
    for table in ROW_POLICIES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY every_row ON {table} USING (true) WITH CHECK (true)")
    op.execute(CREATE_VIEW_OWNER)
    # Without the role (no CREATEROLE) there is nothing to restrict: the views are not granted either.
    for table, visible in ROW_POLICIES.items():
        op.execute(f"""
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{VIEW_OWNER}') THEN
                    EXECUTE $policy$CREATE POLICY analyst_tenant ON {table} AS RESTRICTIVE FOR SELECT
                        TO {VIEW_OWNER} USING ({NOT_AN_ANALYST} OR {visible})$policy$;
                END IF;
            END
            $$""")
    for name, (_, sql) in ROW_VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")
    op.execute(HAND_OVER_VIEWS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_views()
        for table in ROW_POLICIES:
            op.execute(f"DROP POLICY IF EXISTS analyst_tenant ON {table}")
            op.execute(f"DROP POLICY IF EXISTS every_row ON {table}")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        # The role is cluster-wide (other databases' views may be its): it stays, without this database's grants.
        op.execute(REVOKE_FROM_VIEW_OWNER)
        for name, (tenant_column, sql) in ROW_VIEWS.items():
            where = BARRIER_FILTER.format(column=tenant_column)
            op.execute(f"CREATE VIEW {name} WITH (security_barrier = true) AS {sql} WHERE {where}")
        op.execute(GRANT_TO_GROUP)
    op.drop_index('ix_claims_created_at', table_name='claims')
    op.drop_index('ix_calls_started_at', table_name='calls')
