"""claims' tenant is their call's tenant: one foreign key on (call_id, tenant_id) to calls

Since 0015 a claim carries its call's tenant (claims.tenant_id), and the claims row policy lets an analyst
read the claims whose tenant_id is the analyst's tenant. Nothing in the database held that copy equal to
the call's tenant: every writer set it from the call, but a claim written under another tenant by a bug or
a hand-made INSERT would have shown in that other tenant's analyst views. Here the claim's key to its call
becomes a key to the call's (id, tenant_id):

- calls gets a unique index on (id, tenant_id) (its primary key makes the pair unique already; a foreign
  key needs a unique index of exactly its columns);
- claims' two keys, call_id -> calls and tenant_id -> tenants, become one, (call_id, tenant_id) ->
  calls (id, tenant_id), ON DELETE CASCADE as before and ON UPDATE CASCADE: a call moved to another tenant
  takes its claims along. The key to tenants is implied (a call's tenant exists).

Each claim inserted is now checked once against calls instead of once against calls and once against
tenants (5-7 lookups fewer per processed call).

The upgrade refuses to run while any claim names a tenant other than its call's, and says how many and
which: how such rows came to be is worth knowing before they are changed (the call's tenant is the one the
review app and the calls' row policy go by). The upgrade builds one index over calls and checks every
claim against it, holding back writes to calls and claims meanwhile: its time grows with those tables
(not measured at a million calls).

SQLite: the same keys (a unique index on calls; claims rebuilt for its keys, its views and triggers set
aside and created again around the rebuild, as 0015 does).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 16:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.migrate import sqlite_views_and_triggers_set_aside

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALL_TENANT_KEY = "ix_calls_id_tenant_id"
CLAIM_CALL_KEY = "fk_claims_call_id_calls"
CLAIM_TENANT_KEY = "fk_claims_tenant_id_tenants"

MISMATCHES = sa.text("""
    SELECT count(*), min(cl.id)
    FROM claims cl JOIN calls c ON c.id = cl.call_id
    WHERE cl.tenant_id <> c.tenant_id""")


def refuse_mismatches() -> None:
    count, first = op.get_bind().execute(MISMATCHES).one()
    if count:
        raise RuntimeError(
            f"{count} claims name a tenant other than their call's (the first: claim {first}); the claim's "
            "tenant must be its call's before migration 0019 can hold it so. Look into how they came to be, "
            "then set them from their calls (UPDATE claims SET tenant_id = calls.tenant_id FROM calls WHERE "
            "calls.id = claims.call_id AND claims.tenant_id <> calls.tenant_id) and upgrade again."
        )


def _rebuild_sqlite_claims(keys: str) -> None:
    """Rebuild claims on SQLite with its keys to calls and tenants as `keys` says ("one": the composite key;
    "two": 0015's), the schema's views and triggers set aside meanwhile."""
    with sqlite_views_and_triggers_set_aside(op.get_bind()):
        with op.batch_alter_table('claims', schema=None) as batch_op:
            batch_op.drop_constraint(CLAIM_CALL_KEY, type_='foreignkey')
            if keys == "one":
                batch_op.drop_constraint(CLAIM_TENANT_KEY, type_='foreignkey')
                batch_op.create_foreign_key(CLAIM_CALL_KEY, 'calls', ['call_id', 'tenant_id'], ['id', 'tenant_id'],
                                            ondelete='CASCADE', onupdate='CASCADE')
            else:
                batch_op.create_foreign_key(CLAIM_CALL_KEY, 'calls', ['call_id'], ['id'], ondelete='CASCADE')
                batch_op.create_foreign_key(CLAIM_TENANT_KEY, 'tenants', ['tenant_id'], ['id'], ondelete='CASCADE')


def upgrade() -> None:
    refuse_mismatches()
    op.create_index(CALL_TENANT_KEY, 'calls', ['id', 'tenant_id'], unique=True)
    if op.get_bind().dialect.name != "postgresql":
        _rebuild_sqlite_claims("one")
        return
    op.drop_constraint(CLAIM_TENANT_KEY, 'claims', type_='foreignkey')
    op.drop_constraint(CLAIM_CALL_KEY, 'claims', type_='foreignkey')
    op.create_foreign_key(CLAIM_CALL_KEY, 'claims', 'calls', ['call_id', 'tenant_id'], ['id', 'tenant_id'],
                          ondelete='CASCADE', onupdate='CASCADE')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _rebuild_sqlite_claims("two")
    else:
        op.drop_constraint(CLAIM_CALL_KEY, 'claims', type_='foreignkey')
        op.create_foreign_key(CLAIM_CALL_KEY, 'claims', 'calls', ['call_id'], ['id'], ondelete='CASCADE')
        op.create_foreign_key(CLAIM_TENANT_KEY, 'claims', 'tenants', ['tenant_id'], ['id'], ondelete='CASCADE')
    op.drop_index(CALL_TENANT_KEY, table_name='calls')
