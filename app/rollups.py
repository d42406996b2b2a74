"""Folding the rollup ledgers: each key's delta rows replaced by one summed row.

The triggers (migrations 0011 and 0012) only ever INSERT into the rollup tables, so writers never wait on one
another; between folds a key may have many rows, which readers sum. `fold_rollups` keeps that number
small. On PostgreSQL one statement per table deletes the rows of every key that has unfolded rows and
inserts their sums: rows a concurrent writer adds meanwhile are not in its snapshot and stay for the
next fold, and two folds at once cannot count a row twice (each inserts the sums of the rows its own
DELETE removed). SQLite has one writer at a time, so there a fold is a plain insert-then-delete.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, delete, func, insert, or_, select, true, tuple_
from sqlalchemy.orm import Session

from app.models import AgentDueRollup, CallRollup, ClaimRollup, OpenItemRollup, ReasonRollup, RunRollup
from app.models.counters import STAGE_DURATION_COLUMNS

MEASURES: dict[Any, tuple[str, ...]] = {
    CallRollup: ("calls",),
    ClaimRollup: ("claims",),
    ReasonRollup: ("claims",),
    OpenItemRollup: ("items",),
    AgentDueRollup: ("items",),
    RunRollup: (
        "runs", "cost_usd",
        *(f"{s}_sum" for s in STAGE_DURATION_COLUMNS), *(f"{s}_count" for s in STAGE_DURATION_COLUMNS),
    ),
}


def _fold_postgresql(session: Session, table: Table, keys: list[str], measures: tuple[str, ...]) -> int:
    dirty = select(*(table.c[k] for k in keys)).where(~table.c.folded).distinct().cte("dirty")
    moved = (
        delete(table)
        .where(and_(*(table.c[k] == dirty.c[k] for k in keys)))
        .returning(*(table.c[c] for c in (*keys, *measures)))
        .cte("moved")
    )
    sums = [func.sum(moved.c[m]) for m in measures]
    kept = (
        insert(table)
        .from_select([*keys, *measures, "folded"],
                     select(*(moved.c[k] for k in keys), *sums, true())
                     .group_by(*(moved.c[k] for k in keys)).having(or_(*(s != 0 for s in sums))))
        .returning(table.c.id)
        .cte("kept")
    )
    removed = select(select(func.count()).select_from(moved).scalar_subquery()
                     - select(func.count()).select_from(kept).scalar_subquery())
    return int(session.execute(removed.add_cte(dirty, moved, kept)).scalar_one())


def _fold_sqlite(session: Session, table: Table, keys: list[str], measures: tuple[str, ...]) -> int:
    mark = session.execute(select(func.max(table.c.id))).scalar_one()
    if mark is None:
        return 0
    key_columns = [table.c[k] for k in keys]
    dirty = tuple_(*key_columns).in_(select(*key_columns).where(table.c.id <= mark, ~table.c.folded))
    sums = [func.sum(table.c[m]) for m in measures]
    session.execute(insert(table).from_select(
        [*keys, *measures, "folded"],
        select(*key_columns, *sums, true()).where(table.c.id <= mark, dirty)
        .group_by(*key_columns).having(or_(*(s != 0 for s in sums))),
    ))
    before = session.execute(select(func.count()).select_from(table)).scalar_one()
    session.execute(delete(table).where(table.c.id <= mark, dirty))
    return int(before - session.execute(select(func.count()).select_from(table)).scalar_one())


def fold_rollups(session: Session) -> int:
    """Fold every rollup ledger; returns how many rows fewer they hold. Flushes; never commits."""
    fold = _fold_postgresql if session.get_bind().dialect.name == "postgresql" else _fold_sqlite
    removed = 0
    for model, measures in MEASURES.items():
        table = model.__table__
        keys = [c.name for c in table.columns if c.name not in ("id", "folded", *measures)]
        removed += fold(session, table, keys, measures)
    session.flush()
    return removed
