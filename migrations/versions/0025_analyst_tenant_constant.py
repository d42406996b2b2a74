"""analyst tenant filter planned as a constant: no subplan whose execution an analyst's EXPLAIN ANALYZE can
see; runs and evidence carry their tenant; analyst bindings name the role's oid

The hole (PostgreSQL). The row policies of 0014/0015/0024 and the rollup views of 0011/0024 decided who
sees what with subqueries: `tenant_id IN (SELECT ... FROM analyst_roles WHERE role_name = session_user)`,
the group's oid from pg_roles, and for runs and evidence `EXISTS (SELECT 1 FROM calls ...)` / `EXISTS
(SELECT 1 FROM claims ...)`. PostgreSQL may evaluate an analyst's own leakproof conditions (=, <,
starts_with, IN on text, dates, numbers) before a security qual, and a subplan runs only when a row reaches
it: `EXPLAIN (ANALYZE) SELECT 1 FROM analytics_claims WHERE starts_with(text, 'The customer says Hi')`
showed the analyst_roles subplan `actual rows=1` or `never executed` (and its loop counts) depending on
whether ANOTHER tenant had such a row. A loop over prefixes read other tenants' claim texts and external
ids, on every row view and on the rollup views.

The fix: the filter is a comparison with a constant, decided before any row is read.

- `postcall_analyst_tenant()` (zero arguments, plpgsql, SECURITY DEFINER so that an analyst needs no
  privilege on analyst_roles) returns NULL for a reader who sees every tenant, the bound tenant's id for
  an analyst login, and -1 (no tenant: fail closed) for an analyst login without a valid binding.
- It is declared IMMUTABLE on purpose. The planner evaluates an immutable function whose arguments are
  all constants (here: none) once, while planning, and puts the result in the plan: a policy
  `postcall_analyst_tenant() IS NULL OR tenant_id = postcall_analyst_tenant()` is planned as
  `tenant_id = 5` for an analyst (and as nothing at all for the application), with no subplan, so no
  row-dependent execution count is left to observe. Immutable is a promise that the result depends on
  nothing that changes between planning and execution. It holds here: the result depends on the login
  (session_user), which a session that is not a superuser's can never change (SET ROLE changes
  current_user only; SET SESSION AUTHORIZATION needs a superuser), and on the login's binding in
  analyst_roles and its group membership, which change only by an operator's grant or revoke. A plan
  kept by a session (PREPARE, a plpgsql function's cached plan) keeps the tenant it was planned with
  until the session replans: revoking a binding alone does not end an open session's access to its own
  former tenant (`postcall analysts revoke` also takes the group away, which PostgreSQL checks on every
  execution, and ends the role's sessions). It never gives a session another tenant. PostgreSQL replans
  a row view's query when the user changes (row-level security marks the plan role-dependent), so a
  superuser's SET SESSION AUTHORIZATION is followed too; a rollup view's plan prepared before it is not
  (superusers only). `SET search_path` on the function does not stop the folding (it only prevents
  inlining of SQL functions; EXPLAIN shows the constant).
- The function is written against an attacker who runs it: every object is schema-qualified and the
  search path is `pg_catalog, <schema>, pg_temp` with pg_temp LAST. Without that, pg_temp is searched
  FIRST for tables, and an analyst (who may turn read-only off and create temporary tables) could create
  a temporary `analyst_roles` naming another tenant and be shown it (checked: with an unqualified table
  name and `SET search_path = pg_catalog, public` the function returned the other tenant). Operators are
  written OPERATOR(pg_catalog.=).
- Who is filtered is 0024's rule: a login that is a member of `postcall_analyst` at any depth and is not
  a superuser. 0024 also filtered a reader whose current_user was the group itself (`SET ROLE
  postcall_analyst`); inside a SECURITY DEFINER function current_user is the function's owner, and it is
  not constant for a session, so that test is gone. It changes nothing for anyone but a superuser: a
  login that may SET ROLE to the group is a member of it, so its login is filtered already (the analyst
  who does `SET ROLE postcall_analyst` still sees its own tenant only); a superuser who does it now sees
  every tenant instead of none, as it can by RESET ROLE.
- Bindings by oid: analyst_roles.role_oid (bigint, NULL for bindings whose role is gone, backfilled from
  pg_roles) is set by `postcall analysts grant`, and the function accepts a binding only when its oid is
  the login's. A role dropped by hand and created again under the same name (by a grant in another
  database of the same server: roles are cluster-wide) is a new role with a new oid and inherits nothing.
- extraction_runs.tenant_id and evidence.tenant_id (NOT NULL; backfilled from the run's call and the
  evidence's claim; every writer sets them): the runs and evidence policies compare a column of their
  own row instead of asking calls / claims per row. No foreign key on either: the call key (runs) and
  the claim key (evidence) already tie the row to its tenant, each key is a lookup per inserted row on
  the pipeline's insert path (whose PostgreSQL CPU per call the project measures, bench/cpu/statements),
  and a wrong copy could only hide a row, never show it to another tenant: analytics_runs joins each run
  to its call and analytics_evidence each span to its claim, by INNER JOIN, and the call's and claim's
  own policies apply to those rows.
- Every policy named analyst_tenant (tenants, calls, review_events, extraction_runs, claims, evidence)
  becomes `postcall_analyst_tenant() IS NULL OR <tenant column> = postcall_analyst_tenant()` (tenants:
  id); the six rollup views (security barrier, 0011) get the same filter inside. The row views are
  unchanged (plain views over the tables, 0014/0015).
- `REVOKE CREATE ON SCHEMA public FROM PUBLIC` (and on the schema the tables live in): PostgreSQL 15 no
  longer grants it to every role in a new database, but a database upgraded from an earlier release
  keeps it, and a role that may create functions or operators in a schema on others' search path can
  shadow what they call. Refused when the migrating role does not own the schema: a notice then says so.
  The downgrade does not grant it back.

What an analyst can still learn, documented in docs/data-model.md: counts over every tenant where the
planner uses an index on a column other than the tenant (EXPLAIN ANALYZE's row counts on such a scan,
"Rows Removed by Filter"), table sizes (pg_stat_user_tables, estimates), and id sequences.

Both backends get the columns (SQLite by a table rebuild, its views and triggers set aside, as 0015);
the function, policies, views and schema privilege are PostgreSQL's. The upgrade writes every run and
every evidence row once (the backfill; the runs' user triggers are disabled for it inside the
migration's transaction: the tenant is no counter's or rollup's key). The downgrade puts 0024's policies
and rollup views back and drops the function and the columns.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 18:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.migrate import earlier_revision, sqlite_views_and_triggers_set_aside

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUPS = earlier_revision("0011_analytics_rollups.py")
_ROW_POLICIES = earlier_revision("0014_recent_events.py")
_0024 = earlier_revision("0024_analyst_members_any_depth.py")

ANALYST_GROUP: str = _ROW_POLICIES.ANALYST_GROUP
VIEW_OWNER: str = _ROW_POLICIES.VIEW_OWNER
TENANT_FUNCTION = "postcall_analyst_tenant"

# Table -> its tenant column, the one its policy compares.
TENANT_COLUMNS = {
    "tenants": "id",
    "calls": "tenant_id",
    "review_events": "tenant_id",
    "extraction_runs": "tenant_id",
    "claims": "tenant_id",
    "evidence": "tenant_id",
}
# The new tenant columns: table -> how its backfill finds the tenant (PostgreSQL UPDATE ... FROM).
NEW_TENANT_COLUMNS = {
    "extraction_runs": "UPDATE extraction_runs SET tenant_id = c.tenant_id FROM calls c "
                       "WHERE c.id = extraction_runs.call_id",
    "evidence": "UPDATE evidence SET tenant_id = cl.tenant_id FROM claims cl WHERE cl.id = evidence.claim_id",
}
SQLITE_BACKFILL = {
    "extraction_runs": "UPDATE extraction_runs SET tenant_id = "
                       "(SELECT c.tenant_id FROM calls c WHERE c.id = extraction_runs.call_id)",
    "evidence": "UPDATE evidence SET tenant_id = (SELECT cl.tenant_id FROM claims cl WHERE cl.id = evidence.claim_id)",
}


def own_rows(column: str) -> str:
    """The rows a reader may see: all (the function says NULL) or its tenant's. Planned as a constant."""
    return f"({TENANT_FUNCTION}() IS NULL OR {column} = {TENANT_FUNCTION}())"


