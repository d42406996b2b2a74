"""The reconciler and `postcall retry`'s selection, on SQLite and PostgreSQL: what counts as stuck,
what a claim changes, and (on PostgreSQL) that concurrent reconcilers never hand out a call twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.models import Call, CallState, LlmMode
from app.pipeline import reconcile
from app.pipeline.reconcile import (
    as_utc,
    claim_stuck_calls,
    reconcile_stuck_calls,
    requeue_calls,
    requeue_in_chunks,
    stuck_window,
)
from app.pipeline.store import store_transcript
from tests.support.threads import run_at_once
from tests.support.transcripts import make_transcript

STUCK_AFTER = 600.0
NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(seconds=STUCK_AFTER * 2)
RECENTLY = NOW - timedelta(seconds=STUCK_AFTER / 2)


def _store(factory: sessionmaker[Session], external_id: str, *, tenant: str = "acme") -> str:
    with unit_of_work(factory) as session:
        return store_transcript(
            session, make_transcript(external_id=external_id), tenant=tenant, external_id=external_id
        ).call_id


def _put(
    factory: sessionmaker[Session], call_id: str, state: CallState, since: datetime, error: str | None = None
) -> None:
    with unit_of_work(factory) as session:
        session.execute(
            update(Call).where(Call.id == call_id).values(state=state, state_changed_at=since, enqueued_at=since,
                                                          last_error=error)
        )


def _call(factory: sessionmaker[Session], call_id: str) -> Call:
    with unit_of_work(factory) as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call


def test_claims_calls_stuck_in_queued_or_processing_past_the_timeout(
    session_factory: sessionmaker[Session],
) -> None:
    queued_long = _store(session_factory, "queued-long")
    processing_long = _store(session_factory, "processing-long")
    queued_recent = _store(session_factory, "queued-recent")
    done_long = _store(session_factory, "done-long")
    failed_long = _store(session_factory, "failed-long")
    _put(session_factory, queued_long, CallState.queued, LONG_AGO, error="retrying: 429")
    _put(session_factory, processing_long, CallState.processing, LONG_AGO)
    _put(session_factory, queued_recent, CallState.queued, RECENTLY)
    _put(session_factory, done_long, CallState.ready_for_review, LONG_AGO)
    _put(session_factory, failed_long, CallState.failed, LONG_AGO, error="gave up")

    with unit_of_work(session_factory) as session:
        claimed = claim_stuck_calls(session, stuck_after_seconds=STUCK_AFTER, now=NOW)
    assert sorted(claimed) == sorted([queued_long, processing_long])

    for call_id in claimed:
        call = _call(session_factory, call_id)
        assert call.state is CallState.queued
        assert as_utc(call.state_changed_at) == NOW  # the clock restarts: not stuck again until the timeout
        # The hand-over time stays: the call's queue wait counts the time it was lost.
        assert call.enqueued_at is not None and as_utc(call.enqueued_at) == LONG_AGO
    assert _call(session_factory, queued_long).last_error == "retrying: 429"  # a queued call keeps its note
    note = _call(session_factory, processing_long).last_error
    assert note is not None and "re-enqueued by reconciler" in note and "processing" in note
    assert _call(session_factory, queued_recent).state_changed_at is not None
    assert _call(session_factory, done_long).state is CallState.ready_for_review
    assert _call(session_factory, failed_long).state is CallState.failed  # failures wait for `postcall retry`

    # A second pass right after finds nothing: a claimed call is not handed out twice.
    with unit_of_work(session_factory) as session:
        assert claim_stuck_calls(session, stuck_after_seconds=STUCK_AFTER, now=NOW) == []


def test_claims_the_oldest_first_within_the_batch_limit(session_factory: sessionmaker[Session]) -> None:
    ages = {}
    for minutes in (30, 50, 40, 20):
        call_id = _store(session_factory, f"age-{minutes}")
        _put(session_factory, call_id, CallState.queued, NOW - timedelta(minutes=minutes))
        ages[minutes] = call_id
    with unit_of_work(session_factory) as session:
        first = claim_stuck_calls(session, stuck_after_seconds=STUCK_AFTER, now=NOW, limit=2)
    with unit_of_work(session_factory) as session:
        second = claim_stuck_calls(session, stuck_after_seconds=STUCK_AFTER, now=NOW, limit=2)
    assert first == [ages[50], ages[40]]
    assert second == [ages[30], ages[20]]


def test_requeue_selects_by_state_since_call_and_tenant(session_factory: sessionmaker[Session]) -> None:
    old_failure = _store(session_factory, "old-failure")
    new_failure = _store(session_factory, "new-failure")
    other_tenant = _store(session_factory, "other-tenant", tenant="globex")
    stuck = _store(session_factory, "stuck")
    _put(session_factory, old_failure, CallState.failed, NOW - timedelta(days=2), error="boom")
    _put(session_factory, new_failure, CallState.failed, NOW - timedelta(hours=1), error="boom")
    _put(session_factory, other_tenant, CallState.failed, NOW - timedelta(hours=1), error="boom")
    _put(session_factory, stuck, CallState.processing, NOW - timedelta(hours=1))
    with unit_of_work(session_factory) as session:
        acme = session.get(Call, old_failure)
        assert acme is not None
        acme_tenant = acme.tenant_id

    # `since` in another zone, and naive (taken as UTC), select the same calls: 90 minutes ago, so
    # comparing wall-clock digits across zones would miss the failure of an hour ago.
    since_utc = NOW - timedelta(minutes=90)
    for since in (since_utc.astimezone(timezone(timedelta(hours=2))), since_utc.replace(tzinfo=None)):
        with unit_of_work(session_factory) as session:
            selected = requeue_calls(session, since=since, tenant_id=acme_tenant)
            session.rollback()
        assert selected == [new_failure]

    with unit_of_work(session_factory) as session:
        assert requeue_calls(session, states=[CallState.processing]) == [stuck]
    with unit_of_work(session_factory) as session:
        assert requeue_calls(session, call_ids=[old_failure]) == [old_failure]
    call = _call(session_factory, old_failure)
    assert call.state is CallState.queued
    assert call.last_error == "boom"  # the reason stays visible until the next attempt replaces it
    with unit_of_work(session_factory) as session:
        remaining = sorted(requeue_calls(session))
    assert remaining == sorted([new_failure, other_tenant])


def test_requeue_in_chunks_takes_every_call_once_whatever_the_state(session_factory: sessionmaker[Session]) -> None:
    # Queued calls stay selectable by state once requeued: only going by id takes each once.
    calls = sorted(_store(session_factory, f"queued-{n}") for n in range(7))
    seen: list[list[str]] = []
    original = reconcile.requeue_calls

    def requeue_and_note(session: Session, **selection: Any) -> list[str]:
        seen.append(original(session, **selection))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconcile, "requeue_calls", requeue_and_note)
        requeued = requeue_in_chunks(session_factory, states=[CallState.queued], chunk_calls=2, window_calls=3)

    assert requeued == calls
    # Windows of 3 ids, each requeued in transactions of at most 2.
    assert seen == [calls[0:2], calls[2:3], calls[3:5], calls[5:6], calls[6:7]]


def _stuck_at_ages(factory: sessionmaker[Session], minutes: list[int]) -> dict[int, str]:
    """One call per age, stuck in queued (even ages) or processing (odd), `minutes` before NOW."""
    calls = {}
    for age in minutes:
        call_id = _store(factory, f"stuck-{age}")
        _put(factory, call_id, CallState.processing if age % 2 else CallState.queued, NOW - timedelta(minutes=age))
        calls[age] = call_id
    return calls


def _states(factory: sessionmaker[Session], call_ids: list[str]) -> dict[str, tuple[CallState, datetime]]:
    with factory() as session:
        rows = session.execute(select(Call.id, Call.state, Call.state_changed_at).where(Call.id.in_(call_ids)))
        return {row.id: (row.state, as_utc(row.state_changed_at)) for row in rows}


def test_a_pass_requeues_every_stuck_call_once_oldest_first_each_chunk_committed_before_its_hand_over(
    session_factory: sessionmaker[Session],
) -> None:
    ages = [31, 95, 40, 62, 77, 50, 44]
    stuck = _stuck_at_ages(session_factory, ages)
    recent = _store(session_factory, "recent")
    _put(session_factory, recent, CallState.queued, RECENTLY)
    waiting_for_a_batch = _store(session_factory, "batch-mode")
    _put(session_factory, waiting_for_a_batch, CallState.queued, LONG_AGO)
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).where(Call.id == waiting_for_a_batch).values(llm_mode=LlmMode.batch))

    handed: list[list[str]] = []

    def hand_over(call_ids: list[str]) -> bool:
        # Committed before the broker gets them: another session sees them queued, their clock restarted.
        assert _states(session_factory, call_ids) == dict.fromkeys(call_ids, (CallState.queued, NOW))
        handed.append(call_ids)
        return True

    found: list[int] = []
    done = reconcile_stuck_calls(session_factory, stuck_after_seconds=STUCK_AFTER, hand_over=hand_over, now=NOW,
                                 chunk_calls=2, window_calls=3, on_found=found.append)

    oldest_first = [stuck[age] for age in sorted(ages, reverse=True)]
    assert done.requeued == oldest_first and done.handed_over
    # Windows of 3 candidates, each claimed and handed over in chunks of at most 2.
    assert handed == [oldest_first[0:2], oldest_first[2:3], oldest_first[3:5], oldest_first[5:6], oldest_first[6:7]]
    assert found == [3, 3, 1]
    assert _states(session_factory, [recent, waiting_for_a_batch]) == {
        recent: (CallState.queued, RECENTLY), waiting_for_a_batch: (CallState.queued, LONG_AGO)}
    # The next pass at the same moment finds nothing: their clocks restarted at NOW.
    again = reconcile_stuck_calls(session_factory, stuck_after_seconds=STUCK_AFTER, hand_over=hand_over, now=NOW)
    assert again.requeued == []


def test_a_pass_without_a_timeout_ends_and_takes_each_call_once(session_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_at_ages(session_factory, [1, 2, 3, 4, 5])
    handed: list[str] = []

    def hand_over(call_ids: list[str]) -> bool:
        handed.extend(call_ids)
        return True

    done = reconcile_stuck_calls(session_factory, stuck_after_seconds=0, now=NOW, chunk_calls=2, window_calls=2,
                                 hand_over=hand_over)
    assert sorted(done.requeued) == sorted(handed) == sorted(stuck.values())
    assert len(set(handed)) == len(handed)


def test_a_limited_pass_stops_at_its_limit_and_the_next_goes_on(session_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_at_ages(session_factory, [30, 40, 50, 60, 70, 80, 90])
    oldest_first = [stuck[age] for age in (90, 80, 70, 60, 50, 40, 30)]

    def passes(max_calls: int) -> list[str]:
        done = reconcile_stuck_calls(session_factory, stuck_after_seconds=STUCK_AFTER, now=NOW, chunk_calls=3,
                                     window_calls=2, max_calls=max_calls, hand_over=lambda call_ids: True)
        return done.requeued

    assert passes(4) == oldest_first[:4]
    assert passes(4) == oldest_first[4:]
    assert passes(4) == []


def test_a_pass_stops_when_the_broker_refuses_a_chunk(session_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_at_ages(session_factory, [30, 40, 50, 60, 70])
    done = reconcile_stuck_calls(session_factory, stuck_after_seconds=STUCK_AFTER, now=NOW, chunk_calls=2,
                                 hand_over=lambda call_ids: False)
    assert done.requeued == [stuck[70], stuck[60]] and not done.handed_over
    # The refused chunk is queued in the database (its clock restarted: the next pass after the timeout gets
    # it); the calls after it were never claimed.
    assert _states(session_factory, list(stuck.values())) == {
        **{stuck[age]: (CallState.queued, NOW) for age in (70, 60)},
        **{stuck[age]: (CallState.queued if age % 2 == 0 else CallState.processing, NOW - timedelta(minutes=age))
           for age in (50, 40, 30)},
    }


def test_calls_stuck_at_the_same_moment_are_each_taken_once_across_windows(
    session_factory: sessionmaker[Session],
) -> None:
    """Equal `state_changed_at` across the windows' boundaries: the keyset goes on by id."""
    calls = [_store(session_factory, f"same-{n}") for n in range(7)]
    for call_id in calls:
        _put(session_factory, call_id, CallState.queued, LONG_AGO)
    handed: list[str] = []

    def hand_over(call_ids: list[str]) -> bool:
        handed.extend(call_ids)
        return True

    done = reconcile_stuck_calls(session_factory, stuck_after_seconds=STUCK_AFTER, now=NOW, chunk_calls=2,
                                 window_calls=3, hand_over=hand_over)
    assert done.requeued == handed == sorted(calls)


