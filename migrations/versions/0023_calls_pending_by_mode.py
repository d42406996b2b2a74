"""calls' state index knows the LLM mode: (state, llm_mode, state_changed_at), carrying attempts and the batch

`ix_calls_state_changed` (state, state_changed_at) served every lookup of pending calls, but three of
them also ask for the call's LLM mode, which it did not hold:

- the reconciler's stuck calls (`llm_mode = 'sync'`, older than the cutoff, oldest first),
- `/metrics`' oldest pending call per state (now of sync calls only: a batch-mode call waits for its
  batch for hours by design, and counted there it kept the "nothing consumes" alert firing), and
- the batch collector's calls waiting for a batch (`llm_mode = 'batch'`, queued, no batch yet).

Each read every pending call of the other mode from the table to drop it: with 100,000 batch-mode calls
waiting, every reconciler run and every scrape read them all (the oldest-pending gauge alone read all
102,050 pending calls for two minimums, 15 ms; with the mode, 0.1 ms). The new index leads with the
state and the mode, so each of them reads its own calls only; it carries `attempts` and `llm_batch_id`,
so the scrape's "most attempts of a pending call" and its batch counts read the index alone.

PostgreSQL also gets statistics of the (state, llm_mode) pairs (`CREATE STATISTICS ... (mcv)`). With
each column's statistics alone it multiplies their frequencies: where a third of the calls are pending
(nearly all batch-mode ones) and two thirds synchronous (nearly all processed), it took "pending and
synchronous" for a fifth of the table and read 300,000 calls in a sequential scan to find the 2,000
that are (28 ms per reconciler run, bench/pending; 0.02 ms through the index). With the pairs' own
frequencies it knows how few there are. The migration analyzes calls to fill them; autovacuum (often on
calls since 0022) keeps them fresh. The reconciler also writes its states and mode into the SQL
(app/db/types.py `sql_constant`), so a prepared statement's generic plan knows them too.

Same number of indexes, same entries: every write that touched the old one touches the new one and no
other (a state change is never a HOT update; the mode and the batch change with the state or only in
batch mode). PostgreSQL builds the new index before dropping the old one (a write lock on calls for the
build: 0.6 s for 500,000 calls here). SQLite: the same columns, without the carried ones.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 07:40:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STATISTICS = "calls_state_llm_mode"


def upgrade() -> None:
    op.create_index("ix_calls_state_mode_changed", "calls", ["state", "llm_mode", "state_changed_at"],
                    postgresql_include=["attempts", "llm_batch_id"])
    op.drop_index("ix_calls_state_changed", table_name="calls")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE STATISTICS {STATISTICS} (mcv) ON state, llm_mode FROM calls")
        # Filled now, not at autovacuum's next look: until then the planner would keep its misestimate.
        # ANALYZE reads a sample (30,000 rows by default), whatever the table's size.
        op.execute("ANALYZE calls")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
    op.create_index("ix_calls_state_changed", "calls", ["state", "state_changed_at"])
    op.drop_index("ix_calls_state_mode_changed", table_name="calls")
