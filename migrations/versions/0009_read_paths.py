"""read paths: review rank and flag count on the call, index for the review order, trigger-kept counters

- calls.review_rank: 0 needs_attention, 1 ready_for_review, 2 any other state (set with the state), and
  the index (tenant_id, review_rank, state_changed_at, id) the queue's order and keyset pages walk, and
  (tenant_id, agent_id, review_rank, state_changed_at, id) for an agent's own queue;
- calls.flagged_items: unverified items of the current run nobody decided on (set at persist and on
  each item decision), so the `flagged` filter is a column test instead of a subquery per call;
- ix_calls_tenant_moment (tenant_id, coalesce(started_at, created_at)), on PostgreSQL including the state:
  the queue's date filter and its per-state counts (index-only);
- ix_calls_tenant_state (tenant_id, state) becomes (tenant_id, state, state_changed_at, id): a queue
  filtered on one state is walked in order;
- call_counts and run_totals: counters kept by triggers on calls and extraction_runs, so /metrics and
  the queue's per-state counts read a few rows. Each row is keyed by a shard (PostgreSQL: the writing
  backend's pid modulo 16) and holds every counted value as a column, so a transition updates one row.

Everything is backfilled from the existing rows. The latency buckets and states below are frozen copies
of the application's at this revision (app/models/counters.py): the triggers bucket at write time.

On SQLite, a later migration that rebuilds `calls` or `extraction_runs` (batch mode) drops the
triggers with the table and must create them again (`create_triggers` below).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 05:30:00
"""
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALL_STATES = ("queued", "processing", "ready_for_review", "needs_attention", "failed", "approved", "rejected")
RUN_STATUSES = ("succeeded", "failed", "interrupted")
REVIEW_RANKS = {"needs_attention": 0, "ready_for_review": 1}
OTHER_REVIEW_RANK = 2
LATENCY_BUCKETS_MS = tuple(
    bound * 1000.0
    for bound in (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
)
STAGE_COLUMNS = {"queue_wait": "queue_wait_ms", "llm": "llm_ms", "verify": "verify_ms", "db": "db_ms",
                 "total": "total_ms"}
SHARDS = 16
CALL_KEY = ("tenant_id", "team", "shard")
RUN_KEY = ("provider", "model", "shard")
# The columns whose change can move a counter: the update triggers fire on these only.
CALL_WATCHED = ("tenant_id", "team", "state", "attempts", "flagged_items")
RUN_WATCHED = ("provider", "model", "status", "prompt_tokens", "completion_tokens", "cached_tokens", "llm_calls",
               "cost_usd", *STAGE_COLUMNS.values())


def _call_values(row: str) -> dict[str, str]:
    """Counter column -> its value for one calls row (`row` is NEW, OLD or a table alias)."""
    values = {f"calls_{s}": f"CASE WHEN {row}.state = '{s}' THEN 1 ELSE 0 END" for s in CALL_STATES}
    values |= {
        f"flagged_{s}": f"CASE WHEN {row}.state = '{s}' AND {row}.flagged_items > 0 THEN 1 ELSE 0 END"
        for s in CALL_STATES
    }
    values["retries"] = f"CASE WHEN {row}.attempts > 1 THEN {row}.attempts - 1 ELSE 0 END"
    return values


def _run_values(row: str) -> dict[str, str]:
    """Counter column -> its value for one extraction_runs row; the histogram counts succeeded runs."""
    values = {f"runs_{s}": f"CASE WHEN {row}.status = '{s}' THEN 1 ELSE 0 END" for s in RUN_STATUSES}
    for column in ("prompt_tokens", "completion_tokens", "cached_tokens"):
        values[column] = f"COALESCE({row}.{column}, 0)"
    values["llm_requests"] = f"COALESCE({row}.llm_calls, 0)"
    values["cost_usd"] = f"COALESCE({row}.cost_usd, 0.0)"
    succeeded = f"{row}.status = 'succeeded'"
    for stage, column in STAGE_COLUMNS.items():
        values[f"{stage}_count"] = f"CASE WHEN {succeeded} AND {row}.{column} IS NOT NULL THEN 1 ELSE 0 END"
        values[f"{stage}_sum_ms"] = f"CASE WHEN {succeeded} THEN COALESCE({row}.{column}, 0.0) ELSE 0.0 END"
        for i, bound in enumerate(LATENCY_BUCKETS_MS):
            values[f"{stage}_le_{i}"] = f"CASE WHEN {succeeded} AND {row}.{column} <= {bound!r} THEN 1 ELSE 0 END"
    return values


def _call_key(row: str, shard: str) -> list[str]:
    return [f"{row}.tenant_id", f"COALESCE({row}.team, '')", shard]


def _run_key(row: str, shard: str) -> list[str]:
    return [f"{row}.provider", f"{row}.model", shard]


def _upsert(table: str, key: Sequence[str], key_values: Sequence[str], values: dict[str, str]) -> str:
    columns = ", ".join([*key, *values])
    row = ", ".join([*key_values, *values.values()])
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in values)
    return f"INSERT INTO {table} ({columns}) VALUES ({row}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


