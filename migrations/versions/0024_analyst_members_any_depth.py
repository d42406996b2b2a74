"""analyst members at any depth: the tenant filter applies to every login that holds the analyst group's
privileges, not only to its direct members (PostgreSQL only)

0008 to 0015 exempted a reader from the tenant filter unless its login was a *direct* member of
`postcall_analyst` (read from pg_auth_members, since pg_has_role() calls a superuser a member of every
role). A login granted an analyst role (`GRANT ana TO bob`), or a member of a team role that was itself
granted the group, inherits SELECT on the views, was no direct member, and so saw every tenant. Now a
login is filtered when it is a member of the group at any depth (pg_has_role ... 'MEMBER') and is not a
superuser; one not bound in analyst_roles sees nothing, as an unbound analyst always did (fail closed).
The exemption still follows the login (session_user), and `SET ROLE postcall_analyst` is still filtered.

Where the group does not exist (a cluster without CREATEROLE), nobody is a member: the rollup views stay
readable by their owner, as before.

The six row-level security policies (0014, claims' from 0015) and the six rollup views (0011) keep their
tenant tests; only the exemption changes. The downgrade puts the direct-member test back.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 16:00:00
"""
from collections.abc import Sequence

from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUPS = earlier_revision("0011_analytics_rollups.py")
_ROW_POLICIES = earlier_revision("0014_recent_events.py")
_CLAIMS_POLICY = earlier_revision("0015_claims_tenant.py")

ANALYST_GROUP: str = _ROW_POLICIES.ANALYST_GROUP
VIEW_OWNER: str = _ROW_POLICIES.VIEW_OWNER
OWN_TENANT: str = _ROW_POLICIES.OWN_TENANT

# The group by its oid, so that a cluster without it reads NULL (no member) instead of failing on the name.
NOT_AN_ANALYST = f"""
    ((NOT COALESCE(pg_catalog.pg_has_role(session_user,
                       (SELECT g.oid FROM pg_catalog.pg_roles g WHERE g.rolname = '{ANALYST_GROUP}'), 'MEMBER'),
                   false)
      OR (SELECT u.rolsuper FROM pg_catalog.pg_roles u WHERE u.rolname = session_user))
     AND current_user <> '{ANALYST_GROUP}')
"""
EXEMPTIONS = {"0023": _ROW_POLICIES.NOT_AN_ANALYST, "0024": NOT_AN_ANALYST}

# Table -> the rows of its tenant, as its policy has them at 0023.
VISIBLE = {**_ROW_POLICIES.ROW_POLICIES, "claims": _CLAIMS_POLICY.CLAIMS_VISIBLE["0015"]}


def _rollup_view(sql: str, exemption: str) -> str:
    """0011's filtered rollup view, with `exemption` as who is not filtered."""
    body, _, group = sql.partition("GROUP BY")
    own_tenant = OWN_TENANT.format(column="x.tenant_id")
    filtered = f"{body} AND ({exemption} OR {own_tenant})"
    return filtered + (" GROUP BY" + group if group else "")


def _filters(revision: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has one tenant for analysts and no roles
    exemption = EXEMPTIONS[revision]
    for table, visible in VISIBLE.items():
        op.execute(_ROW_POLICIES.if_role_exists(
            VIEW_OWNER, f"ALTER POLICY analyst_tenant ON {table} USING ({exemption} OR {visible})"))
    for name, sql in _ROLLUPS.ANALYST_VIEWS.items():
        # Same columns, owner and grants: CREATE OR REPLACE keeps them.
        op.execute(f"CREATE OR REPLACE VIEW {name} WITH (security_barrier = true) AS {_rollup_view(sql, exemption)}")


def upgrade() -> None:
    _filters("0024")


def downgrade() -> None:
    _filters("0023")
