"""trigger work: the PostgreSQL triggers of 0012 run fewer and smaller statements per processed call, and
the calls batch index takes only the calls in a batch

The counters (0009) and ledgers (0011) keep the same rows and the same sums, and the triggers stay as 0012
made them; only the bodies of three of its functions change (SQLite keeps its row triggers):

- postcall_calls_change: when a call's current run changes (a processed call), one query counts the run's
  claims that each claim rollup takes, and only the rollups with claims to move get an INSERT. 0012 ran a
  four-INSERT statement every time; PostgreSQL sets up each INSERT (its plan nodes, expressions and
  indexes) whether or not it has rows, and a call rarely has dated or open action items.
- postcall_runs_write: a run inserted as succeeded without its whole-call timings (how the pipeline writes
  one: db_ms and total_ms follow after the commit) updates only the run counters that it can change, with
  its status known: 59 counter columns instead of all 90, each without the status test.
- postcall_runs_change: the late update of those timings on a succeeded run likewise updates its
  histogram columns without the status test; the run's two ledger rows find their call by key (0012's
  join of the two rows to calls became a sequential scan of calls while calls is small).

Every other case (another status, timings at insert, a key change, a delete) runs 0012's statements. The
function bodies are built from the frozen definitions of 0009, 0011 and 0012 (loaded from their files);
the downgrade puts 0012's functions back.

On both backends, ix_calls_llm_batch_id becomes partial (llm_batch_id IS NOT NULL): its readers look up
a batch's calls (an equality or IS NOT NULL), never the calls outside a batch, which are nearly all of them
in synchronous mode; those no longer get an entry on each insert and each state change (a call's state
is indexed, so its updates are never HOT and write every index).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 11:15:00
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


WRITE_COST = earlier_revision("0012_write_cost.py")
COUNTERS = WRITE_COST.COUNTERS
ROLLUPS = WRITE_COST.ROLLUPS
SUCCEEDED = "succeeded"
SHARD = f"pg_backend_pid() % {COUNTERS.SHARDS}"


def _function(name: str, body: Sequence[str], declare: Sequence[str] = ()) -> str:
    declarations = "DECLARE\n" + "".join(f"    {d};\n" for d in declare) if declare else ""
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n{declarations}BEGIN\n"
            + "".join(f"    {statement};\n" for statement in body) + "    RETURN NULL;\nEND\n$$")


def _claim_rollups() -> list[Any]:
    return [r for r in WRITE_COST._by_name().values() if r.base == "claims"]


def _claim_counts() -> list[str]:
    """One variable per claim rollup: how many of the current run's claims it takes."""
    return [f"{r.name}_claims bigint" for r in _claim_rollups()]


def _claim_moves(sign: int, call: str) -> str:
    """The claim rollups of `call`'s (OLD or NEW) current run: the run's claims counted per rollup by one
    query, then an INSERT for each rollup that takes some of them and reads a call column that changed."""
    rollups = _claim_rollups()
    counted = ", ".join(f"COUNT(*) FILTER (WHERE {r.where})" for r in rollups)
    into = ", ".join(f"{r.name}_claims" for r in rollups)
    moves = [f"SELECT {counted} INTO {into} FROM claims cl "
             f"WHERE cl.run_id = {call}.current_run_id AND cl.call_id = {call}.id"]
    for r in rollups:
        changed = ROLLUPS._changed(r.call_columns, "OLD", "NEW", "postgresql")
        moves.append(f"IF {r.name}_claims > 0 AND ({changed}) THEN "
                     f"{ROLLUPS.delta(r, sign, calls=f'(SELECT {call}.*)')}; END IF")
    return ";\n            ".join(moves)


def _calls_change() -> list[str]:
    """0012's body with its claim moves (the last part) replaced."""
    *others, _ = WRITE_COST._calls_change()
    claim_columns = sorted({c for r in _claim_rollups() for c in r.call_columns})
    return [*others,
            f"IF {ROLLUPS._changed(claim_columns, 'OLD', 'NEW', 'postgresql')} THEN\n"
            f"        IF OLD.current_run_id IS NOT NULL THEN\n            {_claim_moves(-1, 'OLD')};\n        END IF;\n"
            f"        IF NEW.current_run_id IS NOT NULL THEN\n            {_claim_moves(1, 'NEW')};\n        END IF;\n"
            "    END IF"]


def _late_columns() -> list[str]:
    """The run counter columns of the stages whose timings are written after the run's commit."""
    return [c for c in COUNTERS._run_values("NEW") if c.startswith(tuple(f"{s}_" for s in WRITE_COST.LATE_STAGES))]


def _as_succeeded(values: dict[str, str], *rows: str) -> dict[str, str]:
    """Counter values of rows known to be succeeded: the status tests become TRUE (which the planner folds
    away) and the counters of the other statuses, always 0, are left out."""
    known: dict[str, str] = {}
    for column, value in values.items():
        if column.startswith("runs_") and column != f"runs_{SUCCEEDED}":
            continue
        for row in rows:
            value = value.replace(f"{row}.status = '{SUCCEEDED}'", "TRUE")
        known[column] = value
    return known


