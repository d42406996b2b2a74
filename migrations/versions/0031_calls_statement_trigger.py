"""calls statement trigger: on PostgreSQL a statement that updates calls moves their counters and ledgers once,
for all its rows together, instead of once per call

The pipeline changes its calls in groups (group commit: one UPDATE claims up to 32 calls, one UPDATE stores their
results), and a row trigger (calls_ledgers_change, 0012, rewritten by 0016, 0018 and 0020) ran its PL/pgSQL for
each of them: a counter UPDATE, a two-row ledger INSERT, and for a result a count of the run's claims and up to
four claim ledger INSERTs, per call. perf put that PL/pgSQL at a third of PostgreSQL's CPU under group commit.
The trigger is now a statement trigger over the statement's transition tables (old_calls, new_calls), each
call's row before and after side by side in a window over both (no join pairs them: PL/pgSQL keeps a plan
made for the first statement's size, and a join planned for one row went quadratic on a later bulk UPDATE in
the same session):

- one query asks which kinds of change the statement made (an update that changes no column the counters or
  ledgers read, e.g. a case note, writes nothing);
- the counters: one INSERT ... ON CONFLICT per statement, a row per tenant and team whose sums moved (old rows
  subtracted, new rows added; a call whose counted columns did not change adds nothing);
- the calls-by-state ledger: one INSERT, a row per key whose count moved (a group of calls claimed from
  `queued` to `processing` the same day writes two rows, where the row trigger wrote two per call);
- the runs ledger (a call's tenant or team changed) and the four claim ledgers (a call's current run, or a
  column they read, changed): one INSERT each, the changed calls' runs and claims looked up by key per call
  (LATERAL ... OFFSET 0: a join the planner may turn into a scan of claims, as 0016 found); a key is left
  out only when all its measures net to zero.

A run's insert likewise (one statement inserts a group's runs): a statement trigger (postcall_runs_inserted)
adds the runs' counters, one row per provider and model, and their ledger rows, one per key, each run's call
looked up by key; a run's delete keeps 0012's row trigger.

The sums are the same as the row triggers', key by key; the ledgers hold fewer rows (a key's rows of one
statement are summed into one). PostgreSQL does not allow a column list on an UPDATE trigger with transition
tables, so the calls trigger fires on every UPDATE of calls; its first query finds nothing to do for the
others. A call whose id changes (possible only without utterances, whose key does not cascade) has no partner
row: it is moved out under its old id and in under its new one, as the row trigger did. The row triggers'
functions stay for the downgrade, which puts 0020's and 0012's triggers back. SQLite keeps its row triggers.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05 13:40:00
"""
from collections.abc import Sequence
from typing import Any

from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0031'
down_revision: str | None = '0030'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = earlier_revision("0009_read_paths.py")
ROLLUPS = earlier_revision("0011_analytics_rollups.py")
WRITE_COST = earlier_revision("0012_write_cost.py")
SHARD = earlier_revision("0018_counter_shards.py").SHARD

