"""One side of bench/retention/run.py: the retention purge (or, with `--retry`, `postcall retry`'s
requeue; with `--reconcile`, one reconciler pass over stuck calls) of this code tree (the working
directory), timed on a fresh PostgreSQL database of `--calls` expired (or failed, or stuck) calls.
Works with both forms of each: the chunk-committing one (a session factory) and the one-transaction
form before it (a session)."""

from __future__ import annotations

import argparse
import inspect
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models.tables import utcnow
from app.pipeline import reconcile
from app.pipeline.retention import purge_expired
from tests.support.call_rows import insert_call_rows
from tests.support.services import temporary_pg_database


def seconds_for(calls: int, *, retry: bool = False, reconcile_stuck: bool = False) -> dict[str, Any]:
    with temporary_pg_database() as url:
        upgrade(url)
        engine = create_db_engine(url)
        try:
            with engine.begin() as connection:
                tenant_id = connection.execute(text(
                    "INSERT INTO tenants (slug, retention_days, created_at) VALUES ('expiring', 1, now()) RETURNING id"
                )).scalar_one()
            insert_call_rows(engine, tenant_id, "expired-", calls)
            factory = make_session_factory(engine)
            if retry:
                return _requeue_seconds(engine, factory, calls)
            if reconcile_stuck:
                return _reconcile_seconds(engine, factory, calls)
            # Every call is older than a day by then.
            later = utcnow() + timedelta(days=calls // 1440 + 2)
            one_transaction = next(iter(inspect.signature(purge_expired).parameters)) == "session"
            started = time.perf_counter()
            if one_transaction:
                with unit_of_work(factory) as session:
                    (report,) = purge_expired(session, default_days=0, now=later)
            else:
                (report,) = purge_expired(factory, default_days=0, now=later)
            seconds = time.perf_counter() - started
            with engine.connect() as connection:
                left = connection.execute(text("SELECT count(*) FROM calls")).scalar_one()
            return {"calls": calls, "done": report.calls, "left": left, "seconds": seconds,
                    "one_transaction": one_transaction}
        finally:
            engine.dispose()


def _requeue_seconds(engine: Any, factory: Any, calls: int) -> dict[str, Any]:
    """Every call failed, then requeued as `postcall retry` does: in chunks where this tree has them."""
    for _ in range(0, calls, 5_000):  # as insert_call_rows, 5,000 per transaction
        with engine.begin() as connection:
            connection.execute(text("UPDATE calls SET state = 'failed' WHERE id IN "
                                    "(SELECT id FROM calls WHERE state = 'queued' LIMIT 5000)"))
    chunked = hasattr(reconcile, "requeue_in_chunks")
    started = time.perf_counter()
    if chunked:
        requeued = reconcile.requeue_in_chunks(factory)
    else:
        with unit_of_work(factory) as session:
            requeued = reconcile.requeue_calls(session)
    seconds = time.perf_counter() - started
    with engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM calls WHERE state = 'failed'")).scalar_one()
    return {"calls": calls, "done": len(requeued), "left": left, "seconds": seconds,
            "one_transaction": not chunked}


def _reconcile_seconds(engine: Any, factory: Any, calls: int) -> dict[str, Any]:
    """Every call stuck in queued for two hours (as after Redis lost its queue), then ONE reconciler pass,
    as the beat's task or `postcall reconcile` runs it (the broker left out: the hand-over only counts)."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE calls SET state_changed_at = now() - interval '2 hours'"))
    whole = hasattr(reconcile, "reconcile_stuck_calls")
    started = time.perf_counter()
    if whole:
        requeued = reconcile.reconcile_stuck_calls(factory, stuck_after_seconds=1200,
                                                   hand_over=lambda call_ids: True).requeued
    else:  # one pass was one claim of at most RECONCILE_BATCH calls
        with unit_of_work(factory) as session:
            requeued = reconcile.claim_stuck_calls(session, stuck_after_seconds=1200)
    seconds = time.perf_counter() - started
    with engine.connect() as connection:
        left = connection.execute(text(
            "SELECT count(*) FROM calls WHERE state_changed_at < now() - interval '1 hour'")).scalar_one()
    return {"calls": calls, "done": len(requeued), "left": left, "seconds": seconds, "one_transaction": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--retry", action="store_true", help="time the requeue of failed calls instead")
    parser.add_argument("--reconcile", action="store_true", help="time one reconciler pass over stuck calls")
    args = parser.parse_args()
    result = seconds_for(args.calls, retry=args.retry, reconcile_stuck=args.reconcile)
    args.out.write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
