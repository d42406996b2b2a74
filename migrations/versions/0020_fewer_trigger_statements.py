"""fewer trigger statements: on PostgreSQL the triggers of a processed call run 10 statements instead of 14

The counters (0009) and ledgers (0011) get the same rows with the same values; only postcall_calls_change
and postcall_runs_write (as 0016 wrote them, their shard as 0018 rewrote it) change. Each statement a
PL/pgSQL body runs costs the server its plan's revalidation, an executor start and end and a snapshot
whatever it does. Statements that always run together become one (data-modifying CTEs):

- a state change that keeps the call's tenant and team (every change the pipeline makes) moves the call
  counters and writes the calls-by-state ledger rows in one statement: the ledger INSERT, and the counter
  UPDATE whose RETURNING tells whether the counter row existed (if not, 0009's INSERT ... ON CONFLICT
  follows, as after 0016's UPDATE that found nothing). Any other change runs 0016's two statements;
- when the call's current run moves (a processed call), the run's claims are read once (a materialized
  CTE) for the claims and reasons ledgers, the two rollups every call with claims has, and the same
  statement counts what the open-items and agent-due ledgers would take, whose INSERTs stay conditional
  (a call rarely has dated or open action items). 0016 counted first, then ran one INSERT per rollup
  with claims to move. A call without claims, or without a reason, now runs an INSERT that adds no row;
- a run inserted succeeded without its late timings (how the pipeline writes one) moves its counters and
  writes its runs ledger row in one statement, the same way as a call's state change.

Every other branch is 0016's. SQLite keeps its row triggers; the downgrade puts both functions back as
they were at 0019.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 19:00:00
"""
from collections.abc import Sequence
from typing import Any

from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


WRITE_COST = earlier_revision("0012_write_cost.py")
TRIGGER_WORK = earlier_revision("0016_trigger_work.py")
COUNTER_SHARDS = earlier_revision("0018_counter_shards.py")
COUNTERS = WRITE_COST.COUNTERS
ROLLUPS = WRITE_COST.ROLLUPS
CALLS_FUNCTION = "postcall_calls_change"
RUNS_FUNCTION = "postcall_runs_write"
# The claim rollups every processed call with claims moves, read from one CTE of the run's claims.
TOGETHER = ("rollup_claims", "rollup_reasons")


def _changed(columns: Sequence[str]) -> str:
    return ROLLUPS._changed(columns, "OLD", "NEW", "postgresql")


def _resharded(definition: str) -> str:
    """A function generated from 0016's definitions, with 0018's shard expression."""
    assert COUNTER_SHARDS.EARLIER_SHARD in definition, definition
    return definition.replace(COUNTER_SHARDS.EARLIER_SHARD, COUNTER_SHARDS.SHARD)


def _bump_with(ledger: str, bump: str) -> str:
    """A ledger INSERT and a counter bump (0009's UPDATE, then its INSERT ... ON CONFLICT if the UPDATE
    found no row) as one statement, and the INSERT when needed."""
    update, upsert = bump.strip().removesuffix(";").removesuffix("; END IF").split(";\n        IF NOT FOUND THEN ")
    assert update.startswith("UPDATE ") and upsert.startswith("INSERT INTO "), bump
    return (f"WITH moved AS ({ledger}), bumped AS ({update} RETURNING 1) SELECT COUNT(*) INTO counter_rows FROM bumped;\n"
            f"        IF counter_rows = 0 THEN {upsert}; END IF")


def _counters_and_calls_ledger(counted: str, calls_ledger: str) -> str:
    """0016's counter block and calls-ledger block, preceded by one statement for both when the call
    keeps its key (tenant, team) and both have something to write."""
    moves = WRITE_COST._counter_moves("calls", COUNTERS._call_key, COUNTERS._call_values)
    same_key, bump = moves[0], moves[1]
    assert same_key.startswith("IF ") and same_key.endswith(" THEN"), same_key
    calls_rollup = WRITE_COST._by_name()["rollup_calls"]
    ledger = WRITE_COST._ledger_rows(calls_rollup, "c", ROLLUPS.CALL_COLUMNS, WRITE_COST.MOVED)
    watched = COUNTERS._changed(COUNTERS.CALL_WATCHED, "IS DISTINCT FROM")
    calls_changed = _changed(calls_rollup.call_columns)
    assert counted.startswith(f"IF {watched} THEN"), counted
    assert calls_ledger == f"IF {calls_changed} THEN\n        {ledger};\n    END IF", calls_ledger
    return (f"IF ({watched}) AND ({calls_changed}) AND {same_key[3:-5]} THEN\n"
            f"        {_bump_with(ledger, bump)};\n"
            f"    ELSE\n    {counted};\n    {calls_ledger};\n    END IF")