def _bump(table: str, key: Sequence[str], key_values: Sequence[str], values: dict[str, str]) -> str:
    """PL/pgSQL: add to the counter row, inserting it the first time. An UPDATE first: the common case
    (the row exists) then skips the speculative insertion an INSERT ... ON CONFLICT always makes."""
    updates = ", ".join(f"{c} = {table}.{c} + ({v})" for c, v in values.items())
    where = " AND ".join(f"{k} = {v}" for k, v in zip(key, key_values, strict=True))
    return (f"UPDATE {table} SET {updates} WHERE {where};\n"
            f"        IF NOT FOUND THEN {_upsert(table, key, key_values, values)}; END IF")


def _deltas(values_of: Callable[[str], dict[str, str]], sign: str) -> dict[str, str]:
    """The counter changes of a row written (+, NEW) or removed (-, OLD)."""
    values = values_of("NEW" if sign == "+" else "OLD")
    return {c: v if sign == "+" else f"-({v})" for c, v in values.items()}


def _changed(columns: Sequence[str], distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in columns)


# (table counted, counter table, key columns, key values of a row, counter values of a row, watched columns)
COUNTED = (
    ("calls", "call_counts", CALL_KEY, _call_key, _call_values, CALL_WATCHED),
    ("extraction_runs", "run_totals", RUN_KEY, _run_key, _run_values, RUN_WATCHED),
)


def create_triggers(postgresql: bool) -> None:
    for table, counters, key, key_of, values_of, watched in COUNTED:
        if postgresql:
            shard = f"pg_backend_pid() % {SHARDS}"
            new_values, old_values = values_of("NEW"), values_of("OLD")
            difference = {c: f"({new_values[c]}) - ({old_values[c]})" for c in new_values}
            same_key = " AND ".join(f"{n} IS NOT DISTINCT FROM {o}"
                                    for n, o in zip(key_of("NEW", "")[:-1], key_of("OLD", "")[:-1], strict=True))
            op.execute(f"""
CREATE FUNCTION postcall_count_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_bump(counters, key, key_of("NEW", shard), _deltas(values_of, "+"))};
    ELSIF TG_OP = 'DELETE' THEN
        {_bump(counters, key, key_of("OLD", shard), _deltas(values_of, "-"))};
    ELSIF {same_key} THEN
        {_bump(counters, key, key_of("NEW", shard), difference)};
    ELSE
        {_bump(counters, key, key_of("OLD", shard), _deltas(values_of, "-"))};
        {_bump(counters, key, key_of("NEW", shard), _deltas(values_of, "+"))};
    END IF;
    RETURN NULL;
END
$$""")
            op.execute(f"CREATE TRIGGER {counters}_write AFTER INSERT OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION postcall_count_{table}()")
            op.execute(f"CREATE TRIGGER {counters}_change AFTER UPDATE OF {', '.join(watched)} ON {table} "
                       f"FOR EACH ROW WHEN ({_changed(watched, 'IS DISTINCT FROM')}) "
                       f"EXECUTE FUNCTION postcall_count_{table}()")
        else:
            op.execute(f"CREATE TRIGGER {counters}_insert AFTER INSERT ON {table} BEGIN "
                       f"{_upsert(counters, key, key_of('NEW', '0'), _deltas(values_of, '+'))}; END")
            op.execute(f"CREATE TRIGGER {counters}_delete AFTER DELETE ON {table} BEGIN "
                       f"{_upsert(counters, key, key_of('OLD', '0'), _deltas(values_of, '-'))}; END")
            op.execute(f"CREATE TRIGGER {counters}_change AFTER UPDATE OF {', '.join(watched)} ON {table} "
                       f"WHEN {_changed(watched, 'IS NOT')} BEGIN "
                       f"{_upsert(counters, key, key_of('OLD', '0'), _deltas(values_of, '-'))}; "
                       f"{_upsert(counters, key, key_of('NEW', '0'), _deltas(values_of, '+'))}; END")