FUNCTION = "postcall_calls_changed"
RUNS_FUNCTION = "postcall_runs_inserted"
# Every row of the statement, before (sign -1) and after (1), each call's two rows side by side in a window.
# No join pairs them: PL/pgSQL plans a statement once per session, with the transition tables' sizes of its
# first run, and a join planned for one row (a nested loop over both tables) went quadratic when the same
# session later updated thousands of calls; a window sorts them whatever their number.
ROWS = ("(SELECT -1 AS sign, o.* FROM old_calls o UNION ALL SELECT 1 AS sign, n.* FROM new_calls n) x "
        "WINDOW call AS (PARTITION BY x.id ORDER BY x.sign ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
# The kinds of change a statement can make, each a flag the function's first query sets.
FLAGS = ("counted", "calls_moved", "runs_moved", "claims_moved")


def _changed(columns: Sequence[str]) -> str:
    """True on both rows of a call whose value of any of the columns (or `{row}` expressions) differs between
    its row before and its row after, and on a row without a partner (a call whose id changed)."""
    def value(column: str) -> str:
        return column.format(row="x") if "{row}" in column else f"x.{column}"

    return " OR ".join([*(f"(first_value({value(c)}) OVER call IS DISTINCT FROM last_value({value(c)}) OVER call)"
                          for c in columns), "count(*) OVER call = 1"])


def _sides(condition: str) -> str:
    """The calls the statement changed in a way `condition` (`_changed`) names, as signed rows: the row before
    (sign -1) and the row after (1), each with every column of calls."""
    return f"(SELECT * FROM (SELECT x.*, {condition} AS moved FROM {ROWS}) changed WHERE changed.moved)"


def _rollups() -> dict[str, Any]:
    return {rollup.name: rollup for rollup in ROLLUPS.rollups("postgresql")}


def _claim_rollups() -> list[Any]:
    return [r for r in _rollups().values() if r.base == "claims"]


def _counters() -> str:
    """The counter rows of the changed calls' tenants and teams, each moved by its calls' sums at once."""
    values = COUNTERS._call_values("c")
    key = COUNTERS.CALL_KEY
    sums = {column: f"SUM(c.sign * ({value}))" for column, value in values.items()}
    moved = " OR ".join(f"{total} <> 0" for total in sums.values())
    updates = ", ".join(f"{column} = call_counts.{column} + excluded.{column}" for column in values)
    # Ordered by key: two statements of one backend's shard take their rows in the same order.
    return (f"INSERT INTO call_counts ({', '.join([*key, *values])}) "
            f"SELECT c.tenant_id, COALESCE(c.team, ''), {SHARD}, {', '.join(sums.values())} "
            f"FROM {_sides(_changed(COUNTERS.CALL_WATCHED))} c "
            f"GROUP BY c.tenant_id, COALESCE(c.team, '') HAVING {moved} ORDER BY 1, 2 "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")


def _ledger(rollup: Any, source: str, sign: str = "c.sign") -> str:
    """One INSERT of `rollup`'s ledger rows from `source` (call rows `c` signed by `sign`, with their claims `cl`
    or runs `r`): one row per key, its measures summed with their signs; keys whose measures all net to zero are
    left out."""
    keys = ", ".join(k for k, _, _ in rollup.keys)
    key_values = ", ".join(e for _, e, _ in rollup.keys)
    measures = ", ".join(m for m, _, _ in rollup.measures)
    sums = [f"SUM({WRITE_COST._row_measure(a).format(sign=sign)})" for _, a, _ in rollup.measures]
    positions = ", ".join(str(i + 1) for i in range(len(rollup.keys)))
    # A key is left out only when every measure nets to zero: two calls of one statement can swap keys (teams)
    # with runs of the same count but other costs and timings.
    moved = " OR ".join(f"{total} <> 0" for total in sums)
    return (f"INSERT INTO {rollup.name} ({keys}, {measures}, folded) "
            f"SELECT {key_values}, {', '.join(sums)}, 1 = 0 FROM {source} WHERE {rollup.where} "
            f"GROUP BY {positions} HAVING {moved}")


def _calls_ledger() -> str:
    rollup = _rollups()["rollup_calls"]
    return _ledger(rollup, f"{_sides(_changed(rollup.call_columns))} c")


def _runs_ledger() -> str:
    """A call's tenant or team changed: its runs, looked up by the call's key, move with it."""
    rollup = _rollups()["rollup_runs"]
    return _ledger(rollup, f"{_sides(_changed(rollup.call_columns))} c CROSS JOIN LATERAL "
                           "(SELECT * FROM extraction_runs r WHERE r.call_id = c.id OFFSET 0) r")


def _claims_ledger(rollup: Any) -> str:
    """The claims of each changed call's current run (before and after), by key; the run's model and prompt
    version only for the rollup that reads them."""
    source = (f"{_sides(_changed(rollup.call_columns))} c CROSS JOIN LATERAL "
              "(SELECT * FROM claims cl WHERE cl.run_id = c.current_run_id AND cl.call_id = c.id OFFSET 0) cl")
    if any("r." in expression for _, expression, _ in rollup.keys):
        source += (" LEFT JOIN LATERAL (SELECT * FROM extraction_runs r WHERE r.id = c.current_run_id OFFSET 0) r"
                   " ON true")
    return _ledger(rollup, source)


def _body() -> str:
    rollups = _rollups()
    claim_columns = sorted({c for r in _claim_rollups() for c in r.call_columns})
    found = {
        "counted": _changed(COUNTERS.CALL_WATCHED),
        "calls_moved": _changed(rollups["rollup_calls"].call_columns),
        "runs_moved": _changed(rollups["rollup_runs"].call_columns),
        "claims_moved": _changed(claim_columns),
    }
    flags = ", ".join(f"COALESCE(bool_or(changed.{flag}), false)" for flag in found)
    changes = ", ".join(f"{condition} AS {flag}" for flag, condition in found.items())
    blocks = [
        f"SELECT {flags} INTO {', '.join(FLAGS)} FROM (SELECT {changes} FROM {ROWS}) changed",
        f"IF counted THEN\n        {_counters()};\n    END IF",
        f"IF calls_moved THEN\n        {_calls_ledger()};\n    END IF",
        f"IF runs_moved THEN\n        {_runs_ledger()};\n    END IF",
        "IF claims_moved THEN\n" + "".join(f"        {_claims_ledger(r)};\n" for r in _claim_rollups()) + "    END IF",
    ]
    declarations = "".join(f"    {flag} boolean;\n" for flag in FLAGS)
    return (f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\nDECLARE\n{declarations}BEGIN\n"
            + "".join(f"    {block};\n" for block in blocks) + "    RETURN NULL;\nEND\n$$")


def _runs_inserted() -> str:
    """The runs a statement inserted: their counters, one row per provider and model, and their ledger rows, one
    per key, each run's call (its tenant and team) looked up by key."""
    values = COUNTERS._run_values("r")
    key = COUNTERS.RUN_KEY
    updates = ", ".join(f"{column} = run_totals.{column} + excluded.{column}" for column in values)
    counters = (f"INSERT INTO run_totals ({', '.join([*key, *values])}) "
                f"SELECT r.provider, r.model, {SHARD}, {', '.join(f'SUM({value})' for value in values.values())} "
                f"FROM new_runs r GROUP BY r.provider, r.model ORDER BY 1, 2 "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")
    ledger = _ledger(_rollups()["rollup_runs"],
                     "new_runs r CROSS JOIN LATERAL (SELECT * FROM calls c WHERE c.id = r.call_id OFFSET 0) c", "1")
    return (f"CREATE FUNCTION {RUNS_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
            f"    {counters};\n    {ledger};\n    RETURN NULL;\nEND\n$$")


STATEMENT_TRIGGER = (f"CREATE TRIGGER calls_ledgers_change AFTER UPDATE ON calls "
                     f"REFERENCING OLD TABLE AS old_calls NEW TABLE AS new_calls FOR EACH STATEMENT "
                     f"EXECUTE FUNCTION {FUNCTION}()")


# A run's delete keeps 0012's row trigger (its function's DELETE branch); inserts get a statement trigger.
RUNS_ROW_TRIGGER = ("CREATE TRIGGER runs_ledgers_write AFTER INSERT OR DELETE ON extraction_runs FOR EACH ROW "
                    "EXECUTE FUNCTION postcall_runs_write()")
RUNS_DELETE_TRIGGER = ("CREATE TRIGGER runs_ledgers_write AFTER DELETE ON extraction_runs FOR EACH ROW "
                       "EXECUTE FUNCTION postcall_runs_write()")
RUNS_INSERT_TRIGGER = (f"CREATE TRIGGER runs_ledgers_insert AFTER INSERT ON extraction_runs "
                       f"REFERENCING NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION {RUNS_FUNCTION}()")


def _row_trigger() -> str:
    """0020's trigger: a row trigger on the columns the counters and ledgers read, without a WHEN clause."""
    return (f"CREATE TRIGGER calls_ledgers_change AFTER UPDATE OF {', '.join(WRITE_COST._watched_calls())} "
            "ON calls FOR EACH ROW EXECUTE FUNCTION postcall_calls_change()")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its row triggers
    op.execute(_body())
    op.execute("DROP TRIGGER calls_ledgers_change ON calls")
    op.execute(STATEMENT_TRIGGER)
    op.execute(_runs_inserted())
    op.execute("DROP TRIGGER runs_ledgers_write ON extraction_runs")
    op.execute(RUNS_DELETE_TRIGGER)
    op.execute(RUNS_INSERT_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER calls_ledgers_change ON calls")
    op.execute(f"DROP FUNCTION {FUNCTION}()")
    op.execute(_row_trigger())
    op.execute("DROP TRIGGER runs_ledgers_insert ON extraction_runs")
    op.execute(f"DROP FUNCTION {RUNS_FUNCTION}()")
    op.execute("DROP TRIGGER runs_ledgers_write ON extraction_runs")
    op.execute(RUNS_ROW_TRIGGER)
