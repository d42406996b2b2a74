"""The rollup tables equal the aggregates computed from the base rows, after a random sequence of the
writes that change them: processing, reprocessing (a new current run), item decisions, call decisions,
state changes, bulk updates and deletes, on SQLite and PostgreSQL. The expected aggregates are computed
here in Python from the calls, runs and claims, independently of the triggers' SQL."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.models import (
    AgentDueRollup,
    Call,
    CallState,
    Claim,
    ClaimRollup,
    ExtractionRun,
    RunStatus,
    UserRole,
)
from app.models.rollups import NO_DUE_DATE
from app.pipeline.calls import get_or_create_tenant
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.review import CallDecision, ClaimAction, ClaimChanges, decide_call, delete_call, review_claim
from app.rollups import MEASURES, fold_rollups
from app.users import authenticate, create_user
from tests.support.analytics import RETURNS_LINES, _prompt, build_world
from tests.support.transcripts import CARD_CALL_LINES, make_transcript

Counts = dict[tuple[Any, ...], tuple[float, ...]]
STAGES = ("queue_wait_ms", "llm_ms", "verify_ms", "db_ms", "total_ms")


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def expected(session: Session) -> dict[str, Counts]:
    calls = {c.id: c for c in session.scalars(select(Call))}
    runs = {r.id: r for r in session.scalars(select(ExtractionRun))}
    totals: dict[str, dict[tuple[Any, ...], list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0]))
    for call in calls.values():
        day = _day(call.started_at or call.created_at)
        totals["rollup_calls"][(call.tenant_id, day, call.team or "", call.state.value)][0] += 1
    for claim in session.scalars(select(Claim)):
        call = calls[claim.call_id]
        if claim.run_id is None or claim.run_id != call.current_run_id:
            continue
        run = runs[claim.run_id]
        day = _day(call.started_at or call.created_at)
        place = (call.tenant_id, day, call.team or "")
        status = claim.review_status.value
        totals["rollup_claims"][(*place, run.model, run.prompt_version, claim.kind, status,
                                 claim.grounding_status)][0] += 1
        if claim.kind == "reason":
            totals["rollup_reasons"][(*place, claim.text.lower(), (claim.text_masked or "").lower())][0] += 1
        if claim.kind == "action_item" and status != "rejected":
            closed = 1 if call.state in (CallState.rejected, CallState.failed) else 0
            totals["rollup_open_items"][(*place, claim.owner or "", claim.owner_name or "",
                                         claim.due_date or NO_DUE_DATE, status, closed)][0] += 1
            if claim.due_date is not None:
                totals["rollup_agent_due"][(call.tenant_id, call.agent_id or "", claim.due_date)][0] += 1
    run_totals: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * 12)
    for run in runs.values():
        call = calls[run.call_id]
        row = run_totals[(call.tenant_id, _day(run.started_at), call.team or "", run.provider, run.model,
                          run.prompt_version, run.status.value)]
        row[0] += 1
        row[1] += run.cost_usd or 0.0
        for i, stage in enumerate(STAGES):
            value = getattr(run, stage)
            row[2 + i] += value or 0.0
            row[7 + i] += 0 if value is None else 1
    totals["rollup_runs"] = run_totals
    return {name: {key: tuple(v) for key, v in rows.items()} for name, rows in totals.items()}


def actual(session: Session) -> dict[str, Counts]:
    """Each ledger summed per key (keys whose sums are all zero left out)."""
    result: dict[str, Counts] = {}
    for model, measure_names in MEASURES.items():
        table = model.__table__
        keys = [c for c in table.columns if c.name not in ("id", "folded", *measure_names)]
        sums: dict[tuple[Any, ...], list[float]] = {}
        for row in session.execute(select(*keys, *(table.c[m] for m in measure_names))):
            key = tuple(_as_date(v) if c.name in ("day", "due_date") else v for c, v in zip(keys, row, strict=False))
            totals = sums.setdefault(key, [0.0] * len(measure_names))
            for i, value in enumerate(row[len(keys):]):
                totals[i] += float(value)
        result[table.name] = {k: tuple(v) for k, v in sums.items() if any(abs(x) > 1e-9 for x in v)}
    return result


def ledger_rows(session: Session) -> tuple[int, int]:
    """All rows of the ledgers, and how many distinct keys they hold."""
    rows = keys = 0
    for model, measure_names in MEASURES.items():
        table = model.__table__
        key_columns = [c for c in table.columns if c.name not in ("id", "folded", *measure_names)]
        rows += session.scalar(select(func.count()).select_from(table)) or 0
        keys += session.scalar(select(func.count()).select_from(select(*key_columns).distinct().subquery())) or 0
    return rows, keys


def assert_rollups_match(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        want, got = expected(session), actual(session)
    for name in ("rollup_calls", "rollup_claims", "rollup_reasons", "rollup_open_items", "rollup_agent_due",
                 "rollup_runs"):
        want_rows, got_rows = want.get(name, {}), got[name]
        assert set(got_rows) == set(want_rows), f"{name}: keys differ"
        for key, values in want_rows.items():
            assert got_rows[key] == pytest.approx(values, rel=1e-9, abs=1e-9), f"{name} {key}"


PLAN = [
    ("acme", CARD_CALL_LINES, datetime(2026, 3, 9, 14, 0, tzinfo=UTC), "A-1", "north"),
    ("acme", RETURNS_LINES, datetime(2026, 3, 9, 23, 30, tzinfo=UTC), "A-2", "south"),
    ("acme", RETURNS_LINES, datetime(2026, 3, 10, 9, 30, tzinfo=UTC), "A-1", None),
    ("acme", CARD_CALL_LINES, None, "A-3", "north"),
    ("globex", RETURNS_LINES, datetime(2026, 3, 10, 11, 0, tzinfo=UTC), "G-1", "north"),
    ("globex", CARD_CALL_LINES, datetime(2026, 3, 11, 12, 0, tzinfo=UTC), "G-2", None),
]


def test_rollups_equal_base_aggregates_after_random_writes(session_factory: sessionmaker[Session]) -> None:
    rng = random.Random(16)
    prompt = _prompt()
    calls: list[tuple[str, str]] = []  # (tenant, call id)
    for number, (tenant, lines, started_at, agent_id, team) in enumerate(PLAN):
        transcript = make_transcript(lines, external_id=f"{tenant}-{number}", agent_id=agent_id)
        transcript.metadata.started_at = started_at
        transcript.metadata.team = team
        with unit_of_work(session_factory) as session:
            calls.append((tenant, store_transcript(session, transcript, tenant=tenant,
                                                   external_id=f"{tenant}-{number}").call_id))
    with unit_of_work(session_factory) as session:
        tokens = {t: create_user(session, tenant=t, name=f"sup-{t}", role=UserRole.supervisor).token
                  for t in ("acme", "globex")}
        admins = {t: create_user(session, tenant=t, name=f"admin-{t}", role=UserRole.admin).token
                  for t in ("acme", "globex")}
    assert_rollups_match(session_factory)
    for call_id in [c for _, c in calls]:
        process_call(session_factory, call_id, HeuristicProvider(), prompt)
    assert_rollups_match(session_factory)

    versions = folds = 0
    for _step in range(30):
        if not calls:
            break
        tenant, call_id = rng.choice(calls)
        action = rng.choice(["review", "review", "decide", "reprocess", "state", "bulk", "team", "delete", "fold"])
        with unit_of_work(session_factory) as session:
            supervisor = authenticate(session, tokens[tenant])
            assert supervisor is not None
            call = session.get(Call, call_id)
            assert call is not None
            current = list(session.scalars(select(Claim).where(Claim.run_id == call.current_run_id)))
            if action == "review" and current and call.state not in (CallState.approved, CallState.rejected):
                decision = rng.choice([ClaimAction.approve, ClaimAction.reject, ClaimAction.edit])
                changes = ClaimChanges(text=f"Edited item {_step}", owner="customer", due="tomorrow")
                review_claim(session, supervisor, rng.choice(current).id, decision,
                             changes if decision is ClaimAction.edit else None)
            elif action == "decide" and call.state not in (CallState.approved, CallState.rejected):
                try:
                    decide_call(session, supervisor, call_id, rng.choice([CallDecision.approve, CallDecision.reject]))
                except Exception:  # approving needs unverified items decided first: a refusal is fine here
                    session.rollback()
            elif action == "state":
                call.state = rng.choice([CallState.failed, CallState.needs_attention, CallState.ready_for_review])
            elif action == "bulk":
                session.execute(update(Claim).where(Claim.call_id == call_id).values(review_status="approved"))
            elif action == "team":
                call.team = rng.choice(["north", "south", None])
                call.agent_id = rng.choice(["A-1", "A-9"])
            elif action == "fold":
                folds += 1
                fold_rollups(session)
            elif action == "delete":
                admin = authenticate(session, admins[tenant])
                assert admin is not None
                delete_call(session, admin, call_id)
                calls.remove((tenant, call_id))
        if action == "reprocess":
            versions += 1
            process_call(session_factory, call_id, HeuristicProvider(),
                         dataclasses.replace(prompt, version=f"extract-v1-r{versions}"), reprocess_reviewed=True)
        assert_rollups_match(session_factory)
    assert versions > 0 and folds > 0 and len(calls) < len(PLAN)  # the sequence reprocessed, folded, deleted

    # A final fold leaves one row per key, and the same sums.
    with unit_of_work(session_factory) as session:
        rows, keys = ledger_rows(session)
        assert rows > keys
        assert fold_rollups(session) > 0
    with unit_of_work(session_factory) as session:
        rows, keys = ledger_rows(session)
        assert rows <= keys
    assert_rollups_match(session_factory)


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_migration_backfills_rollups_from_existing_rows(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(backend)
    engine = create_db_engine(url)
    try:
        factory = make_session_factory(engine)
        # Written by today's code, then taken back to the revision before the rollups (dropping them, and
        # later columns such as claims.tenant_id): only the backfill can count the rows again.
        build_world(factory)
        downgrade(url, "0010")
        upgrade(url)
        assert_rollups_match(factory)
        with unit_of_work(factory) as session:
            assert session.scalar(select(func.sum(ClaimRollup.claims))) == session.scalar(
                select(func.count()).select_from(Claim).join(Call, Call.current_run_id == Claim.run_id))
    finally:
        engine.dispose()


def test_a_current_run_change_moves_each_claim_rollup(session_factory: sessionmaker[Session]) -> None:
    """A call's current run moves in and out of every claim rollup, also a rollup that takes a single one of
    the run's claims (one reason, one open action item, one dated item), and a state change moves the open
    items between open and closed calls."""
    with unit_of_work(session_factory) as session:
        tenant = get_or_create_tenant(session, "acme")
        call = Call(tenant_id=tenant.id, external_id="x", agent_id="A-1", team="north", source_format="native",
                    transcript_hash="h", state=CallState.processing, started_at=datetime(2026, 3, 9, 14, 0, tzinfo=UTC))
        session.add(call)
        session.flush()
        runs = []
        for number, claims in enumerate([
            [("reason", None), ("action_item", date(2026, 3, 12)), ("summary", None)],
            [("action_item", None), ("summary", None)],
            [("summary", None)],
        ]):
            run = ExtractionRun(call_id=call.id, tenant_id=tenant.id, idempotency_key=f"k{number}", provider="openai",
                                model="m", prompt_version="v1", transcript_hash="h", status=RunStatus.succeeded)
            session.add(run)
            session.flush()
            runs.append(run.id)
            for position, (kind, due_date) in enumerate(claims):
                session.add(Claim(run_id=run.id, call_id=call.id, tenant_id=tenant.id, position=position, kind=kind,
                                  text=f"{kind} {position}", owner="agent" if kind == "action_item" else None,
                                  due_date=due_date, grounding_status="grounded"))
        call_id = call.id
    assert_rollups_match(session_factory)
    for current, state in [(runs[0], CallState.ready_for_review), (runs[1], CallState.needs_attention),
                           (runs[0], CallState.rejected), (runs[2], CallState.ready_for_review),
                           (runs[0], CallState.failed), (None, CallState.failed)]:
        with unit_of_work(session_factory) as session:
            session.execute(update(Call).where(Call.id == call_id).values(current_run_id=current, state=state))
        assert_rollups_match(session_factory)
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).where(Call.id == call_id).values(current_run_id=runs[0]))
        assert session.scalar(select(func.sum(AgentDueRollup.items))) == 1