def drop_triggers(postgresql: bool) -> None:
    for table, counters, *_ in COUNTED:
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS postcall_count_{table}() CASCADE")
        else:
            for suffix in ("insert", "delete", "change"):
                op.execute(f"DROP TRIGGER IF EXISTS {counters}_{suffix}")


def _counter_columns(names: Sequence[str], kinds: dict[str, type[sa.types.TypeEngine[object]]]) -> list[sa.Column]:
    return [sa.Column(n, kinds.get(n, sa.BigInteger)(), server_default='0', nullable=False) for n in names]


def _backfill(postgresql: bool) -> None:
    ranks = " ".join(f"WHEN '{state}' THEN {rank}" for state, rank in REVIEW_RANKS.items())
    op.execute(f"UPDATE calls SET review_rank = CASE state {ranks} ELSE {OTHER_REVIEW_RANK} END "
               f"WHERE state IN ({', '.join(repr(s) for s in REVIEW_RANKS)})")
    undecided = ("FROM claims cl WHERE cl.run_id = calls.current_run_id AND cl.grounding_status = 'ungrounded' "
                 "AND cl.review_status = 'pending'")
    op.execute(f"UPDATE calls SET flagged_items = (SELECT COUNT(*) {undecided}) WHERE EXISTS (SELECT 1 {undecided})")
    for table, counters, key, key_of, values_of, _ in COUNTED:
        values = values_of("r")
        keys = key_of("r", "0")
        sums = ", ".join(f"SUM({v})" for v in values.values())
        op.execute(f"INSERT INTO {counters} ({', '.join([*key, *values])}) "
                   f"SELECT {', '.join(keys)}, {sums} FROM {table} r GROUP BY {', '.join(keys[:-1])}")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_rank', sa.SmallInteger(), server_default=str(OTHER_REVIEW_RANK),
                                      nullable=False))
        batch_op.add_column(sa.Column('flagged_items', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_index('ix_calls_tenant_state')
        batch_op.create_index('ix_calls_tenant_state_waiting', ['tenant_id', 'state', 'state_changed_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_calls_review_order', ['tenant_id', 'review_rank', 'state_changed_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_calls_agent_review_order',
                              ['tenant_id', 'agent_id', 'review_rank', 'state_changed_at', 'id'], unique=False,
                              postgresql_include=['state'])
    op.create_index('ix_calls_tenant_moment', 'calls', ['tenant_id', sa.text('coalesce(started_at, created_at)')],
                    unique=False, postgresql_include=['started_at', 'created_at', 'state'])
    call_values = list(_call_values("r"))
    op.create_table(
        'call_counts',
        sa.Column('tenant_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('team', sa.String(length=200), nullable=False),
        sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
        *_counter_columns(call_values, {}),
        sa.PrimaryKeyConstraint(*CALL_KEY, name=op.f('pk_call_counts')),
    )
    run_values = list(_run_values("r"))
    floats = {c: sa.Float for c in run_values if c == "cost_usd" or c.endswith("_sum_ms")}
    op.create_table(
        'run_totals',
        sa.Column('provider', sa.String(length=50), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('shard', sa.SmallInteger(), autoincrement=False, nullable=False),
        *_counter_columns(run_values, floats),
        sa.PrimaryKeyConstraint(*RUN_KEY, name=op.f('pk_run_totals')),
    )
    _backfill(postgresql)
    create_triggers(postgresql)


def downgrade() -> None:
    connection = op.get_bind()
    postgresql = connection.dialect.name == "postgresql"
    drop_triggers(postgresql)
    op.drop_table('run_totals')
    op.drop_table('call_counts')
    op.drop_index('ix_calls_tenant_moment', table_name='calls')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_review_order')
        batch_op.drop_index('ix_calls_agent_review_order')
        batch_op.drop_index('ix_calls_tenant_state_waiting')
        batch_op.create_index('ix_calls_tenant_state', ['tenant_id', 'state'], unique=False)
    # ALTER TABLE ... DROP COLUMN on both backends: a batch-mode rebuild of `calls` on SQLite would drop the
    # table under enforced foreign keys and so cascade-delete every call's runs, claims and utterances.
    op.execute("ALTER TABLE calls DROP COLUMN flagged_items")
    op.execute("ALTER TABLE calls DROP COLUMN review_rank")
