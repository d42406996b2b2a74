"""Group commit: results finished close together are stored in one transaction, exactly as one by one; a result
the group cannot store as it stands is stored by its own thread, which finds why."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.driver import run_on_driver
from app.db.json_rows import json_rows
from app.db.session import unit_of_work
from app.errors import NotFoundError
from app.handoff.endpoints import add_endpoint
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import (
    Call,
    CallState,
    ExtractionRun,
    OutboxEvent,
    RunStatus,
    Utterance,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.pipeline.calls import get_or_create_tenant
from app.pipeline.counts import state_counts
from app.pipeline.group_commit import GroupCommit
from app.pipeline.persist import _FINISH_CALLS_PG
from app.pipeline.run import (
    ClaimGroup,
    ClaimRequest,
    FinishedCall,
    PersistGroup,
    ProcessOutcome,
    claim_calls,
    claim_group_for,
    persist_group_for,
    process_call,
    store_finished_calls,
)
from app.pipeline.store import store_transcript
from app.schemas.transcript import Role
from tests.models.test_rollups import assert_rollups_match
from tests.support.call_rows import insert_call_rows
from tests.support.transcripts import make_transcript

# Long enough that calls processed side by side always meet in one group; a full group is written at once.
WAIT_SECONDS = 5.0


def _prompt() -> PromptTemplate:
    settings = get_settings()
    return PromptTemplate.load(settings.prompts_dir, settings.prompt_version)


def _store(factory: sessionmaker[Session], count: int, *, tenant: str = "acme", first: int = 0) -> list[str]:
    with unit_of_work(factory) as session:
        return [store_transcript(session, make_transcript(external_id=f"g-{n}"), tenant=tenant,
                                 external_id=f"g-{n}").call_id for n in range(first, first + count)]


def _side_by_side(factory: sessionmaker[Session], call_ids: Sequence[str], group: PersistGroup | None,
                  claims: ClaimGroup | None = None, **options: object) -> list[ProcessOutcome | BaseException]:
    """Process the calls in one thread each, as a threaded worker's slots do; each one's outcome or error."""
    provider, prompt = HeuristicProvider(), _prompt()

    def one(call_id: str) -> ProcessOutcome | BaseException:
        try:
            return process_call(factory, call_id, provider, prompt, claim_group=claims, persist_group=group,
                                **options)  # type: ignore[arg-type]
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(call_ids))) as pool:
        return list(pool.map(one, call_ids))


def _group(factory: sessionmaker[Session], size: int,
           before_write: Callable[[Sequence[FinishedCall]], None] | None = None) -> PersistGroup:
    """A group of `size` over `store_finished_calls`; `before_write` runs first (what others do meanwhile)."""

    def write(finished: Sequence[FinishedCall]) -> list[ProcessOutcome | None]:
        if before_write is not None:
            before_write(finished)
        return store_finished_calls(factory, finished)

    return GroupCommit(write, max_size=size, wait_seconds=WAIT_SECONDS)


# -- The group itself (no database) ---------------------------------------------------------------------------


def _echo_group(size: int, wait: float, seen: list[list[int]]) -> GroupCommit[int, int]:
    def write(pieces: Sequence[int]) -> list[int | None]:
        seen.append(list(pieces))
        return [piece * 10 for piece in pieces]

    return GroupCommit(write, max_size=size, wait_seconds=wait)


def test_pieces_handed_in_together_are_written_in_one_group_each_with_its_own_result() -> None:
    seen: list[list[int]] = []
    group = _echo_group(4, WAIT_SECONDS, seen)
    with ThreadPoolExecutor(max_workers=4) as pool:
        handed = list(pool.map(group.submit, [1, 2, 3, 4]))
    assert [h.result for h in handed] == [10, 20, 30, 40]
    # Each waited for the group to fill, never longer than the window; the write's CPU is shared out: what the
    # leader's thread spent on the others' pieces it gives back, each of them takes its share.
    assert all(0 <= h.waited_seconds < WAIT_SECONDS for h in handed)
    assert sum(h.cpu_correction_seconds for h in handed) == pytest.approx(0.0, abs=1e-9)
    assert len(seen) == 1 and sorted(seen[0]) == [1, 2, 3, 4]
    assert (group.stats.groups, group.stats.pieces, group.stats.largest) == (1, 4, 4)


def test_a_lone_piece_is_written_once_the_wait_is_over() -> None:
    seen: list[list[int]] = []
    group = _echo_group(8, 0.05, seen)
    handed = group.submit(7)
    assert handed.result == 70 and handed.waited_seconds >= 0.05
    assert seen == [[7]]


def test_a_piece_no_other_running_call_could_join_is_written_at_once() -> None:
    # The process runs one call (company 1): its group is written without waiting the window for company.
    group: GroupCommit[int, int] = GroupCommit(lambda pieces: [p * 10 for p in pieces], max_size=8,
                                               wait_seconds=WAIT_SECONDS, company=lambda: 1)
    handed = group.submit(7)
    assert handed.result == 70 and handed.waited_seconds < WAIT_SECONDS / 2


def test_pieces_further_apart_than_the_window_are_not_held_for_company() -> None:
    # At a few calls a second, a leader expects nobody within its window: it writes its piece at once (the
    # first piece, with nothing known yet, waits the window).
    group: GroupCommit[int, int] = GroupCommit(lambda pieces: [p * 10 for p in pieces], max_size=8,
                                               wait_seconds=0.2)
    assert group.submit(1).waited_seconds >= 0.2
    time.sleep(0.3)
    handed = group.submit(2)
    assert handed.result == 20 and handed.waited_seconds < 0.1


def test_a_group_is_written_once_every_running_call_is_in_it() -> None:
    # Two calls running, a group of up to 8: written when the second piece comes, not when the window ends.
    group: GroupCommit[int, int] = GroupCommit(lambda pieces: [p * 10 for p in pieces], max_size=8,
                                               wait_seconds=WAIT_SECONDS, company=lambda: 2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        handed = list(pool.map(group.submit, [1, 2]))
    assert [h.result for h in handed] == [10, 20] and group.stats.groups == 1
    assert all(h.waited_seconds < WAIT_SECONDS / 2 for h in handed)


def test_more_pieces_than_a_group_holds_are_all_written_in_groups_no_larger() -> None:
    seen: list[list[int]] = []
    group = _echo_group(3, 0.2, seen)
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = [h.result for h in pool.map(group.submit, range(10))]
    assert results == [n * 10 for n in range(10)]
    assert sorted(n for pieces in seen for n in pieces) == list(range(10))
    assert max(len(pieces) for pieces in seen) == 3 and len(seen) >= 4


def test_a_group_that_cannot_be_written_hands_every_piece_back() -> None:
    def write(pieces: Sequence[int]) -> list[int | None]:
        raise RuntimeError("the transaction rolled back")

    group: GroupCommit[int, int] = GroupCommit(write, max_size=3, wait_seconds=WAIT_SECONDS)
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert [h.result for h in pool.map(group.submit, [1, 2, 3])] == [None, None, None]
    assert group.stats.written_alone == 3


def test_a_group_answering_for_too_few_pieces_hands_every_piece_back() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda pieces: [1], max_size=2, wait_seconds=WAIT_SECONDS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert [h.result for h in pool.map(group.submit, [1, 2])] == [None, None]


def _submitter(group: GroupCommit[int, int], outcomes: dict[int, object]) -> Callable[[int], None]:
    """A thread's hand-in of a piece: its result, or the interrupt it ended with, into `outcomes`."""

    def submit(piece: int) -> None:
        try:
            outcomes[piece] = group.submit(piece).result
        except KeyboardInterrupt as exc:
            outcomes[piece] = exc

    return submit


