"""write cost: the PostgreSQL triggers that keep the counters (0009) and rollups (0011) do less per call

The counters and ledgers keep the same rows and the same sums; only the way the PostgreSQL triggers
write them changes (SQLite keeps the row triggers of 0009 and 0011 as they are):

- calls: one row trigger for an update moves the state counters (0009) and every rollup (0011) instead
  of two triggers; the calls-by-state ledger gets its two rows (old state out, new state in) from one
  INSERT of a two-row VALUES instead of two INSERT ... SELECT ... GROUP BY; the four claim rollups read
  the current run's claims once, in one statement (a materialized CTE feeding four INSERTs);
- extraction_runs: one row trigger for an update moves the run counters and the runs ledger, only when
  a column either reads changed (the 0011 statement trigger moved every updated run out and back in).
  When only the run's whole-call timings changed (db_ms and total_ms, written after the run's commit)
  it updates only their histogram columns instead of all of the run's counter columns; the runs ledger
  gets its two rows from one INSERT. A run's insert adds its counters and its ledger row from one row
  trigger (one run per statement) instead of a row trigger and a statement trigger's transition table;
- claims: the insert trigger first asks whether any inserted claim belongs to its call's current run
  (by the call's primary key).
  The pipeline inserts a run's claims before it makes the run current, so the four rollup statements,
  which would find nothing, are skipped; the call's update then counts the claims.

The trigger bodies are built from the frozen definitions of 0009 and 0011 (loaded from their files).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00
"""
import re
from collections.abc import Sequence
from typing import Any

from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COUNTERS = earlier_revision("0009_read_paths.py")
ROLLUPS = earlier_revision("0011_analytics_rollups.py")
# The stages whose timings are written after the run's commit, by an UPDATE of their columns alone.
LATE_STAGES = ("db", "total")


def _function(name: str, body: Sequence[str], returns: str = "NULL") -> str:
    return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
            + "".join(f"    {statement};\n" for statement in body) + f"    RETURN {returns};\nEND\n$$")


def _by_name() -> dict[str, Any]:
    return {rollup.name: rollup for rollup in ROLLUPS.rollups("postgresql")}


def _counter_moves(table: str, row_key: Any, values_of: Any) -> list[str]:
    """0009's counter update for a changed row: the row's difference when its key stays, else the old
    row out and the new row in. For a run whose only change is its late timings, just their columns."""
    counters, key = {"calls": ("call_counts", COUNTERS.CALL_KEY),
                     "extraction_runs": ("run_totals", COUNTERS.RUN_KEY)}[table]
    shard = f"pg_backend_pid() % {COUNTERS.SHARDS}"
    new_values, old_values = values_of("NEW"), values_of("OLD")
    difference = {c: f"({new_values[c]}) - ({old_values[c]})" for c in new_values}
    same_key = " AND ".join(f"{n} IS NOT DISTINCT FROM {o}" for n, o in
                            zip(row_key("NEW", "")[:-1], row_key("OLD", "")[:-1], strict=True))
    moves = [f"IF {same_key} THEN"]
    if table == "extraction_runs":
        late_columns = {COUNTERS.STAGE_COLUMNS[stage] for stage in LATE_STAGES}
        others = [c for c in COUNTERS.RUN_WATCHED if c not in late_columns]
        late = {c: v for c, v in difference.items() if c.startswith(tuple(f"{stage}_" for stage in LATE_STAGES))}
        moves = [f"IF {same_key} AND NOT ({COUNTERS._changed(others, 'IS DISTINCT FROM')}) THEN",
                 f"        {COUNTERS._bump(counters, key, row_key('NEW', shard), late)};",
                 f"    ELSIF {same_key} THEN"]
    return [
        *moves,
        f"        {COUNTERS._bump(counters, key, row_key('NEW', shard), difference)};",
        "    ELSE",
        f"        {COUNTERS._bump(counters, key, row_key('OLD', shard), COUNTERS._deltas(values_of, '-'))};",
        f"        {COUNTERS._bump(counters, key, row_key('NEW', shard), COUNTERS._deltas(values_of, '+'))};",
        "    END IF;",
    ]


def _row_measure(aggregate: str) -> str:
    """A rollup measure of one row: 0011's aggregate over a group ("{sign} * COUNT(*)", "... SUM(x) ...",
    "... COUNT(x)") written for a single row."""
    if aggregate == "{sign} * COUNT(*)":
        return "{sign}"
    summed = re.fullmatch(r"\{sign\} \* COALESCE\(SUM\((.+)\), 0\)", aggregate)
    if summed:
        return f"{{sign}} * COALESCE({summed[1]}, 0)"
    counted = re.fullmatch(r"\{sign\} \* COUNT\((.+)\)", aggregate)
    assert counted, aggregate
    return f"{{sign}} * CASE WHEN {counted[1]} IS NULL THEN 0 ELSE 1 END"