def tenant_function(schema: str) -> str:
    """The function, with every name schema-qualified (`schema`: where analyst_roles is)."""
    eq = "OPERATOR(pg_catalog.=)"
    # Built from this module's constants and the schema's quoted name only.
    return f"""
CREATE OR REPLACE FUNCTION {schema}.{TENANT_FUNCTION}() RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, {schema}, pg_temp
AS $function$
DECLARE
    login_oid oid;
    login_is_superuser boolean;
    group_oid oid;
    bound_tenant integer;
BEGIN
    SELECT r.oid, r.rolsuper INTO login_oid, login_is_superuser
    FROM pg_catalog.pg_roles r WHERE r.rolname {eq} session_user;
    IF login_oid IS NULL OR login_is_superuser THEN
        RETURN NULL;  -- a superuser reads every tenant (pg_has_role calls it a member of every role)
    END IF;
    SELECT g.oid INTO group_oid FROM pg_catalog.pg_roles g WHERE g.rolname {eq} '{ANALYST_GROUP}';
    IF group_oid IS NULL OR NOT pg_catalog.pg_has_role(login_oid, group_oid, 'MEMBER') THEN
        RETURN NULL;  -- not an analyst (no group on this cluster: nobody is one)
    END IF;
    SELECT ar.tenant_id INTO bound_tenant FROM {schema}.analyst_roles ar
    WHERE ar.role_name {eq} CAST(session_user AS text) AND ar.role_oid {eq} CAST(login_oid AS bigint);
    RETURN COALESCE(bound_tenant, -1);  -- an analyst without a binding of its own role sees nothing
END
$function$
"""  # noqa: S608


