"""privacy: masked copies for the analyst views, the view_pii permission, per-tenant retention

claims.text_masked and evidence.quote_masked hold the text with card numbers, SSNs and bank
accounts masked (last four kept), computed when a row is written (app/privacy/mask.py); the
analyst views analytics_claims and analytics_evidence read them under the old column names, so
SQL access shows what a reviewer without the view_pii permission sees. Existing rows are masked
here. users.view_pii is the permission; tenants.retention_days the tenant's retention period.

The append-only triggers of review_events (0002) gain one exception for retention: an UPDATE that
sets `before` and `after` to NULL and changes nothing else (a purged call's events become
content-free). Every other UPDATE, and every DELETE, is still refused.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 02:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.privacy.mask import mask_text

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_BATCH = 1_000

APPEND_ONLY = "review_events is append-only"
_KEPT = ("id", "tenant_id", "call_id", "claim_id", "actor_user_id", "actor_name", "action", "created_at")
POSTGRESQL_SCRUB_ONLY = f"""
    CREATE OR REPLACE FUNCTION review_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.before IS NULL AND NEW.after IS NULL
           AND ({", ".join(f"NEW.{c}" for c in _KEPT)}) IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in _KEPT)}) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '{APPEND_ONLY}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
"""
POSTGRESQL_STRICT = f"""
    CREATE OR REPLACE FUNCTION review_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END
    $$
"""
SQLITE_SCRUB_ONLY = f"""
    CREATE TRIGGER review_events_no_update BEFORE UPDATE ON review_events
    WHEN NOT (NEW.before IS NULL AND NEW.after IS NULL AND {" AND ".join(f"NEW.{c} IS OLD.{c}" for c in _KEPT)})
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: UPDATE refused'); END
"""
SQLITE_STRICT = f"""
    CREATE TRIGGER review_events_no_update BEFORE UPDATE ON review_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: UPDATE refused'); END
"""


def _update_trigger(scrub_allowed: bool) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(POSTGRESQL_SCRUB_ONLY if scrub_allowed else POSTGRESQL_STRICT)
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS review_events_no_update")
        op.execute(SQLITE_SCRUB_ONLY if scrub_allowed else SQLITE_STRICT)

CLAIMS_VIEW = """
    SELECT cl.id AS claim_id, cl.call_id, t.slug AS tenant, c.external_id, c.agent_id,
           c.started_at, c.state AS call_state, cl.run_id, r.provider, r.model, r.prompt_version,
           cl.kind, {text} AS text, cl.owner, cl.due, cl.grounding_status, cl.grounding_reason,
           cl.review_status, cl.origin,
           CASE WHEN cl.run_id = (SELECT MAX(r2.id) FROM extraction_runs r2
                                  WHERE r2.call_id = cl.call_id AND r2.status = 'succeeded')
                THEN 1 ELSE 0 END AS is_current
    FROM claims cl JOIN calls c ON c.id = cl.call_id JOIN tenants t ON t.id = c.tenant_id
    LEFT JOIN extraction_runs r ON r.id = cl.run_id
"""
EVIDENCE_VIEW = """
    SELECT e.id AS evidence_id, e.claim_id, cl.call_id, t.slug AS tenant, e.cited_utterance,
           e.utterance_index, e.char_start, e.char_end, {quote} AS quote, e.status, e.score, e.reason
    FROM evidence e JOIN claims cl ON cl.id = e.claim_id JOIN calls c ON c.id = cl.call_id
    JOIN tenants t ON t.id = c.tenant_id
"""


def _create_views(text: str, quote: str) -> None:
    op.execute(f"CREATE VIEW analytics_claims AS {CLAIMS_VIEW.format(text=text)}")
    op.execute(f"CREATE VIEW analytics_evidence AS {EVIDENCE_VIEW.format(quote=quote)}")


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS analytics_claims")
    op.execute("DROP VIEW IF EXISTS analytics_evidence")


def _backfill(table: str, source: str, target: str) -> None:
    connection = op.get_bind()
    rows = sa.table(table, sa.column("id", sa.Integer), sa.column(source, sa.Text), sa.column(target, sa.Text))
    last_id = 0
    while True:
        batch = connection.execute(
            sa.select(rows.c.id, rows.c[source]).where(rows.c.id > last_id).order_by(rows.c.id).limit(BACKFILL_BATCH)
        ).all()
        if not batch:
            return
        connection.execute(
            rows.update().where(rows.c.id == sa.bindparam("row_id")).values({target: sa.bindparam("masked")}),
            [{"row_id": row_id, "masked": mask_text(value)} for row_id, value in batch],
        )
        last_id = batch[-1][0]


def upgrade() -> None:
    _drop_views()
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('view_pii', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_masked', sa.Text(), nullable=True))
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quote_masked', sa.Text(), nullable=True))
    _backfill("claims", "text", "text_masked")
    _backfill("evidence", "quote", "quote_masked")
    _create_views("cl.text_masked", "e.quote_masked")
    _update_trigger(scrub_allowed=True)


def downgrade() -> None:
    _update_trigger(scrub_allowed=False)
    _drop_views()
    # SQLite drops a column by rebuilding the table, which a view on that table forbids: the other
    # views are set aside and created again as they were.
    connection = op.get_bind()
    kept_views: list[tuple[str, str]] = []
    if connection.dialect.name == "sqlite":
        kept_views = [
            (name, sql)
            for name, sql in connection.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
        ]
        for name, _ in kept_views:
            op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_column('quote_masked')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_column('text_masked')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('view_pii')
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('retention_days')
    for _, sql in kept_views:
        op.execute(sql)
    _create_views("cl.text", "e.quote")
