"""late timings: on PostgreSQL a run's whole-call timings (db_ms, total_ms), written after its commit, move
the counters and the runs ledger once per UPDATE statement instead of once per run

Workers write the late timings of many runs in one UPDATE (app/pipeline/timings.py). 0012's row trigger
ran its two statements (the run counters' histogram columns, two runs ledger rows) for each of them.

- runs_ledgers_change, the row trigger of 0012, no longer fires when db_ms and total_ms are the only
  columns it watches that changed: its column list and WHEN leave them out. A change of any other column
  it watches still runs its function (0016's body) for the whole row, timings included.
- runs_late_timings, a statement trigger with transition tables, takes the rest: the updated rows whose
  db_ms or total_ms changed and no other watched column did. One statement adds their histogram
  differences to run_totals (a row per provider and model, on the updating backend's shard, as 0016 did)
  and inserts one runs ledger row per ledger key (runs 0, the timing sums and counts' differences), where
  the row trigger inserted two rows per run. PostgreSQL allows no column list on a trigger with transition
  tables, so it fires for every UPDATE of extraction_runs; the pipeline writes no other, and for one whose
  rows change none of the timings the join of the two transition tables finds nothing to do.

The counters and the ledgers' sums stay what they were. SQLite keeps its row triggers; the downgrade puts
0012's row trigger back.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 13:45:00
"""
from collections.abc import Sequence

from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


WRITE_COST = earlier_revision("0012_write_cost.py")
COUNTERS = WRITE_COST.COUNTERS
ROLLUPS = WRITE_COST.ROLLUPS
LATE_COLUMNS = tuple(COUNTERS.STAGE_COLUMNS[stage] for stage in WRITE_COST.LATE_STAGES)
SHARD = f"pg_backend_pid() % {COUNTERS.SHARDS}"
FUNCTION = "postcall_runs_late_timings"


def _other_watched() -> list[str]:
    """The columns the row trigger watches, less the late timings."""
    return [c for c in WRITE_COST._watched_runs() if c not in LATE_COLUMNS]


def _changed(columns: Sequence[str], old: str, new: str) -> str:
    return ROLLUPS._changed(columns, old, new, "postgresql")


def _row_trigger(columns: Sequence[str]) -> str:
    return (f"CREATE TRIGGER runs_ledgers_change AFTER UPDATE OF {', '.join(columns)} ON extraction_runs "
            f"FOR EACH ROW WHEN ({_changed(columns, 'OLD', 'NEW')}) EXECUTE FUNCTION postcall_runs_change()")


def _late_statement() -> str:
    """One statement: the late-only rows (a materialized CTE over the transition tables), their counter
    differences grouped per provider and model, and their runs ledger rows grouped per ledger key."""
    moved = (f"SELECT o.id FROM old_rows o JOIN new_rows n ON n.id = o.id "
             f"WHERE ({_changed(LATE_COLUMNS, 'o', 'n')}) AND NOT ({_changed(_other_watched(), 'o', 'n')})")
    late = [c for c in COUNTERS._run_values("n") if c.startswith(tuple(f"{s}_" for s in WRITE_COST.LATE_STAGES))]
    new_values, old_values = COUNTERS._run_values("n"), COUNTERS._run_values("o")
    sums = ", ".join(f"SUM(({new_values[c]}) - ({old_values[c]}))" for c in late)
    updates = ", ".join(f"{c} = run_totals.{c} + excluded.{c}" for c in late)
    # Rows in key order, so two writers that bump the same counter rows take their locks in one order.
    totals = (f"INSERT INTO run_totals ({', '.join(COUNTERS.RUN_KEY)}, {', '.join(late)}) "
              f"SELECT n.provider, n.model, {SHARD}, {sums} FROM moved m JOIN old_rows o ON o.id = m.id "
              f"JOIN new_rows n ON n.id = m.id GROUP BY n.provider, n.model ORDER BY n.provider, n.model "
              f"ON CONFLICT ({', '.join(COUNTERS.RUN_KEY)}) DO UPDATE SET {updates}")
    runs_rollup = WRITE_COST._by_name()["rollup_runs"]
    columns = ", ".join(ROLLUPS.RUN_COLUMNS)
    signed = (f"SELECT -1 AS sign, {', '.join(f'o.{c}' for c in ROLLUPS.RUN_COLUMNS)} FROM moved m "
              f"JOIN old_rows o ON o.id = m.id UNION ALL "
              f"SELECT 1, {', '.join(f'n.{c}' for c in ROLLUPS.RUN_COLUMNS)} FROM moved m JOIN new_rows n ON n.id = m.id")
    measures = ", ".join(f"SUM({WRITE_COST._row_measure(a).format(sign='r.sign')})" for _, a, _ in runs_rollup.measures)
    positions = ", ".join(str(i + 1) for i in range(len(runs_rollup.keys)))
    # The call by key, as 0016 looks it up (a join may plan a sequential scan of calls while calls is small).
    ledger = (f"INSERT INTO rollup_runs ({', '.join(k for k, _, _ in runs_rollup.keys)}, "
              f"{', '.join(m for m, _, _ in runs_rollup.measures)}, folded) "
              f"SELECT {', '.join(e for _, e, _ in runs_rollup.keys)}, {measures}, 1 = 0 "
              f"FROM ({signed}) r(sign, {columns}) "
              f"CROSS JOIN LATERAL (SELECT * FROM calls c WHERE c.id = r.call_id OFFSET 0) c "
              f"WHERE {runs_rollup.where} GROUP BY {positions}")
    return f"WITH moved AS MATERIALIZED ({moved}), totals AS ({totals}) {ledger}"


def _late_function() -> str:
    return (f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
            f"    {_late_statement()};\n    RETURN NULL;\nEND\n$$")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its row triggers
    op.execute("DROP TRIGGER runs_ledgers_change ON extraction_runs")
    op.execute(_row_trigger(_other_watched()))
    op.execute(_late_function())
    op.execute(f"CREATE TRIGGER runs_late_timings AFTER UPDATE ON extraction_runs REFERENCING OLD TABLE AS old_rows "
               f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {FUNCTION}() CASCADE")
    op.execute("DROP TRIGGER runs_ledgers_change ON extraction_runs")
    op.execute(_row_trigger(WRITE_COST._watched_runs()))