def _schema() -> str:
    """The schema the tables live in, quoted (public on a default installation)."""
    return str(op.get_bind().scalar(sa.text("SELECT quote_ident(current_schema())")))


def _revoke_create(schema: str) -> str:
    schemas = sorted({"public", schema})
    revokes = "".join(
        f"    BEGIN\n        EXECUTE 'REVOKE CREATE ON SCHEMA {name} FROM PUBLIC';\n"
        f"    EXCEPTION WHEN insufficient_privilege OR invalid_schema_name THEN\n"
        f"        RAISE NOTICE 'CREATE on schema {name} not revoked from PUBLIC (%): revoke it as the schema''s "
        f"owner', SQLERRM;\n    END;\n"
        for name in schemas
    )
    return f"DO $$\nBEGIN\n{revokes}END\n$$"


def _policies(visible: dict[str, str]) -> None:
    for table, rows in visible.items():
        op.execute(f"DROP POLICY IF EXISTS analyst_tenant ON {table}")
        op.execute(_ROW_POLICIES.if_role_exists(
            VIEW_OWNER,
            f"CREATE POLICY analyst_tenant ON {table} AS RESTRICTIVE FOR SELECT TO {VIEW_OWNER} USING ({rows})",
        ))


def _rollup_views(filtered: dict[str, str]) -> None:
    for name, sql in filtered.items():
        # Same columns, owner and grants: CREATE OR REPLACE keeps them.
        op.execute(f"CREATE OR REPLACE VIEW {name} WITH (security_barrier = true) AS {sql}")


def _rollup_view(sql: str) -> str:
    """0011's rollup view with this revision's filter inside, before any GROUP BY."""
    body, _, group = sql.partition("GROUP BY")
    return f"{body} AND {own_rows('x.tenant_id')}" + (" GROUP BY" + group if group else "")


def _sqlite_columns(change: str) -> None:
    """SQLite: add (and backfill) or drop the two tenant columns (and on the way down the bindings' oid),
    rebuilding the tables with the schema's views and triggers set aside."""
    with sqlite_views_and_triggers_set_aside(op.get_bind()):
        for table, backfill in SQLITE_BACKFILL.items():
            if change == "add":
                with op.batch_alter_table(table, schema=None) as batch_op:
                    batch_op.add_column(sa.Column('tenant_id', sa.Integer(), nullable=True))
                op.execute(backfill)
                with op.batch_alter_table(table, schema=None) as batch_op:
                    batch_op.alter_column('tenant_id', existing_type=sa.Integer(), nullable=False)
            else:
                with op.batch_alter_table(table, schema=None) as batch_op:
                    batch_op.drop_column('tenant_id')
        if change == "drop":
            with op.batch_alter_table('analyst_roles', schema=None) as batch_op:
                batch_op.drop_column('role_oid')


def upgrade() -> None:
    op.add_column('analyst_roles', sa.Column('role_oid', sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        _sqlite_columns("add")
        return
    op.execute("UPDATE analyst_roles SET role_oid = r.oid FROM pg_catalog.pg_roles r "
               "WHERE r.rolname = analyst_roles.role_name")
    for table, backfill in NEW_TENANT_COLUMNS.items():
        op.add_column(table, sa.Column('tenant_id', sa.Integer(), nullable=True))
        # Inside this transaction only (ALTER TABLE holds the table's exclusive lock until the commit): the
        # runs' counter and rollup triggers would copy the whole table into transition tables to find
        # that no counted column changed.
        op.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        op.execute(backfill)
        op.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        op.alter_column(table, 'tenant_id', existing_type=sa.Integer(), nullable=False)
    schema = _schema()
    op.execute(tenant_function(schema))
    _policies({table: own_rows(column) for table, column in TENANT_COLUMNS.items()})
    _rollup_views({name: _rollup_view(sql) for name, sql in _ROLLUPS.ANALYST_VIEWS.items()})
    op.execute(_revoke_create(schema))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _sqlite_columns("drop")
    else:
        exemption = _0024.NOT_AN_ANALYST
        _policies({table: f"{exemption} OR {visible}" for table, visible in _0024.VISIBLE.items()})
        _rollup_views({name: _0024._rollup_view(sql, exemption) for name, sql in _ROLLUPS.ANALYST_VIEWS.items()})
        op.execute(f"DROP FUNCTION IF EXISTS {_schema()}.{TENANT_FUNCTION}()")
        for table in NEW_TENANT_COLUMNS:
            op.drop_column(table, 'tenant_id')
        op.drop_column('analyst_roles', 'role_oid')