def test_an_interrupted_leader_leaves_no_piece_waiting() -> None:
    def write(pieces: Sequence[int]) -> list[int | None]:
        raise KeyboardInterrupt

    group: GroupCommit[int, int] = GroupCommit(write, max_size=2, wait_seconds=WAIT_SECONDS)
    outcomes: dict[int, object] = {}
    submit = _submitter(group, outcomes)
    threads = [threading.Thread(target=submit, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(map(type, outcomes.values()), key=str) == sorted([KeyboardInterrupt, type(None)], key=str)


class _InterruptedOnce:
    """The leader's wait for its group to fill, interrupted once (a killed greenlet, a timeout) after a second
    piece arrived; later waits are the real condition's."""

    def __init__(self, group: GroupCommit[int, int], second_arrived: threading.Event) -> None:
        self._real, self._lock, self._second = group._filled, group._lock, second_arrived
        self.fired = False

    def wait(self, timeout: float | None = None) -> bool:
        if self.fired:
            return self._real.wait(timeout)
        self.fired = True
        self._lock.release()  # as a condition's wait does, so the second piece can come in
        self._second.wait(10)
        self._lock.acquire()
        raise KeyboardInterrupt

    def notify(self, n: int = 1) -> None:
        self._real.notify(n)


def test_a_leader_interrupted_while_it_waits_passes_the_lead_on() -> None:
    seen: list[list[int]] = []
    group = _echo_group(3, 0.3, seen)
    second_arrived = threading.Event()
    group._filled = _InterruptedOnce(group, second_arrived)  # type: ignore[assignment]
    outcomes: dict[int, object] = {}
    submit = _submitter(group, outcomes)

    first = threading.Thread(target=submit, args=(1,))
    first.start()
    while not group._forming:
        time.sleep(0.001)
    second = threading.Thread(target=submit, args=(2,))
    second.start()
    while len(group._forming) < 2:
        time.sleep(0.001)
    second_arrived.set()
    for thread in (first, second):
        thread.join(10)
    assert not first.is_alive() and not second.is_alive()
    assert isinstance(outcomes[1], KeyboardInterrupt) and outcomes[2] == 20
    assert seen == [[2]]  # the interrupted piece left; the other led a group of its own
    assert group.submit(3).result == 30  # and the group goes on


def test_a_group_holds_at_least_one_piece() -> None:
    with pytest.raises(ValueError, match="at least one piece"):
        GroupCommit(lambda pieces: list(pieces), max_size=0, wait_seconds=0.1)


# -- Results of real calls (PostgreSQL) ------------------------------------------------------------------------


def test_calls_stored_in_groups_end_as_one_by_one_with_their_counters_and_rollups(
    pg_factory: sessionmaker[Session],
) -> None:
    grouped = _store(pg_factory, 6)
    alone = _store(pg_factory, 6, first=6)
    group = _group(pg_factory, 3)
    outcomes = _side_by_side(pg_factory, grouped, group)
    singles = _side_by_side(pg_factory, alone, None)
    assert group.stats.pieces == 6 and group.stats.written_alone == 0 and group.stats.groups <= 3
    assert all(isinstance(outcome, ProcessOutcome) and not outcome.skipped for outcome in outcomes)
    # The same transcript in each call: the same states and counts of claims as stored one by one.
    assert [(o.state, o.claims, o.ungrounded) for o in outcomes if isinstance(o, ProcessOutcome)] == [
        (o.state, o.claims, o.ungrounded) for o in singles if isinstance(o, ProcessOutcome)]
    with unit_of_work(pg_factory) as session:
        for call_id, outcome in zip(grouped, outcomes, strict=True):
            assert isinstance(outcome, ProcessOutcome)
            call = session.get_one(Call, call_id)
            assert (call.state, call.current_run_id, call.attempts) == (outcome.state, outcome.run_id, 1)
            run = session.get_one(ExtractionRun, outcome.run_id)
            assert (run.call_id, run.status) == (call_id, RunStatus.succeeded)
            assert run.db_ms is not None and run.total_ms is not None  # its timings written after the commit
            events = session.scalars(select(OutboxEvent.type).where(OutboxEvent.call_id == call_id)).all()
            assert events == ["call.processed"]
        tenant_id = session.scalars(select(Call.tenant_id).where(Call.id == grouped[0])).one()
        recount = dict(session.execute(select(Call.state, func.count()).group_by(Call.state)).all())
        counted = state_counts(session, tenant_id)
        assert {state: counted.get(state, 0) for state in recount} == {s.value: n for s, n in recount.items()}
    assert_rollups_match(pg_factory)


def test_a_call_replaced_while_its_group_formed_is_not_stored_over(pg_factory: sessionmaker[Session]) -> None:
    call_ids = _store(pg_factory, 3)

    def replace_the_first(finished: Sequence[FinishedCall]) -> None:
        with unit_of_work(pg_factory) as session:
            store_transcript(session, make_transcript(external_id="g-0", lines=[(Role.agent, "A new transcript.")]),
                             tenant="acme", external_id="g-0", replace=True)

    outcomes = _side_by_side(pg_factory, call_ids, _group(pg_factory, 3, replace_the_first))
    first, *others = outcomes
    assert isinstance(first, ProcessOutcome) and first.skipped and first.run_id is None
    assert all(isinstance(o, ProcessOutcome) and not o.skipped and o.run_id for o in others)
    with unit_of_work(pg_factory) as session:
        assert session.scalar(select(func.count()).where(ExtractionRun.call_id == call_ids[0])) == 0


def test_a_call_deleted_while_its_group_formed_fails_alone(pg_factory: sessionmaker[Session]) -> None:
    call_ids = _store(pg_factory, 3)

    def delete_the_last(finished: Sequence[FinishedCall]) -> None:
        with unit_of_work(pg_factory) as session:
            session.execute(delete(Call).where(Call.id == call_ids[-1]))

    *stored, deleted = _side_by_side(pg_factory, call_ids, _group(pg_factory, 3, delete_the_last))
    assert isinstance(deleted, NotFoundError)
    assert all(isinstance(o, ProcessOutcome) and o.run_id for o in stored)


def test_two_results_of_one_call_in_a_group_store_one_run(pg_factory: sessionmaker[Session]) -> None:
    # A message delivered twice, both copies processed at once: one result is stored, the other finds it.
    (call_id,) = _store(pg_factory, 1)
    group = _group(pg_factory, 2)
    first, second = _side_by_side(pg_factory, [call_id, call_id], group)
    assert group.stats.groups == 1 and group.stats.written_alone == 1  # the second copy, alone
    assert isinstance(first, ProcessOutcome) and isinstance(second, ProcessOutcome)
    assert first.run_id == second.run_id is not None
    assert sorted([first.skipped, second.skipped]) == [False, True]
    with unit_of_work(pg_factory) as session:
        runs = session.scalars(select(ExtractionRun.status).where(ExtractionRun.call_id == call_id)).all()
        assert runs == [RunStatus.succeeded]
        assert session.get_one(Call, call_id).state in {CallState.ready_for_review, CallState.needs_attention}


def test_each_call_in_a_group_fans_out_to_the_tenants_endpoints(
    pg_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    with unit_of_work(pg_factory) as session:
        for tenant in ("acme", "globex"):
            tenant_id = get_or_create_tenant(session, tenant).id
            add_endpoint(session, get_settings(), tenant_id=tenant_id, url=f"http://127.0.0.1:9/{tenant}")
    call_ids = _store(pg_factory, 2) + _store(pg_factory, 2, tenant="globex", first=2)
    group = _group(pg_factory, 4)
    outcomes = _side_by_side(pg_factory, call_ids, group)
    assert group.stats.groups == 1 and all(isinstance(o, ProcessOutcome) and o.run_id for o in outcomes)
    with unit_of_work(pg_factory) as session:
        for call_id in call_ids:
            deliveries = session.scalars(select(WebhookDelivery).where(WebhookDelivery.call_id == call_id)).all()
            assert len(deliveries) == 1  # its own tenant's endpoint, not the other's
            event = session.get_one(OutboxEvent, deliveries[0].outbox_id)
            call = session.get_one(Call, call_id)
            assert (event.call_id, event.tenant_id, event.type) == (call_id, call.tenant_id, "call.processed")
            assert session.get_one(WebhookEndpoint, deliveries[0].endpoint_id).tenant_id == call.tenant_id


# -- Claims (PostgreSQL) -----------------------------------------------------------------------------------------


def _claims(factory: sessionmaker[Session], size: int,
            before_claim: Callable[[Sequence[ClaimRequest]], None] | None = None) -> ClaimGroup:
    def claim(requests: Sequence[ClaimRequest]) -> list[object]:
        if before_claim is not None:
            before_claim(requests)
        return claim_calls(factory, requests)  # type: ignore[return-value]

    return GroupCommit(claim, max_size=size, wait_seconds=WAIT_SECONDS)  # type: ignore[arg-type]


def test_calls_claimed_in_groups_count_one_attempt_each_and_end_as_one_by_one(
    pg_factory: sessionmaker[Session],
) -> None:
    grouped = _store(pg_factory, 4)
    alone = _store(pg_factory, 4, first=4)
    claims, group = _claims(pg_factory, 4), _group(pg_factory, 4)
    outcomes = _side_by_side(pg_factory, grouped, group, claims)
    singles = _side_by_side(pg_factory, alone, None)
    assert claims.stats.groups == 1 and claims.stats.pieces == 4 and claims.stats.written_alone == 0
    assert [(o.state, o.claims, o.ungrounded) for o in outcomes if isinstance(o, ProcessOutcome)] == [
        (o.state, o.claims, o.ungrounded) for o in singles if isinstance(o, ProcessOutcome)]
    with unit_of_work(pg_factory) as session:
        for call_id in grouped:
            call = session.get_one(Call, call_id)
            run = session.get_one(ExtractionRun, call.current_run_id)
            assert call.attempts == 1 and run.queue_wait_ms is not None
    assert_rollups_match(pg_factory)


def test_a_call_the_group_cannot_claim_as_usual_is_claimed_alone(pg_factory: sessionmaker[Session]) -> None:
    # Decided (left alone), missing, and a call its earlier tries left processing twice (a suspect): each goes
    # through the one-by-one claim, which says what to do with it; the usual one is claimed in the group.
    usual, decided, suspect, missing = _store(pg_factory, 4)
    with unit_of_work(pg_factory) as session:
        session.get_one(Call, decided).state = CallState.approved
        suspect_call = session.get_one(Call, suspect)
        suspect_call.state, suspect_call.attempts = CallState.processing, 2

    def delete_missing(requests: Sequence[ClaimRequest]) -> None:
        with unit_of_work(pg_factory) as session:
            session.execute(delete(Call).where(Call.id == missing))

    claims = _claims(pg_factory, 4, delete_missing)
    outcomes = dict(zip([usual, decided, suspect, missing],
                        _side_by_side(pg_factory, [usual, decided, suspect, missing], None, claims,
                                      isolate_suspects=True), strict=True))
    assert isinstance(outcomes[usual], ProcessOutcome) and outcomes[usual].run_id is not None
    assert isinstance(outcomes[decided], ProcessOutcome) and outcomes[decided].skipped
    assert type(outcomes[suspect]).__name__ == "SuspectCallError"
    assert isinstance(outcomes[missing], NotFoundError)
    assert claims.stats.written_alone == 3
    with unit_of_work(pg_factory) as session:
        assert session.get_one(Call, decided).state is CallState.approved
        assert session.get_one(Call, suspect).attempts == 2  # not started again


def test_a_call_whose_work_is_stored_is_not_started_again(pg_factory: sessionmaker[Session]) -> None:
    (call_id,) = _store(pg_factory, 1)
    first = process_call(pg_factory, call_id, HeuristicProvider(), _prompt())
    with unit_of_work(pg_factory) as session:
        session.get_one(Call, call_id).state = CallState.queued  # a stray message after the result
    (again,) = _side_by_side(pg_factory, [call_id], None, _claims(pg_factory, 2))
    assert isinstance(again, ProcessOutcome) and again.skipped and again.run_id == first.run_id
    with unit_of_work(pg_factory) as session:
        call = session.get_one(Call, call_id)
        assert call.attempts == 1 and call.state is first.state  # healed by the one-by-one claim


@pytest.mark.parametrize("make", [claim_group_for, persist_group_for])
def test_no_group_on_sqlite_or_for_one_call_at_a_time(
    sqlite_url: str, pg_factory: sessionmaker[Session], make: Callable[..., object]
) -> None:
    from app.db.session import create_db_engine, make_session_factory

    engine = create_db_engine(sqlite_url)
    try:
        assert make(make_session_factory(engine), max_calls=16, wait_seconds=0.02) is None
    finally:
        engine.dispose()
    assert make(pg_factory, max_calls=1, wait_seconds=0.02) is None
    assert make(pg_factory, max_calls=2, wait_seconds=0.02) is not None


def test_a_call_decided_while_its_result_waited_keeps_the_decision(pg_factory: sessionmaker[Session]) -> None:
    decided, other = _store(pg_factory, 2)

    def decide(finished: Sequence[FinishedCall]) -> None:
        with unit_of_work(pg_factory) as session:
            session.get_one(Call, decided).state = CallState.approved

    group = _group(pg_factory, 2, decide)
    outcomes = dict(zip([decided, other], _side_by_side(pg_factory, [decided, other], group), strict=True))
    assert group.stats.written_alone == 1
    assert isinstance(outcomes[decided], ProcessOutcome) and outcomes[decided].skipped
    assert isinstance(outcomes[other], ProcessOutcome) and outcomes[other].run_id is not None
    with unit_of_work(pg_factory) as session:
        call = session.get_one(Call, decided)
        assert call.state is CallState.approved and call.current_run_id is None


def test_a_call_with_a_result_is_extracted_again_without_being_started(pg_factory: sessionmaker[Session]) -> None:
    # A new model's extraction of a call that has a result (the one-call claim leaves its state and attempts
    # alone while it is extracted again); the group claims only calls without one.
    (call_id,) = _store(pg_factory, 1)
    first = process_call(pg_factory, call_id, HeuristicProvider(), _prompt())

    class OtherModel(HeuristicProvider):
        @property
        def model(self) -> str:
            return "heuristic-other"

    claims = _claims(pg_factory, 2)
    again = process_call(pg_factory, call_id, OtherModel(), _prompt(), claim_group=claims)
    assert claims.stats.written_alone == 1
    assert again.run_id is not None and again.run_id != first.run_id
    with unit_of_work(pg_factory) as session:
        assert session.get_one(Call, call_id).attempts == 1


def test_a_transcript_that_does_not_load_fails_its_own_claim_with_nothing_started(
    pg_factory: sessionmaker[Session],
) -> None:
    broken, first, second = _store(pg_factory, 3)
    with unit_of_work(pg_factory) as session:
        session.execute(update(Utterance).where(Utterance.call_id == broken).values(text=""))
    claims = _claims(pg_factory, 3)
    outcomes = dict(zip([broken, first, second],
                        _side_by_side(pg_factory, [broken, first, second], None, claims), strict=True))
    assert isinstance(outcomes[broken], ValidationError)  # as the one-call claim raises it
    assert claims.stats.written_alone == 1
    with unit_of_work(pg_factory) as session:
        call = session.get_one(Call, broken)
        assert (call.state, call.attempts) == (CallState.queued, 0)  # nothing started, nothing counted
        for call_id in (first, second):
            assert isinstance(outcomes[call_id], ProcessOutcome)
            assert session.get_one(Call, call_id).attempts == 1


def test_a_groups_timings_leave_out_the_wait_for_company(pg_factory: sessionmaker[Session]) -> None:
    # A lone call in groups that wait half a second for company: its run's database time is its transactions',
    # not the wait (the wall time still holds it).
    (call_id,) = _store(pg_factory, 1)
    claims = GroupCommit(lambda requests: claim_calls(pg_factory, requests), max_size=4, wait_seconds=0.5)
    results = GroupCommit(lambda finished: store_finished_calls(pg_factory, finished), max_size=4,
                          wait_seconds=0.5)
    outcome = process_call(pg_factory, call_id, HeuristicProvider(), _prompt(), claim_group=claims,  # type: ignore[arg-type]
                           persist_group=results)  # type: ignore[arg-type]
    with unit_of_work(pg_factory) as session:
        run = session.get_one(ExtractionRun, outcome.run_id)
        assert run.total_ms is not None and run.db_ms is not None
        assert run.total_ms >= 1000.0  # two windows of half a second
        assert run.db_ms < 500.0


def test_a_groups_calls_are_found_by_key_in_a_table_of_thousands(pg_factory: sessionmaker[Session]) -> None:
    """The statement that stores a group's results joins its calls' new values, passed as JSON (which the planner
    takes for 100 rows), to calls: it must look the group's calls up by key, not scan every call, as it did at
    thousands of calls (a cost that grew with the table, once per group)."""
    with unit_of_work(pg_factory) as session:
        tenant_id = get_or_create_tenant(session, "acme").id
    insert_call_rows(pg_factory.kw["bind"], tenant_id, "filler-", 20_000)
    group = [f"filler-{n}" for n in range(1, 15)]
    changes = [{"id": call_id, "state": "ready_for_review", "state_changed_at": "2026-12-05T12:00:00+00:00",
                "review_rank": 1, "current_run_id": None, "flagged_items": 0} for call_id in group]
    with unit_of_work(pg_factory) as session:
        plan = "\n".join(row[0] for row in run_on_driver(
            session.connection(), f"EXPLAIN {_FINISH_CALLS_PG}", {"calls": json_rows(changes), "call_ids": group},
            fetch=True))
    assert "on calls" in plan and "Seq Scan on calls" not in plan, plan
