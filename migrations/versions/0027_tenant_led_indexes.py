"""analyst-visible time and date indexes lead with the tenant: EXPLAIN ANALYZE no longer counts other
tenants' rows in a range an analyst asks for

The hole (PostgreSQL). An analyst's leakproof condition (`<`, `>=`, `=` on a date or a timestamp) may be
an index condition ahead of the row policy's tenant test. On an index whose first column is the analyst's
column, the scan returns every tenant's rows in the range and the policy's `tenant_id = 5` drops the
others as a filter: `EXPLAIN (ANALYZE) SELECT count(*) FROM analytics_claims WHERE due_date = '...'`
showed them as `Rows Removed by Filter` (or as the `actual rows` of a Bitmap Index Scan). Narrowing the
range, an analyst read how many items of all tenants fall due on each day, how many calls started, runs
ran and decisions were taken in any window, down to the second.

The fix: each such index is replaced by one led by the tenant, `(tenant_id, <column>)`. An analyst's
tenant is a constant in the plan since 0025, so the scan reads its own tenant's range only: the index
condition is `tenant_id = 5 AND <column> ...` and no other tenant's entry is ever read. Same columns per
entry plus an integer, same number of indexes or fewer, so no write costs more:

- claims: `ix_claims_due_date` (due_date, partial: dated items only) -> `ix_claims_tenant_due_date`
  (tenant_id, due_date), the same partial predicate; `ix_claims_created_at` -> `ix_claims_tenant_created`;
- extraction_runs: `ix_extraction_runs_started_at` -> `ix_extraction_runs_tenant_started` (the runs'
  tenant column is 0025's);
- review_events: `ix_review_events_created_at` -> `ix_review_events_tenant_created`, and
  `ix_review_events_tenant_id` is dropped, its column the new index's first (one index fewer per decision);
- calls: `ix_calls_started_at` is dropped: `ix_calls_tenant_started` (tenant_id, started_at, 0008) is
  the tenant-led one already;
- calls: `ix_calls_agent_id` is dropped as well: the same leak by agent id (other tenants' agent ids, by
  narrowing prefixes), and every query by agent names the tenant, which `ix_calls_agent_review_order`
  (tenant_id, agent_id, ...) serves.

No application query filters or orders these columns across tenants (the retention purge goes by tenant
through `ix_calls_tenant_moment`, the reconciler and /metrics by state through
`ix_calls_state_mode_changed`, the queue and the export by tenant, the dashboard reads the rollups). A
reader of the views who sees every tenant (their owner, a DBA) names a tenant by its slug, which the
planner does not know as an id: a window on one tenant is a nested loop from the tenant into the new index
(cookbook 3 and 9 got faster), but "the newest 50 of a tenant, no window" now reads the tenant's rows and
sorts them instead of walking a time index backwards (150,000 calls, 1.13M claims, the 90% tenant: claims
1.8 -> 882 ms, runs 1.6 -> 230 ms, calls 1.3 -> 79 ms, decisions 0.9 -> 89 ms; as its analyst 1-2 ms before
and after), and cookbook 1 (one agent's items, through analytics_claims, whose tenant is the claim's) reads
calls whole (4.8 -> 41 ms). Such a reader may read the tables with `tenant_id = n` instead.

Other indexes on those tables whose first column is not the tenant remain (primary keys, the foreign-key
look-ups by call, run and claim id, calls by state for the reconciler): what they still tell is listed in
docs/data-model.md.

PostgreSQL builds each new index before dropping the old one, in the migration's transaction as every
migration here does (CREATE INDEX, not CONCURRENTLY: alembic runs the revision in one transaction), so
writes to the table wait for the build: the whole upgrade took 2.5 s at 150,000 calls (1.13M claims,
227,000 decisions). SQLite: the same indexes.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 23:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0027'
down_revision: str | None = '0026'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_DUE_DATE = "due_date IS NOT NULL"

# (table, old index, its columns, new index or None (the tenant-led one exists already), partial predicate)
REPLACED: tuple[tuple[str, str, list[str], str | None, str | None], ...] = (
    ("claims", "ix_claims_due_date", ["due_date"], "ix_claims_tenant_due_date", HAS_DUE_DATE),
    ("claims", "ix_claims_created_at", ["created_at"], "ix_claims_tenant_created", None),
    ("extraction_runs", "ix_extraction_runs_started_at", ["started_at"], "ix_extraction_runs_tenant_started", None),
    ("review_events", "ix_review_events_created_at", ["created_at"], "ix_review_events_tenant_created", None),
    # Its first column is the new index's: a tenant's decisions (and the tenant's deletion) are found there.
    ("review_events", "ix_review_events_tenant_id", ["tenant_id"], None, None),
    ("calls", "ix_calls_started_at", ["started_at"], None, None),  # ix_calls_tenant_started
    ("calls", "ix_calls_agent_id", ["agent_id"], None, None),  # ix_calls_agent_review_order
)


def _create(name: str, table: str, columns: list[str], where: str | None) -> None:
    predicate = sa.text(where) if where else None
    op.create_index(name, table, columns, postgresql_where=predicate, sqlite_where=predicate)


def upgrade() -> None:
    for table, old, columns, new, where in REPLACED:
        if new is not None:
            _create(new, table, ["tenant_id", *columns], where)
        op.drop_index(old, table_name=table)


def downgrade() -> None:
    for table, old, columns, new, where in reversed(REPLACED):
        _create(old, table, columns, where)
        if new is not None:
            op.drop_index(new, table_name=table)
