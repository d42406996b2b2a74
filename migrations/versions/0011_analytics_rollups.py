"""analytics rollups: per-day summary tables kept by triggers, per-tenant analyst views of them

Aggregates over all of a tenant's current claims read millions of rows at a million calls; these tables
hold the same counts per tenant x UTC day x team x (model, prompt version, kind, ...), so the dashboard
and the analysts' aggregate questions read thousands of rows instead:

- rollup_calls: calls by state (day of the call's start, its hand-over when the start is unknown);
- rollup_claims: current claims by model, prompt version, kind, review status and grounding status;
- rollup_reasons: current call reasons by their lower-cased text (and masked text, for analysts);
- rollup_open_items: current action items not rejected, by owner, owner name, due date, review status and
  whether the call is closed (rejected or failed);
- rollup_agent_due: current dated action items not rejected, by agent and due date (no day: "overdue per
  agent" spans all calls);
- rollup_runs: runs by day of the run's start, provider, model, prompt version and status, with stage
  time sums and counts (averages ignore NULLs) and cost.

They are kept by database triggers on calls, claims and extraction_runs, in the writer's transaction,
so no writer (pipeline, review, purge, a DBA's UPDATE) can miss them. A change is applied as "subtract
what the old rows contributed, add what the new rows contribute": a claim counts only while its run is
its call's current run, so reprocessing moves the old run's claims out and the new run's in. A call's
delete subtracts everything it contributed before the cascade removes its runs and claims. A run's
provider, model and prompt version are written once (the claims rollups read them when claims change).

The tables are ledgers: a change INSERTs signed delta rows (`folded` false) and never updates a row, so
concurrent writers of the same tenant and day never wait for each other's row locks (an upsert into
one row per day would serialize them, and make a reconciler's SKIP LOCKED wait). Readers sum. A
periodic fold (app/rollups.py) replaces each key's rows by one summed row (`folded` true). Key columns
are NOT NULL so that rows of one key group together on both backends: a missing team, model, owner or
owner name is stored as '' and a missing due date as 9999-12-31; the analyst views turn them back into
NULL.

On PostgreSQL, claims and runs have statement-level triggers with transition tables (one insert per
rollup per statement, whatever the number of rows) and calls row-level ones that skip updates of columns
no rollup reads; SQLite uses row-level triggers. On PostgreSQL the rollups are exposed to
analysts through security-barrier views filtered per tenant like the other analyst views (0008).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 05:40:00
"""
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANALYST_GROUP = "postcall_analyst"
# The same filter as 0008's analyst views (copied: a migration is frozen at its revision).
TENANT_FILTER = f"""
    (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                 JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                 JOIN pg_catalog.pg_roles u ON u.oid = m.member
                 WHERE g.rolname = '{ANALYST_GROUP}' AND u.rolname = session_user)
     AND current_user <> '{ANALYST_GROUP}'
     OR {{tenant_id}} IN (SELECT ar.tenant_id FROM analyst_roles ar WHERE ar.role_name = session_user))
"""
NO_DATE = "9999-12-31"

# Columns of each base table the rollups read (SQLite's row triggers rebuild a one-row table from them).
CALL_COLUMNS = ("id", "tenant_id", "agent_id", "team", "started_at", "created_at", "state", "current_run_id")
CLAIM_COLUMNS = ("id", "run_id", "call_id", "kind", "text", "text_masked", "owner", "owner_name", "due_date",
                 "grounding_status", "review_status")
RUN_COLUMNS = ("id", "call_id", "provider", "model", "prompt_version", "status", "started_at", "cost_usd",
               "queue_wait_ms", "llm_ms", "verify_ms", "db_ms", "total_ms")
STAGES = ("queue_wait_ms", "llm_ms", "verify_ms", "db_ms", "total_ms")


@dataclass(frozen=True)
class Rollup:
    name: str
    base: str  # "calls", "claims" or "runs": the rows it counts
    keys: tuple[tuple[str, str, sa.types.TypeEngine], ...]  # column, expression over c/cl/r, type
    measures: tuple[tuple[str, str, sa.types.TypeEngine], ...]  # column, aggregate (signed), type
    where: str
    call_columns: tuple[str, ...]  # the call's columns it depends on (an update of others skips it)
    row_columns: tuple[str, ...] = ()  # the same for its claim or run