def _claim_rollups() -> dict[str, Any]:
    return {name: r for name, r in WRITE_COST._by_name().items() if r.base == "claims"}


def _claim_moves(sign: int, call: str) -> str:
    """The claim rollups of `call`'s (OLD or NEW) current run: the claims and reasons ledgers with the
    count of what the two others take in one statement when their call columns changed (else the count
    alone, as 0016 did), then the others' INSERTs when they have claims to move."""
    rollups = _claim_rollups()
    together = [rollups[name] for name in TOGETHER]
    others = [r for name, r in rollups.items() if name not in TOGETHER]
    assert len({r.call_columns for r in together}) == 1, "the rollups moved together read the same call columns"
    counted = ", ".join(f"COUNT(*) FILTER (WHERE {r.where})" for r in others)
    into = ", ".join(f"{r.name}_claims" for r in others)
    current = f"SELECT * FROM claims WHERE run_id = {call}.current_run_id AND call_id = {call}.id"
    inserts = "".join(f", moved_{r.name} AS ({ROLLUPS.delta(r, sign, claims='cl', calls=f'(SELECT {call}.*)')})"
                      for r in together)
    moves = [f"IF {_changed(together[0].call_columns)} THEN\n"
             f"                WITH cl AS MATERIALIZED ({current}){inserts} SELECT {counted} INTO {into} FROM cl;\n"
             f"            ELSE\n"
             f"                SELECT {counted} INTO {into} FROM claims cl "
             f"WHERE cl.run_id = {call}.current_run_id AND cl.call_id = {call}.id;\n"
             f"            END IF"]
    for r in others:
        moves.append(f"IF {r.name}_claims > 0 AND ({_changed(r.call_columns)}) THEN "
                     f"{ROLLUPS.delta(r, sign, calls=f'(SELECT {call}.*)')}; END IF")
    return ";\n            ".join(moves)


def _calls_change() -> list[str]:
    """0016's body with its first two blocks (counters, calls ledger) and its claim moves rewritten."""
    counted, calls_ledger, runs_ledger, _ = TRIGGER_WORK._calls_change()
    claim_columns = sorted({c for r in _claim_rollups().values() for c in r.call_columns})
    return [_counters_and_calls_ledger(counted, calls_ledger), runs_ledger,
            f"IF {_changed(claim_columns)} THEN\n"
            f"        IF OLD.current_run_id IS NOT NULL THEN\n            {_claim_moves(-1, 'OLD')};\n        END IF;\n"
            f"        IF NEW.current_run_id IS NOT NULL THEN\n            {_claim_moves(1, 'NEW')};\n        END IF;\n"
            "    END IF"]


def _declarations() -> list[str]:
    others = [name for name in _claim_rollups() if name not in TOGETHER]
    return ["counter_rows bigint", *(f"{name}_claims bigint" for name in others)]


def _runs_write() -> list[str]:
    """0016's body, preceded by one statement for the counters and the ledger row of a run inserted
    succeeded without its late timings."""
    (written,) = TRIGGER_WORK._runs_write()
    succeeded = f"NEW.status = '{TRIGGER_WORK.SUCCEEDED}' AND " + " AND ".join(
        f"NEW.{COUNTERS.STAGE_COLUMNS[s]} IS NULL" for s in WRITE_COST.LATE_STAGES)
    bump = TRIGGER_WORK._succeeded_insert()
    runs_rollup = WRITE_COST._by_name()["rollup_runs"]
    ledger = WRITE_COST._ledger_rows(runs_rollup, "r", ROLLUPS.RUN_COLUMNS, ((1, "NEW"),), WRITE_COST.RUN_CALL)
    assert written.startswith(f"IF TG_OP = 'INSERT' THEN\n        IF {succeeded} THEN\n            {bump};\n"), written
    assert f"END IF;\n        {ledger};\n    ELSE\n" in written, written
    return [f"IF TG_OP = 'INSERT' AND {succeeded} THEN\n        {_bump_with(ledger, bump)};\n"
            f"    ELSE\n    {written};\n    END IF"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its row triggers
    op.execute(_resharded(TRIGGER_WORK._function(CALLS_FUNCTION, _calls_change(), _declarations())))
    op.execute(_resharded(TRIGGER_WORK._function(RUNS_FUNCTION, _runs_write(), ["counter_rows bigint"])))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # 0016's functions (their local variables differ, which CREATE OR REPLACE allows: same signature).
    op.execute(_resharded(TRIGGER_WORK._function(CALLS_FUNCTION, TRIGGER_WORK._calls_change(),
                                                 TRIGGER_WORK._claim_counts())))
    op.execute(_resharded(TRIGGER_WORK._function(RUNS_FUNCTION, TRIGGER_WORK._runs_write())))