def _ledger_rows(rollup: Any, alias: str, columns: Sequence[str], rows: Sequence[tuple[int, str]],
                 joins: str = "") -> str:
    """One INSERT of a rollup's ledger rows for single base rows: each of `rows` is a sign and the trigger
    row (OLD or NEW) it counts, read as a table named `alias` (what the rollup's expressions call it)."""
    values = ", ".join(f"({sign}, " + ", ".join(f"{row}.{c}" for c in columns) + ")" for sign, row in rows)
    source = f"(VALUES {values}) {alias}(sign, {', '.join(columns)})"
    measures = ", ".join(_row_measure(a).format(sign=f"{alias}.sign") for _, a, _ in rollup.measures)
    return (f"INSERT INTO {rollup.name} ({', '.join(k for k, _, _ in rollup.keys)}, "
            f"{', '.join(m for m, _, _ in rollup.measures)}, folded) "
            f"SELECT {', '.join(e for _, e, _ in rollup.keys)}, {measures}, 1 = 0 FROM {source} {joins} "
            f"WHERE {rollup.where}")


MOVED = ((-1, "OLD"), (1, "NEW"))
RUN_CALL = "JOIN calls c ON c.id = r.call_id"


def _claim_moves(rollups: Sequence[Any], sign: int, call: str) -> str:
    """One statement for every claim-based rollup: the claims of `call`'s current run (OLD or NEW),
    read once, and one INSERT per rollup over them, which adds rows only when a call column that rollup
    reads changed (0011 ran a statement, and read the claims, per rollup that moves)."""
    current = f"SELECT * FROM claims WHERE run_id = {call}.current_run_id AND call_id = {call}.id"
    inserts = [
        ROLLUPS.delta(r, sign, claims="cl", calls=f"(SELECT {call}.*)")
        .replace(" WHERE ", f" WHERE ({ROLLUPS._changed(r.call_columns, 'OLD', 'NEW', 'postgresql')}) AND ", 1)
        for r in rollups
    ]
    named = "".join(f", moved_{i} AS ({statement})" for i, statement in enumerate(inserts[:-1]))
    return f"WITH cl AS MATERIALIZED ({current}){named} {inserts[-1]}"


def _calls_change() -> list[str]:
    rollups = _by_name()
    counted = COUNTERS._changed(COUNTERS.CALL_WATCHED, "IS DISTINCT FROM")
    body = [f"IF {counted} THEN\n    "
            + "\n    ".join(_counter_moves("calls", COUNTERS._call_key, COUNTERS._call_values)) + "\n    END IF"]
    calls_rollup = rollups["rollup_calls"]
    body.append(f"IF {ROLLUPS._changed(calls_rollup.call_columns, 'OLD', 'NEW', 'postgresql')} THEN\n"
                f"        {_ledger_rows(calls_rollup, 'c', ROLLUPS.CALL_COLUMNS, MOVED)};\n    END IF")
    # The runs ledger reads the call's tenant and team.
    runs_rollup = rollups["rollup_runs"]
    body.append(f"IF {ROLLUPS._changed(runs_rollup.call_columns, 'OLD', 'NEW', 'postgresql')} THEN\n"
                f"        {ROLLUPS.delta(runs_rollup, -1, calls='(SELECT OLD.*)')};\n"
                f"        {ROLLUPS.delta(runs_rollup, 1, calls='(SELECT NEW.*)')};\n    END IF")
    # The claim-based rollups, when a call column one of them reads changed (a call without a current run
    # has no claims to move).
    claim_rollups = [r for r in rollups.values() if r.base == "claims"]
    claim_columns = sorted({c for r in claim_rollups for c in r.call_columns})
    body.append(f"IF {ROLLUPS._changed(claim_columns, 'OLD', 'NEW', 'postgresql')} THEN\n"
                f"        IF OLD.current_run_id IS NOT NULL THEN {_claim_moves(claim_rollups, -1, 'OLD')}; END IF;\n"
                f"        IF NEW.current_run_id IS NOT NULL THEN {_claim_moves(claim_rollups, 1, 'NEW')}; END IF;\n"
                "    END IF")
    return body


def _watched_calls() -> list[str]:
    columns = set(COUNTERS.CALL_WATCHED)
    for rollup in _by_name().values():
        columns |= {c for c in rollup.call_columns if "{row}" not in c}
    return sorted(columns)


def _runs_change() -> list[str]:
    counted = COUNTERS._changed(COUNTERS.RUN_WATCHED, "IS DISTINCT FROM")
    body = [f"IF {counted} THEN\n    "
            + "\n    ".join(_counter_moves("extraction_runs", COUNTERS._run_key, COUNTERS._run_values))
            + "\n    END IF"]
    runs_rollup = _by_name()["rollup_runs"]
    body.append(f"IF {ROLLUPS._changed(runs_rollup.row_columns, 'OLD', 'NEW', 'postgresql')} THEN\n"
                f"        {_ledger_rows(runs_rollup, 'r', ROLLUPS.RUN_COLUMNS, MOVED, RUN_CALL)};\n"
                "    END IF")
    return body