def _day(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"CAST(timezone('UTC', {column}) AS DATE)"
    return f"date({column})"


CALL_DAY = "COALESCE(c.started_at, c.created_at)"
TEXT = sa.String(200)


def rollups(dialect: str) -> list[Rollup]:
    call_day = ("day", _day(dialect, CALL_DAY), sa.Date())
    tenant = ("tenant_id", "c.tenant_id", sa.Integer())
    team = ("team", "COALESCE(c.team, '')", TEXT)
    model = ("model", "COALESCE(r.model, '')", TEXT)
    prompt = ("prompt_version", "COALESCE(r.prompt_version, '')", TEXT)
    due = ("due_date", f"COALESCE(cl.due_date, '{NO_DATE}')" if dialect == "sqlite"
           else f"COALESCE(cl.due_date, DATE '{NO_DATE}')", sa.Date())
    placed = ("tenant_id", "team", "started_at", "created_at", "current_run_id")
    count = (("{n}", "{sign} * COUNT(*)", sa.Integer()),)
    return [
        Rollup("rollup_calls", "calls", (tenant, call_day, team, ("state", "CAST(c.state AS TEXT)", sa.String(32))),
               (("calls", "{sign} * COUNT(*)", sa.Integer()),), "1 = 1",
               ("tenant_id", "team", "started_at", "created_at", "state")),
        Rollup("rollup_claims", "claims",
               (tenant, call_day, team, model, prompt, ("kind", "cl.kind", sa.String(20)),
                ("review_status", "CAST(cl.review_status AS TEXT)", sa.String(20)),
                ("grounding_status", "cl.grounding_status", sa.String(20))),
               tuple((m.replace("{n}", "claims"), a, t) for m, a, t in count), "1 = 1", placed,
               ("run_id", "call_id", "kind", "review_status", "grounding_status")),
        Rollup("rollup_reasons", "claims",
               (tenant, call_day, team, ("reason", "lower(cl.text)", sa.Text()),
                ("reason_masked", "lower(COALESCE(cl.text_masked, ''))", sa.Text())),
               (("claims", "{sign} * COUNT(*)", sa.Integer()),), "cl.kind = 'reason'", placed,
               ("run_id", "call_id", "kind", "text", "text_masked")),
        Rollup("rollup_open_items", "claims",
               (tenant, call_day, team, ("owner", "COALESCE(cl.owner, '')", sa.String(20)),
                ("owner_name", "COALESCE(cl.owner_name, '')", TEXT), due,
                ("review_status", "CAST(cl.review_status AS TEXT)", sa.String(20)),
                ("call_closed", "CASE WHEN CAST(c.state AS TEXT) IN ('rejected', 'failed') THEN 1 ELSE 0 END",
                 sa.Integer())),
               (("items", "{sign} * COUNT(*)", sa.Integer()),),
               "cl.kind = 'action_item' AND CAST(cl.review_status AS TEXT) <> 'rejected'",
               (*placed, "CAST({row}.state AS TEXT) IN ('rejected', 'failed')"),
               ("run_id", "call_id", "kind", "owner", "owner_name", "due_date", "review_status")),
        Rollup("rollup_agent_due", "claims",
               (tenant, ("agent_id", "COALESCE(c.agent_id, '')", TEXT), ("due_date", "cl.due_date", sa.Date())),
               (("items", "{sign} * COUNT(*)", sa.Integer()),),
               "cl.kind = 'action_item' AND CAST(cl.review_status AS TEXT) <> 'rejected' AND cl.due_date IS NOT NULL",
               ("tenant_id", "agent_id", "current_run_id"),
               ("run_id", "call_id", "kind", "due_date", "CAST({row}.review_status AS TEXT) = 'rejected'")),
        Rollup("rollup_runs", "runs",
               (tenant, ("day", _day(dialect, "r.started_at"), sa.Date()), team,
                ("provider", "r.provider", TEXT), model, prompt,
                ("status", "CAST(r.status AS TEXT)", sa.String(20))),
               (("runs", "{sign} * COUNT(*)", sa.Integer()),
                ("cost_usd", "{sign} * COALESCE(SUM(r.cost_usd), 0)", sa.Float()),
                *((f"{s}_sum", f"{{sign}} * COALESCE(SUM(r.{s}), 0)", sa.Float()) for s in STAGES),
                *((f"{s}_count", f"{{sign}} * COUNT(r.{s})", sa.Integer()) for s in STAGES)),
               "1 = 1", ("tenant_id", "team"), RUN_COLUMNS[1:]),
    ]


def delta(rollup: Rollup, sign: int, *, calls: str = "calls", claims: str = "claims",
          runs: str = "extraction_runs", folded: bool = False) -> str:
    """Add (sign 1) or subtract (-1) what the given rows contribute to `rollup`, as new ledger rows. Each
    source is a table name or a parenthesised SELECT."""
    if rollup.base == "calls":
        source = f"{calls} c"
    elif rollup.base == "claims":
        # A claim counts while its run is its call's current run.
        source = (f"{claims} cl JOIN {calls} c ON c.id = cl.call_id AND c.current_run_id = cl.run_id "
                  f"LEFT JOIN extraction_runs r ON r.id = cl.run_id")
    else:
        source = f"{runs} r JOIN {calls} c ON c.id = r.call_id"
    key_columns = ", ".join(k for k, _, _ in rollup.keys)
    key_exprs = ", ".join(e for _, e, _ in rollup.keys)
    measures = ", ".join(m for m, _, _ in rollup.measures)
    aggregates = ", ".join(a.format(sign=sign) for _, a, _ in rollup.measures)
    positions = ", ".join(str(i + 1) for i in range(len(rollup.keys)))
    flag = "1 = 1" if folded else "1 = 0"  # a boolean literal both backends store
    return (
        f"INSERT INTO {rollup.name} ({key_columns}, {measures}, folded) "
        f"SELECT {key_exprs}, {aggregates}, {flag} FROM {source} WHERE {rollup.where} "
        f"GROUP BY {positions}"
    )


def _changed(columns: Sequence[str], old: str, new: str, dialect: str) -> str:
    """A condition true when any of the columns (or expressions over `{row}`) differ between the rows."""
    operator = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"

    def side(column: str, row: str) -> str:
        return column.format(row=row) if "{row}" in column else f"{row}.{column}"

    return " OR ".join(f"({side(c, old)}) {operator} ({side(c, new)})" for c in columns)


def _row(alias: str, columns: Sequence[str]) -> str:
    """SQLite: the trigger's OLD or NEW row as a one-row table."""
    return "(SELECT " + ", ".join(f"{alias}.{c} AS {c}" for c in columns) + ")"


def _create_tables(dialect: str) -> None:
    for rollup in rollups(dialect):
        op.create_table(
            rollup.name,
            sa.Column("id", sa.Integer(), nullable=False),
            *(sa.Column(name, type_, nullable=False) for name, _, type_ in rollup.keys),
            *(sa.Column(name, type_, nullable=False, server_default="0") for name, _, type_ in rollup.measures),
            sa.Column("folded", sa.Boolean(), nullable=False, server_default=sa.false()),
            sa.PrimaryKeyConstraint("id", name=f"pk_{rollup.name}"),
        )
        # Readers select a tenant's days; the fold finds the keys that have new rows.
        first_keys = [name for name, _, _ in rollup.keys][:2]
        op.create_index(f"ix_{rollup.name}_{'_'.join(first_keys)}", rollup.name, first_keys)
        op.create_index(f"ix_{rollup.name}_unfolded", rollup.name, ["id"],
                        postgresql_where=sa.text("NOT folded"), sqlite_where=sa.text("NOT folded"))


def _postgresql_triggers() -> list[str]:
    all_rollups = rollups("postgresql")
    by_base = {base: [r for r in all_rollups if r.base == base] for base in ("calls", "claims", "runs")}
    statements: list[str] = []

    def function(name: str, body: list[str], timing: str, event: str, table: str, referencing: str,
                 level: str = "STATEMENT", returns: str = "NULL") -> None:
        statements.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
            + "".join(f"    {s};\n" for s in body)
            + f"    RETURN {returns};\nEND\n$$"
        )
        statements.append(
            f"CREATE TRIGGER {name} {timing} {event} ON {table} "
            + (referencing if "FOR EACH" in referencing else f"{referencing} FOR EACH {level}")
            + f" EXECUTE FUNCTION {name}()"
        )

    # Claims and runs are inserted and deleted in bulk: the statement's rows in or out at once.
    for base, table, source in (("claims", "claims", "claims"), ("runs", "extraction_runs", "runs")):
        function(f"rollups_{table}_insert", [delta(r, 1, **{source: "new_rows"}) for r in by_base[base]],
                 "AFTER", "INSERT", table, "REFERENCING NEW TABLE AS new_rows")
        function(f"rollups_{table}_delete", [delta(r, -1, **{source: "old_rows"}) for r in by_base[base]],
                 "AFTER", "DELETE", table, "REFERENCING OLD TABLE AS old_rows")
    function("rollups_extraction_runs_update",
             [s for r in by_base["runs"] for s in (delta(r, -1, runs="old_rows"), delta(r, 1, runs="new_rows"))],
             "AFTER", "UPDATE", "extraction_runs", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows")
    # A claim is updated by a review decision, one at a time: a row trigger that moves only the rollups
    # whose columns changed (a decision leaves the reasons alone).
    claim_body = [
        f"IF {_changed(r.row_columns, 'OLD', 'NEW', 'postgresql')} THEN\n"
        f"        {delta(r, -1, claims='(SELECT OLD.*)')};\n        {delta(r, 1, claims='(SELECT NEW.*)')};\n    END IF"
        for r in by_base["claims"]
    ]
    all_claim_columns = sorted({c for r in by_base["claims"] for c in r.row_columns if "{row}" not in c})
    function("rollups_claims_update", claim_body, "AFTER", "UPDATE", "claims",
             f"FOR EACH ROW WHEN ({_changed(all_claim_columns, 'OLD', 'NEW', 'postgresql')})", level="ROW")

    # Calls change one row at a time, often in columns no rollup reads (attempts, timestamps): a row
    # trigger whose WHEN skips those updates, and moves only the rollups whose columns changed. A call
    # without a current run has no claims to move.
    all_call_columns = sorted({c for r in all_rollups for c in r.call_columns if "{row}" not in c})
    update_body = []
    for rollup in all_rollups:
        moves = [delta(rollup, -1, calls="(SELECT OLD.*)"), delta(rollup, 1, calls="(SELECT NEW.*)")]
        guards = ["OLD.current_run_id IS NOT NULL", "NEW.current_run_id IS NOT NULL"]
        changed = _changed(rollup.call_columns, "OLD", "NEW", "postgresql")
        if rollup.base == "claims":
            update_body.append(f"IF {changed} THEN\n"
                               + "".join(f"        IF {g} THEN {m}; END IF;\n" for g, m in zip(guards, moves, strict=True))
                               + "    END IF")
        else:
            update_body.append(f"IF {changed} THEN\n" + "".join(f"        {m};\n" for m in moves) + "    END IF")
    function("rollups_calls_update", update_body, "AFTER", "UPDATE", "calls",
             f"FOR EACH ROW WHEN ({_changed(all_call_columns, 'OLD', 'NEW', 'postgresql')})", level="ROW",
             returns="NULL")
    function("rollups_calls_insert", [delta(r, 1, calls="(SELECT NEW.*)") for r in by_base["calls"]],
             "AFTER", "INSERT", "calls", "", level="ROW")
    # Before the row goes: the cascade that removes its runs and claims finds no call to subtract from.
    old_call = "(SELECT OLD.*)"
    function("rollups_calls_delete", [delta(r, -1, calls=old_call) for r in all_rollups],
             "BEFORE", "DELETE", "calls", "", level="ROW", returns="OLD")
    return statements


def _sqlite_triggers() -> list[str]:
    all_rollups = rollups("sqlite")
    statements: list[str] = []
    columns = {"calls": CALL_COLUMNS, "claims": CLAIM_COLUMNS, "runs": RUN_COLUMNS}
    tables = {"calls": "calls", "claims": "claims", "runs": "extraction_runs"}
    for rollup in all_rollups:
        for base in ("calls", rollup.base) if rollup.base != "calls" else ("calls",):
            table, cols = tables[base], columns[base]
            old, new = {base: _row("OLD", cols)}, {base: _row("NEW", cols)}
            name = f"rollups_{rollup.name}_{table}"
            when = _changed(rollup.call_columns if base == "calls" else rollup.row_columns, "OLD", "NEW", "sqlite")
            events = [
                ("AFTER UPDATE", f"WHEN {when}", [delta(rollup, -1, **old), delta(rollup, 1, **new)]),
                ("BEFORE DELETE" if base == "calls" else "AFTER DELETE", "", [delta(rollup, -1, **old)]),
            ]
            if base != "calls" or rollup.base == "calls":
                events.append(("AFTER INSERT", "", [delta(rollup, 1, **new)]))
            for event, condition, body in events:
                statements.append(
                    f"CREATE TRIGGER {name}_{event.split()[1].lower()} {event} ON {table} FOR EACH ROW {condition} "
                    "BEGIN " + "".join(f"{s}; " for s in body) + "END"
                )
    return statements


ANALYST_VIEWS = {
    "analytics_call_days": """
        SELECT t.slug AS tenant, x.day, NULLIF(x.team, '') AS team, x.state, x.calls
        FROM rollup_calls x JOIN tenants t ON t.id = x.tenant_id WHERE x.calls <> 0""",
    "analytics_claim_days": """
        SELECT t.slug AS tenant, x.day, NULLIF(x.team, '') AS team, NULLIF(x.model, '') AS model,
               NULLIF(x.prompt_version, '') AS prompt_version, x.kind, x.review_status, x.grounding_status, x.claims
        FROM rollup_claims x JOIN tenants t ON t.id = x.tenant_id WHERE x.claims <> 0""",
    "analytics_reason_days": """
        SELECT t.slug AS tenant, x.day, NULLIF(x.team, '') AS team, x.reason_masked AS reason, SUM(x.claims) AS claims
        FROM rollup_reasons x JOIN tenants t ON t.id = x.tenant_id WHERE x.claims <> 0
        GROUP BY t.slug, x.tenant_id, x.day, x.team, x.reason_masked""",
    "analytics_open_item_days": f"""
        SELECT t.slug AS tenant, x.day, NULLIF(x.team, '') AS team, NULLIF(x.owner, '') AS owner,
               NULLIF(x.owner_name, '') AS owner_name, NULLIF(x.due_date, '{NO_DATE}') AS due_date,
               x.review_status, x.call_closed, x.items
        FROM rollup_open_items x JOIN tenants t ON t.id = x.tenant_id WHERE x.items <> 0""",
    "analytics_agent_due": """
        SELECT t.slug AS tenant, NULLIF(x.agent_id, '') AS agent_id, x.due_date, x.items
        FROM rollup_agent_due x JOIN tenants t ON t.id = x.tenant_id WHERE x.items <> 0""",
    "analytics_run_days": f"""
        SELECT t.slug AS tenant, x.day, NULLIF(x.team, '') AS team, x.provider, NULLIF(x.model, '') AS model,
               NULLIF(x.prompt_version, '') AS prompt_version, x.status, x.runs, x.cost_usd,
               {", ".join(f"x.{s}_sum, x.{s}_count" for s in STAGES)}
        FROM rollup_runs x JOIN tenants t ON t.id = x.tenant_id WHERE x.runs <> 0""",
}
GRANT_TO_GROUP = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{ANALYST_GROUP}') THEN
        EXECUTE 'GRANT SELECT ON {", ".join(ANALYST_VIEWS)} TO {ANALYST_GROUP}';
    END IF;
END
$$
"""


def backfill(dialect: str) -> list[str]:
    """Every rollup from the base rows, already folded (one row per key)."""
    return [delta(r, 1, folded=True) for r in rollups(dialect)]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _create_tables(dialect)
    for statement in backfill(dialect):
        op.execute(statement)
    for statement in _postgresql_triggers() if dialect == "postgresql" else _sqlite_triggers():
        op.execute(statement)
    # Analysts ask for the decisions of a time window (tenant first would not serve it: through the
    # security-barrier view the tenant is a slug joined in, not a tenant id).
    op.create_index('ix_review_events_created_at', 'review_events', ['created_at'])
    for name, sql in ANALYST_VIEWS.items():
        if dialect == "postgresql":
            # The tenant filter goes inside, before any GROUP BY.
            body, _, group = sql.partition("GROUP BY")
            filtered = body + " AND " + TENANT_FILTER.format(tenant_id="x.tenant_id")
            sql = filtered + (" GROUP BY" + group if group else "")
            op.execute(f"CREATE VIEW {name} WITH (security_barrier = true) AS {sql}")
        else:
            op.execute(f"CREATE VIEW {name} AS {sql}")
    if dialect == "postgresql":
        op.execute(GRANT_TO_GROUP)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name in ANALYST_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index('ix_review_events_created_at', table_name='review_events')
    if dialect == "postgresql":
        for table, events in (("claims", ("insert", "delete", "update")),
                              ("extraction_runs", ("insert", "delete", "update")),
                              ("calls", ("insert", "delete", "update"))):
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS rollups_{table}_{event} ON {table}")
                op.execute(f"DROP FUNCTION IF EXISTS rollups_{table}_{event}()")
    else:
        triggers = op.get_bind().execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rollups_%'")
        ).scalars().all()
        for trigger in triggers:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for rollup in reversed(rollups(dialect)):
        op.drop_table(rollup.name)