def _succeeded_insert() -> str:
    """The counters of a run inserted succeeded without its late timings: its late stage columns add 0."""
    late = _late_columns()
    values = {c: v for c, v in _as_succeeded(COUNTERS._run_values("NEW"), "NEW").items() if c not in late}
    return COUNTERS._bump("run_totals", COUNTERS.RUN_KEY, COUNTERS._run_key("NEW", SHARD), values)


def _runs_write() -> list[str]:
    """0012's body, with its insert's counter update split: the succeeded run without late timings first."""
    (original,) = WRITE_COST._runs_write()
    full = COUNTERS._bump("run_totals", COUNTERS.RUN_KEY, COUNTERS._run_key("NEW", SHARD),
                          COUNTERS._deltas(COUNTERS._run_values, "+"))
    inserted = f"IF TG_OP = 'INSERT' THEN\n        {full};\n"
    assert original.startswith(inserted), original
    late_unset = " AND ".join(f"NEW.{COUNTERS.STAGE_COLUMNS[s]} IS NULL" for s in WRITE_COST.LATE_STAGES)
    return ["IF TG_OP = 'INSERT' THEN\n"
            f"        IF NEW.status = '{SUCCEEDED}' AND {late_unset} THEN\n"
            f"            {_succeeded_insert()};\n"
            f"        ELSE\n            {full};\n        END IF;\n"
            + original[len(inserted):]]


def _runs_change() -> list[str]:
    """0012's body, with a first branch for the late timings of a succeeded run (its status unchanged)."""
    counted, *others = WRITE_COST._runs_change()
    moves = WRITE_COST._counter_moves("extraction_runs", COUNTERS._run_key, COUNTERS._run_values)
    watched = COUNTERS._changed(COUNTERS.RUN_WATCHED, "IS DISTINCT FROM")
    assert counted == f"IF {watched} THEN\n    " + "\n    ".join(moves) + "\n    END IF", counted
    late_only = moves[0]  # "IF <same key> AND NOT (<another counted column changed>) THEN"
    assert late_only.startswith("IF ") and late_only.endswith(" THEN"), late_only
    new_values, old_values = COUNTERS._run_values("NEW"), COUNTERS._run_values("OLD")
    difference = _as_succeeded({c: f"({new_values[c]}) - ({old_values[c]})" for c in _late_columns()}, "NEW", "OLD")
    bump = COUNTERS._bump("run_totals", COUNTERS.RUN_KEY, COUNTERS._run_key("NEW", SHARD), difference)
    moves = [f"IF NEW.status = '{SUCCEEDED}' AND OLD.status = '{SUCCEEDED}' AND {late_only[3:]}",
             f"        {bump};", f"    ELS{late_only}", *moves[1:]]
    return [f"IF {watched} THEN\n    " + "\n    ".join(moves) + "\n    END IF", _runs_ledger(others)]


def _runs_ledger(others: list[str]) -> str:
    """0012's runs ledger rows of an updated run (old out, new in), each with its call looked up by key.
    0012 joined the two-row VALUES to calls, which PostgreSQL plans as a hash join over a sequential scan
    of calls while calls is small (a new deployment, a benchmark's database); a lookup per row is an index
    scan whatever the size."""
    runs_rollup = WRITE_COST._by_name()["rollup_runs"]
    changed = ROLLUPS._changed(runs_rollup.row_columns, "OLD", "NEW", "postgresql")
    joined = WRITE_COST._ledger_rows(runs_rollup, "r", ROLLUPS.RUN_COLUMNS, WRITE_COST.MOVED, WRITE_COST.RUN_CALL)
    assert others == [f"IF {changed} THEN\n        {joined};\n    END IF"], others
    # OFFSET 0 keeps the subquery from being pulled up into a join the planner may again hash.
    by_key = "CROSS JOIN LATERAL (SELECT * FROM calls c WHERE c.id = r.call_id OFFSET 0) c"
    ledger = WRITE_COST._ledger_rows(runs_rollup, "r", ROLLUPS.RUN_COLUMNS, WRITE_COST.MOVED, by_key)
    return f"IF {changed} THEN\n        {ledger};\n    END IF"


def _batch_index(partial: bool) -> None:
    op.drop_index("ix_calls_llm_batch_id", table_name="calls")
    where = sa.text("llm_batch_id IS NOT NULL") if partial else None
    op.create_index("ix_calls_llm_batch_id", "calls", ["llm_batch_id"], postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    _batch_index(partial=True)
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its row triggers
    op.execute(_function("postcall_calls_change", _calls_change(), _claim_counts()))
    op.execute(_function("postcall_runs_write", _runs_write()))
    op.execute(_function("postcall_runs_change", _runs_change()))


def downgrade() -> None:
    _batch_index(partial=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, body in (("postcall_calls_change", WRITE_COST._calls_change()),
                       ("postcall_runs_write", WRITE_COST._runs_write()),
                       ("postcall_runs_change", WRITE_COST._runs_change())):
        op.execute(WRITE_COST._function(name, body).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
