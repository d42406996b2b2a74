"""calls trigger without WHEN: on PostgreSQL the row trigger that keeps the counters and ledgers of a call's
update (calls_ledgers_change, 0012) no longer has a WHEN clause; its function's own tests decide

PostgreSQL reads a trigger's WHEN clause from its stored text and compiles it once per statement that
fires the trigger (trigger.c, TriggerEnabled: stringToNode, then ExecPrepareQual, kept for that query
only). The pipeline updates one call per statement, twice per processed call, so each update paid for
parsing and compiling a nine-column condition (measured with callgrind: ~95,000 instructions, about 1.3%
of a processed call's backend instructions each time) only to find it true: every update the pipeline
makes changes the call's state. The function (0012, rewritten by 0016 and 0018) tests each of its blocks
against the columns that block reads, as the WHEN clause tested their union, so an update that changes
none of them runs the function and writes nothing; the counters and ledgers get the same rows. The
trigger keeps its column list (an UPDATE that sets none of those columns does not fire it).

SQLite keeps its row triggers. The downgrade puts 0012's trigger, WHEN clause included, back.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 19:30:00
"""
from collections.abc import Sequence

from alembic import op

from app.db.migrate import earlier_revision

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRITE_COST = earlier_revision("0012_write_cost.py")


def _trigger(when: bool) -> str:
    watched = WRITE_COST._watched_calls()
    condition = f"WHEN ({WRITE_COST.ROLLUPS._changed(watched, 'OLD', 'NEW', 'postgresql')}) " if when else ""
    return (f"CREATE TRIGGER calls_ledgers_change AFTER UPDATE OF {', '.join(watched)} ON calls FOR EACH ROW "
            f"{condition}EXECUTE FUNCTION postcall_calls_change()")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its row triggers
    op.execute("DROP TRIGGER calls_ledgers_change ON calls")
    op.execute(_trigger(when=False))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER calls_ledgers_change ON calls")
    op.execute(_trigger(when=True))
