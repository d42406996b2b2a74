"""The trigger-kept counters equal a COUNT(*) / SUM() over the rows after any sequence of writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, CallState, ExtractionRun, RunStatus, run_totals
from app.models.counters import COUNTER_SHARDS, LATENCY_BUCKETS_SECONDS, STAGE_COLUMNS
from app.pipeline.calls import get_or_create_tenant, set_state
from app.pipeline.counts import call_totals, model_totals, stage_histograms, state_counts

TEAMS = ["red", "blue", None]
MODELS = [("openai", "gpt-4o-mini"), ("heuristic", "heuristic-v1")]
STEPS = 120


def _new_call(session: Session, rng: random.Random, tenant_id: int, n: int) -> None:
    session.add(Call(tenant_id=tenant_id, external_id=f"c{n}", team=rng.choice(TEAMS), source_format="native",
                     transcript_hash="h", state=rng.choice(list(CallState)), attempts=rng.randint(0, 3),
                     flagged_items=rng.choice([0, 0, 2])))


def _timing(rng: random.Random) -> float | None:
    return rng.choice([None, 3.0, 10.0, 40.0, 900.0, 2500.0, 4_000_000.0])


def _new_run(session: Session, rng: random.Random, call: Call, n: int) -> None:
    provider, model = rng.choice(MODELS)
    timings = {column: _timing(rng) for column in STAGE_COLUMNS.values()}
    status = rng.choice(list(RunStatus))
    if rng.random() < 0.4:
        # As the pipeline writes a run: succeeded, its whole-call timings (db, total) only after the commit.
        status, timings["db_ms"], timings["total_ms"] = RunStatus.succeeded, None, None
    session.add(ExtractionRun(
        call_id=call.id, tenant_id=call.tenant_id, idempotency_key=f"k{n}", provider=provider, model=model,
        prompt_version="v1",
        transcript_hash="h", status=status, prompt_tokens=rng.randint(0, 900),
        completion_tokens=rng.randint(0, 300), cached_tokens=rng.randint(0, 50), cost_usd=rng.random() / 100,
        llm_calls=rng.randint(0, 2), **timings,
    ))


def _step(session: Session, rng: random.Random, tenant_ids: list[int], n: int) -> None:
    calls = list(session.scalars(select(Call)))
    runs = list(session.scalars(select(ExtractionRun)))
    action = rng.randrange(9)
    if action <= 1 or not calls:
        _new_call(session, rng, rng.choice(tenant_ids), n)
    elif action == 2:
        set_state(rng.choice(calls), rng.choice(list(CallState)))
    elif action == 3:
        rng.choice(calls).attempts += rng.randint(1, 2)
    elif action == 4:
        rng.choice(calls).flagged_items = rng.choice([0, 1, 3])
    elif action == 5:
        rng.choice(calls).team = rng.choice(TEAMS)  # a replaced transcript may name another team
    elif action == 6:
        _new_run(session, rng, rng.choice(calls), n)
    elif action == 7 and runs:
        run = rng.choice(runs)
        # Timings are written after the run (its total and database time once the claims are stored),
        # alone (PostgreSQL then moves only their histogram columns) or with another change.
        run.db_ms, run.total_ms = _timing(rng), _timing(rng)
        if rng.random() < 0.5:
            run.status = rng.choice(list(RunStatus))
    elif action == 8:
        # Purges and deletions remove runs and calls in bulk, outside the ORM (cascading to runs).
        if rng.random() < 0.5 and runs:
            session.execute(delete(ExtractionRun).where(ExtractionRun.id == rng.choice(runs).id))
        else:
            session.execute(delete(ExtractionRun).where(ExtractionRun.call_id == (victim := rng.choice(calls).id)))
            session.execute(delete(Call).where(Call.id == victim))
    session.flush()


def _expected_states(session: Session, *where: object) -> tuple[dict[str, int], dict[str, int]]:
    counts = {s.value: 0 for s in CallState}
    flagged = {s.value: 0 for s in CallState}
    for state, total, with_flag in session.execute(
        select(Call.state, func.count(), func.count().filter(Call.flagged_items > 0)).where(*where)  # type: ignore[arg-type]
        .group_by(Call.state)
    ):
        counts[CallState(state).value], flagged[CallState(state).value] = total, with_flag
    return counts, flagged


def _check(session: Session, tenant_ids: list[int]) -> None:
    counts, _ = _expected_states(session)
    retries = session.scalar(select(func.coalesce(func.sum(case((Call.attempts > 1, Call.attempts - 1), else_=0)), 0)))
    assert call_totals(session) == (counts, retries)
    for tenant_id in tenant_ids:
        for team in [None, *TEAMS[:-1]]:
            scope = [Call.tenant_id == tenant_id] + ([Call.team == team] if team else [])
            counts, flagged = _expected_states(session, *scope)
            assert state_counts(session, tenant_id, team=team) == counts
            assert state_counts(session, tenant_id, team=team, flagged=True) == flagged
            assert state_counts(session, tenant_id, team=team, flagged=False) == {
                s: counts[s] - flagged[s] for s in counts
            }
    by_model = {(t.provider, t.model): t for t in model_totals(session)}
    expected_models = set()
    for provider, model, status, runs in session.execute(
        select(ExtractionRun.provider, ExtractionRun.model, ExtractionRun.status, func.count())
        .group_by(ExtractionRun.provider, ExtractionRun.model, ExtractionRun.status)
    ):
        expected_models.add((provider, model))
        assert by_model[(provider, model)].runs[RunStatus(status).value] == runs
    assert set(by_model) == expected_models
    for (provider, model), totals in by_model.items():
        of_model = (ExtractionRun.provider == provider, ExtractionRun.model == model)
        prompt, completion, cached, requests, cost = session.execute(
            select(func.sum(ExtractionRun.prompt_tokens), func.sum(ExtractionRun.completion_tokens),
                   func.sum(ExtractionRun.cached_tokens), func.sum(ExtractionRun.llm_calls),
                   func.sum(ExtractionRun.cost_usd)).where(*of_model)
        ).one()
        assert (totals.prompt_tokens, totals.completion_tokens, totals.cached_tokens, totals.llm_requests) == (
            prompt, completion, cached, requests)
        assert totals.cost_usd == pytest.approx(cost, abs=1e-9)
    histograms = stage_histograms(session)
    succeeded = ExtractionRun.status == RunStatus.succeeded
    for stage, column_name in STAGE_COLUMNS.items():
        column = getattr(ExtractionRun, column_name)
        count, total = session.execute(
            select(func.count(column), func.coalesce(func.sum(column), 0.0)).where(succeeded)
        ).one()
        assert histograms[stage].count == count
        assert histograms[stage].sum_ms == pytest.approx(total, abs=1e-6)
        assert histograms[stage].buckets == [
            session.scalar(select(func.count()).where(succeeded, column <= bound * 1000.0))
            for bound in LATENCY_BUCKETS_SECONDS
        ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_equal_a_count_after_random_writes(session_factory: sessionmaker[Session], seed: int) -> None:
    rng = random.Random(seed)
    with unit_of_work(session_factory) as session:
        tenant_ids = [get_or_create_tenant(session, slug).id for slug in ("acme", "globex")]
    for n in range(STEPS):
        # Several transactions, some rolled back: a rolled-back write leaves the counters as they were.
        with session_factory() as session:
            _step(session, rng, tenant_ids, n)
            if rng.random() < 0.15:
                session.rollback()
            else:
                session.commit()
        if n % 40 == 39:
            with session_factory() as session:
                _check(session, tenant_ids)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Call)) > 0
        _check(session, tenant_ids)


def test_an_update_that_changes_nothing_counted_leaves_the_counters(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        tenant = get_or_create_tenant(session, "acme")
        session.add(Call(tenant_id=tenant.id, external_id="x", source_format="native", transcript_hash="h",
                         state=CallState.queued))
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).values(state_changed_at=datetime(2026, 1, 1, tzinfo=UTC), last_error="x"))
        session.execute(update(Call).values(state=CallState.queued))
    with session_factory() as session:
        assert call_totals(session)[0][CallState.queued.value] == 1
        assert sum(call_totals(session)[0].values()) == 1


def test_late_timings_from_another_backend_count_on_its_own_shard(postgres_url: str) -> None:
    """A run's whole-call timings are written after its commit, maybe by a backend whose counter shard has
    no row for the run's model yet: the update then creates that row, and the sums still match."""
    writer = create_db_engine(postgres_url)
    try:
        factory = make_session_factory(writer)
        with unit_of_work(factory) as session:
            tenant = get_or_create_tenant(session, "acme")
            call = Call(tenant_id=tenant.id, external_id="x", source_format="native", transcript_hash="h",
                        state=CallState.ready_for_review)
            session.add(call)
            session.flush()
            session.add(ExtractionRun(call_id=call.id, tenant_id=tenant.id, idempotency_key="k", provider="openai",
                                      model="gpt-4o-mini", prompt_version="v1", transcript_hash="h",
                                      status=RunStatus.succeeded,
                                      prompt_tokens=10, llm_ms=40.0))
            shard = session.scalar(select(func.pg_backend_pid() % COUNTER_SHARDS))
            tenant_id = tenant.id
    finally:
        writer.dispose()
    engine = create_db_engine(postgres_url)
    try:
        for _ in range(64):  # a new backend until one counts on another shard (pids are spread over them)
            with engine.connect() as conn:
                if conn.scalar(select(func.pg_backend_pid() % COUNTER_SHARDS)) != shard:
                    conn.execute(update(ExtractionRun).values(db_ms=30.0, total_ms=2500.0))
                    conn.commit()
                    break
            engine.dispose()  # the next connection is a new backend
        else:
            pytest.fail("no backend on another shard")
        with make_session_factory(engine)() as session:
            assert session.scalar(select(func.count()).select_from(run_totals)) == 2  # both shards have a row
            _check(session, [tenant_id])
            assert stage_histograms(session)["total"].count == 1
    finally:
        engine.dispose()