def test_the_window_after_a_moment_compares_instants_whatever_its_zone(
    session_factory: sessionmaker[Session],
) -> None:
    """The keyset's moment is bound as the column binds (UTC): on SQLite, which compares stored text, a
    moment in another zone would otherwise be compared by its local clock."""
    stuck = _stuck_at_ages(session_factory, [30, 40, 50, 60, 70])
    moment = (NOW - timedelta(minutes=50)).astimezone(timezone(timedelta(hours=2)))
    with session_factory() as session:
        rows = session.execute(stuck_window(NOW, (moment, stuck[50]), 10)).all()
    assert [row.id for row in rows] == [stuck[40], stuck[30]]


# ------------------------------------------------------------------------------ PostgreSQL locking


def _stuck_calls(factory: sessionmaker[Session], count: int) -> list[str]:
    call_ids = [_store(factory, f"stuck-{n:03d}") for n in range(count)]
    for call_id in call_ids:
        _put(factory, call_id, CallState.processing, LONG_AGO)
    return call_ids


def test_a_reconciler_skips_calls_another_one_holds(pg_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_calls(pg_factory, 6)
    with unit_of_work(pg_factory) as holder:
        held = claim_stuck_calls(holder, stuck_after_seconds=STUCK_AFTER, now=NOW, limit=4)
        # While the first transaction holds its rows, a second reconciler neither waits nor takes them.
        with unit_of_work(pg_factory) as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            rest = claim_stuck_calls(other, stuck_after_seconds=STUCK_AFTER, now=NOW)
    assert len(held) == 4
    assert sorted(held + rest) == sorted(stuck)


def test_concurrent_reconcilers_hand_out_each_call_once(pg_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_calls(pg_factory, 40)
    claimed: list[list[str]] = []

    def reconcile() -> None:
        with unit_of_work(pg_factory) as session:
            claimed.append(claim_stuck_calls(session, stuck_after_seconds=STUCK_AFTER, now=NOW, limit=10))

    run_at_once(8, reconcile)
    everything = [call_id for batch in claimed for call_id in batch]
    assert len(everything) == len(set(everything))  # nobody got a call another reconciler got
    assert sorted(everything) == sorted(stuck)  # and together they got them all


def test_a_pass_skips_a_call_another_transaction_holds(pg_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_calls(pg_factory, 5)
    outcome: list[Any] = []
    with unit_of_work(pg_factory) as holder:
        holder.execute(select(Call.id).where(Call.id == stuck[0]).with_for_update())
        # A worker holds the first call: the pass must not wait for it (run in a thread, so a wait shows as
        # a timeout here rather than a hung suite).
        runner = threading.Thread(target=lambda: outcome.append(reconcile_stuck_calls(
            pg_factory, stuck_after_seconds=STUCK_AFTER, now=NOW, chunk_calls=2, hand_over=lambda call_ids: True)))
        runner.start()
        runner.join(timeout=30)
        assert not runner.is_alive()
    assert sorted(outcome[0].requeued) == sorted(stuck[1:])


def test_concurrent_passes_hand_out_each_call_once(pg_factory: sessionmaker[Session]) -> None:
    stuck = _stuck_calls(pg_factory, 40)
    handed: list[str] = []

    def hand_over(call_ids: list[str]) -> bool:
        handed.extend(call_ids)
        return True

    run_at_once(6, lambda: reconcile_stuck_calls(pg_factory, stuck_after_seconds=STUCK_AFTER, now=NOW,
                                                  chunk_calls=3, window_calls=7, hand_over=hand_over))
    assert len(handed) == len(set(handed))  # no call published twice
    assert sorted(handed) == sorted(stuck)  # and together they published them all
