"""calls analyzed often: autovacuum analyzes calls once 0.2% of its rows changed, not 10%

A tenant the column statistics of calls do not list (one onboarded since the last ANALYZE) gets an
estimate of about one row for `tenant_id = <its id>`. A narrow index leading with tenant_id
(ix_calls_tenant_started, ix_calls_tenant_moment) then looks as cheap as a unique lookup, and PostgreSQL
takes it for

- the ingest's lookup of a call by (tenant, external id), and
- the foreign-key check of every claim inserted on calls (id, tenant_id),

scanning every call of the new tenant each time: its ingest and its processing slow down with each call
it stores. Measured next to 100,000 analyzed calls of one tenant, once a new one had 11,000: 2,416
buffers and 7.9 ms for the ingest's lookup, 6.4 ms for each claim's key check, against 5 buffers and under
0.1 ms for the established tenant's (bench/onboarding/run.py). That lasts until calls is analyzed again, which
autovacuum by default does once 10% of the table has changed: at a million calls, after 100,000 changed
rows, with the new tenant's calls scanned on every one of them.

Here calls is analyzed once 50 rows + 0.2% of the table have changed (PostgreSQL's default: 50 + 10%): at a
million calls after ~2,050 changed rows, i.e. a few hundred calls (a processed call changes its row three
or four times: insert, claim, result, a review), so a new tenant is known within a minute or two of
arriving (autovacuum looks once a minute by default). A table is never analyzed less often than before.
An ANALYZE reads a sample of 30,000 rows at the default statistics target, whatever the table's size:
well under a second, at most once a minute while calls flow. Nothing else changes: plans of established
tenants are the same, with fresher statistics.

SQLite: no autovacuum, nothing to change.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 23:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYZE_BASE_ROWS = 50  # PostgreSQL's default autovacuum_analyze_threshold
ANALYZE_SCALE_FACTOR = 0.002


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE calls SET (autovacuum_analyze_scale_factor = {ANALYZE_SCALE_FACTOR}, "
               f"autovacuum_analyze_threshold = {ANALYZE_BASE_ROWS})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE calls RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)")