def _watched_runs() -> list[str]:
    return sorted(set(COUNTERS.RUN_WATCHED) | set(_by_name()["rollup_runs"].row_columns))


def _runs_write() -> list[str]:
    """A run inserted: its counters and its ledger row. A run deleted: its counters (the runs ledger's
    statement trigger of 0011 subtracts deleted runs whose call is still there)."""
    shard = f"pg_backend_pid() % {COUNTERS.SHARDS}"
    key, values_of, row_key = COUNTERS.RUN_KEY, COUNTERS._run_values, COUNTERS._run_key
    runs_rollup = _by_name()["rollup_runs"]
    return [(
        "IF TG_OP = 'INSERT' THEN\n"
        f"        {COUNTERS._bump('run_totals', key, row_key('NEW', shard), COUNTERS._deltas(values_of, '+'))};\n"
        f"        {_ledger_rows(runs_rollup, 'r', ROLLUPS.RUN_COLUMNS, ((1, 'NEW'),), RUN_CALL)};\n"
        "    ELSE\n"
        f"        {COUNTERS._bump('run_totals', key, row_key('OLD', shard), COUNTERS._deltas(values_of, '-'))};\n"
        "    END IF"
    )]


def _claims_insert() -> list[str]:
    rollups = [r for r in _by_name().values() if r.base == "claims"]
    # Per inserted claim, its call's current run by primary key (a join's plan for the transition table
    # could scan calls).
    current = "SELECT 1 FROM new_rows cl WHERE cl.run_id = (SELECT c.current_run_id FROM calls c WHERE c.id = cl.call_id)"
    return [f"IF EXISTS ({current}) THEN\n"
            + "".join(f"        {ROLLUPS.delta(r, 1, claims='new_rows')};\n" for r in rollups) + "    END IF"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its row triggers
    op.execute("DROP TRIGGER call_counts_change ON calls")
    op.execute("DROP TRIGGER rollups_calls_update ON calls")
    op.execute("DROP FUNCTION rollups_calls_update()")
    op.execute("DROP TRIGGER run_totals_change ON extraction_runs")
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER rollups_extraction_runs_{event} ON extraction_runs")
        op.execute(f"DROP FUNCTION rollups_extraction_runs_{event}()")
    op.execute("DROP TRIGGER rollups_claims_insert ON claims")
    op.execute("DROP FUNCTION rollups_claims_insert()")

    watched = _watched_calls()
    op.execute(_function("postcall_calls_change", _calls_change()))
    op.execute(f"CREATE TRIGGER calls_ledgers_change AFTER UPDATE OF {', '.join(watched)} ON calls FOR EACH ROW "
               f"WHEN ({ROLLUPS._changed(watched, 'OLD', 'NEW', 'postgresql')}) "
               "EXECUTE FUNCTION postcall_calls_change()")
    watched = _watched_runs()
    op.execute(_function("postcall_runs_change", _runs_change()))
    op.execute(f"CREATE TRIGGER runs_ledgers_change AFTER UPDATE OF {', '.join(watched)} ON extraction_runs "
               f"FOR EACH ROW WHEN ({ROLLUPS._changed(watched, 'OLD', 'NEW', 'postgresql')}) "
               "EXECUTE FUNCTION postcall_runs_change()")
    op.execute("DROP TRIGGER run_totals_write ON extraction_runs")
    op.execute(_function("postcall_runs_write", _runs_write()))
    op.execute("CREATE TRIGGER runs_ledgers_write AFTER INSERT OR DELETE ON extraction_runs FOR EACH ROW "
               "EXECUTE FUNCTION postcall_runs_write()")
    op.execute(_function("rollups_claims_insert", _claims_insert()))
    op.execute("CREATE TRIGGER rollups_claims_insert AFTER INSERT ON claims REFERENCING NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION rollups_claims_insert()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION postcall_calls_change() CASCADE")
    op.execute("DROP FUNCTION postcall_runs_change() CASCADE")
    op.execute("DROP FUNCTION postcall_runs_write() CASCADE")
    op.execute("CREATE TRIGGER run_totals_write AFTER INSERT OR DELETE ON extraction_runs FOR EACH ROW "
               "EXECUTE FUNCTION postcall_count_extraction_runs()")
    op.execute("DROP FUNCTION rollups_claims_insert() CASCADE")
    for table, counters, *_, watched in COUNTERS.COUNTED:
        op.execute(f"CREATE TRIGGER {counters}_change AFTER UPDATE OF {', '.join(watched)} ON {table} "
                   f"FOR EACH ROW WHEN ({COUNTERS._changed(watched, 'IS DISTINCT FROM')}) "
                   f"EXECUTE FUNCTION postcall_count_{table}()")
    restored = ("rollups_calls_update", "rollups_extraction_runs_insert", "rollups_extraction_runs_update",
                "rollups_claims_insert")
    for statement in ROLLUPS._postgresql_triggers():
        if any(f"{name}()" in statement.split("\n", 1)[0] for name in restored):
            op.execute(statement)
