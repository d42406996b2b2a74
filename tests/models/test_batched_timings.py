"""The counters (run_totals) and the runs ledger (rollup_runs) equal the aggregates of the rows after
UPDATEs that write the late timings of several runs at once, as workers write them: one statement for
runs of different tenants, days, models and statuses, alone or beside rows whose other columns change in
the same statement (a run moved to another call, a status change), on SQLite and PostgreSQL.

On PostgreSQL the timings-only rows go through migration 0017's statement trigger and the others through
the row trigger, in one statement; SQLite's row triggers take them all."""

from __future__ import annotations

import random
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.models import Call, CallState, ExtractionRun, RunStatus
from app.pipeline.calls import get_or_create_tenant
from app.pipeline.timings import RunTimings, write_timings
from tests.models.test_rollups import assert_rollups_match
from tests.pipeline.test_counts import _check

MODELS = [("openai", "gpt-4o-mini"), ("heuristic", "heuristic-v1")]
RUNS = 24
# Histogram bucket bounds and their neighbours, NULL, and values exact in binary (sums of them are exact, so
# recomputed sums compare without rounding).
TIMING = st.one_of(st.none(), st.sampled_from([0.0, 10.0, 25.0, 2500.0, 3_600_000.0, 4_000_000.0]),
                   st.integers(0, 8_000_000).map(lambda n: n / 8))


def _world(factory: sessionmaker[Session]) -> list[int]:
    """Calls of two tenants on several days and teams; runs of every status, some with timings already."""
    rng = random.Random(17)
    with unit_of_work(factory) as session:
        tenants = [get_or_create_tenant(session, slug).id for slug in ("acme", "globex")]
        calls = []
        for n in range(6):
            call = Call(tenant_id=tenants[n % 2], external_id=f"c{n}", team=rng.choice(["north", None]),
                        source_format="native", transcript_hash="h", state=CallState.ready_for_review,
                        started_at=datetime(2026, 3, 9, 23, 30, tzinfo=UTC) + timedelta(hours=7 * n))
            session.add(call)
            calls.append(call)
        session.flush()
        runs = []
        for n in range(RUNS):
            provider, model = rng.choice(MODELS)
            late = rng.random() < 0.3
            call = rng.choice(calls)
            run = ExtractionRun(
                call_id=call.id, tenant_id=call.tenant_id, idempotency_key=f"k{n}", provider=provider, model=model,
                prompt_version=rng.choice(["v1", "v2"]), transcript_hash="h",
                status=RunStatus.succeeded if n % 3 else rng.choice(list(RunStatus)),
                prompt_tokens=n, completion_tokens=1, cached_tokens=0, cost_usd=n / 64, llm_calls=1,
                llm_ms=40.0, verify_ms=2.0, queue_wait_ms=None if n % 4 else 5.0,
                db_ms=30.0 if late else None, total_ms=2500.0 if late else None,
                started_at=datetime(2026, 3, 9, 22, 0, tzinfo=UTC) + timedelta(hours=5 * n),
            )
            session.add(run)
            runs.append(run)
        session.flush()
        return [run.id for run in runs]


_WORLDS: weakref.WeakKeyDictionary[sessionmaker[Session], list[int]] = weakref.WeakKeyDictionary()


def _runs(factory: sessionmaker[Session]) -> list[int]:
    """The world of this test's database, built by its first example."""
    if factory not in _WORLDS:
        _WORLDS[factory] = _world(factory)
    return _WORLDS[factory]


timings = st.lists(st.tuples(st.integers(0, RUNS - 1), TIMING, TIMING), min_size=2, max_size=12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timings)
def test_a_batch_of_late_timings_keeps_counters_and_ledgers(
    session_factory: sessionmaker[Session], batch: list[tuple[int, float | None, float | None]],
) -> None:
    run_ids = _runs(session_factory)
    rows = [RunTimings(run_ids[i], db_ms=db, total_ms=total, cpu_ms=1.0)  # type: ignore[arg-type]
            for i, db, total in batch]
    engine = session_factory.kw["bind"]
    with engine.begin() as connection:
        write_timings(connection, rows)  # what the recorder sends: one statement on PostgreSQL
    _assert_counts(session_factory)


changes = st.lists(
    st.tuples(st.integers(0, RUNS - 1), TIMING, TIMING,
              st.sampled_from(["timings", "timings", "status", "call", "model", "started"])),
    min_size=2, max_size=10, unique_by=lambda change: change[0],
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes, st.randoms(use_true_random=False))
def test_one_update_of_timings_beside_other_changes_keeps_counters_and_ledgers(
    session_factory: sessionmaker[Session], batch: list[tuple[int, float | None, float | None, str]],
    rng: random.Random,
) -> None:
    """One UPDATE statement: some rows change only their timings, others also their status, call, model
    or start (another ledger day)."""
    run_ids = _runs(session_factory)
    with unit_of_work(session_factory) as session:
        call_ids = list(session.scalars(select(Call.id).order_by(Call.id)))
    columns: dict[str, dict[int, Any]] = {"db_ms": {}, "total_ms": {}, "status": {}, "call_id": {}, "model": {},
                                          "started_at": {}}
    for index, db, total, kind in batch:
        run_id = run_ids[index]
        columns["db_ms"][run_id], columns["total_ms"][run_id] = db, total
        if kind == "status":
            columns["status"][run_id] = rng.choice(list(RunStatus)).value
        elif kind == "call":
            columns["call_id"][run_id] = rng.choice(call_ids)
        elif kind == "model":
            columns["model"][run_id] = rng.choice(MODELS)[1]
        elif kind == "started":
            columns["started_at"][run_id] = datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(days=rng.randint(0, 20))
    values = {
        name: case(changed, value=ExtractionRun.id, else_=getattr(ExtractionRun, name))
        for name, changed in columns.items() if changed
    }
    with unit_of_work(session_factory) as session:
        session.execute(update(ExtractionRun).where(ExtractionRun.id.in_(columns["db_ms"])).values(values))
    _assert_counts(session_factory)


def _assert_counts(factory: sessionmaker[Session]) -> None:
    assert_rollups_match(factory)
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(ExtractionRun)) == RUNS
        _check(session, [])
