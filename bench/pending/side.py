"""One side of bench/pending/run.py: this code tree's scrape, reconciler pass and batch collector's count,
timed on a fresh PostgreSQL database (at this tree's head) of processed calls, batch-mode calls waiting
for a batch, and recent synchronous calls."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

from app.config import get_settings
from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.metrics import render_latest
from app.pipeline import reconcile
from app.pipeline.batch import calls_waiting_for_batch
from tests.support.call_rows import insert_aged_call_rows
from tests.support.services import redis_url, temporary_pg_database


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    action()  # warm: plans cached, pages in memory
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(done: int, batch: int, sync: int, repeat: int) -> dict[str, Any]:
    with temporary_pg_database() as url:
        upgrade(url)
        engine = create_db_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO tenants (id, slug, created_at) VALUES (1, 'acme', now())"))
            insert_aged_call_rows(engine, 1, "done-", done, state="ready_for_review", mode="sync", age="3 days")
            insert_aged_call_rows(engine, 1, "batch-", batch, state="queued", mode="batch", age="6 hours")
            insert_aged_call_rows(engine, 1, "sync-", sync, state="queued", mode="sync", age="1 minute")
            dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute("VACUUM ANALYZE calls")
            factory = make_session_factory(engine)
            settings = get_settings().model_copy(update={"database_url": url, "broker_url": redis_url(15)})
            whole_pass = hasattr(reconcile, "reconcile_stuck_calls")

            def one_pass() -> object:
                if whole_pass:
                    return reconcile.reconcile_stuck_calls(factory, stuck_after_seconds=1200,
                                                           hand_over=lambda call_ids: True)
                with unit_of_work(factory) as session:
                    return reconcile.claim_stuck_calls(session, stuck_after_seconds=1200)

            def waiting() -> int:
                with factory() as session:
                    return calls_waiting_for_batch(session)

            assert waiting() == batch
            return {
                "scrape_ms": _median_ms(lambda: render_latest(settings), repeat),
                "reconcile_ms": _median_ms(one_pass, repeat),
                "batch_waiting_ms": _median_ms(waiting, repeat),
            }
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--done", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--sync", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(json.dumps(measure(args.done, args.batch, args.sync, args.repeat)), encoding="utf-8")


if __name__ == "__main__":
    main()
