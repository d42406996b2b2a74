"""process_call with the offline provider, on SQLite and PostgreSQL: states, runs, claims, evidence,
the offsets invariant, idempotency and a concurrent race for the same call."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, CallState, Claim, Evidence, ExtractionRun, RunStatus
from app.models import Utterance as UtteranceRow
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from tests.support.transcripts import make_transcript

GROUNDED_STATUSES = {"exact", "normalized", "fuzzy", "relocated"}
POOL_TIMEOUT_SECONDS = 2.0


def _prompt() -> PromptTemplate:
    settings = get_settings()
    return PromptTemplate.load(settings.prompts_dir, settings.prompt_version)


def _store(factory: sessionmaker[Session], external_id: str = "card-001") -> str:
    with unit_of_work(factory) as session:
        return store_transcript(session, make_transcript(external_id=external_id), tenant="acme",
                                external_id=external_id).call_id


def test_process_call_persists_grounded_claims(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory)
    outcome = process_call(session_factory, call_id, HeuristicProvider(), _prompt())

    assert outcome.state in {CallState.ready_for_review, CallState.needs_attention}
    assert outcome.claims > 0
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        assert call is not None and call.state is outcome.state and call.attempts == 1
        run = session.scalars(select(ExtractionRun).where(ExtractionRun.call_id == call_id)).one()
        assert run.status is RunStatus.succeeded
        assert (run.provider, run.model, run.prompt_version) == ("heuristic", HeuristicProvider().model, "extract-v1")
        assert run.verify_ms is not None and run.db_ms is not None and run.total_ms is not None
        kinds = set(session.scalars(select(Claim.kind).where(Claim.run_id == run.id)))
        assert {"reason", "action_item"} <= kinds
        texts = {u.index: u.text for u in session.scalars(select(UtteranceRow).where(UtteranceRow.call_id == call_id))}
        evidence = session.scalars(select(Evidence).join(Claim).where(Claim.call_id == call_id)).all()
        assert evidence
        for ev in evidence:
            if ev.status in GROUNDED_STATUSES:
                assert ev.utterance_index is not None and ev.char_start is not None and ev.char_end is not None
                # The invariant: stored offsets slice the stored utterance to the matched text.
                matched = texts[ev.utterance_index][ev.char_start : ev.char_end]
                assert matched
                if ev.status == "exact":
                    assert matched == ev.quote
        # The due phrase of the agent's commitment survives into the record.
        dues = set(session.scalars(select(Claim.due).where(Claim.kind == "action_item")))
        assert any(due and "5 business days" in due for due in dues)


def test_second_process_is_a_noop(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory)
    first = process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    second = process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    assert second.skipped and second.run_id == first.run_id
    with unit_of_work(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ExtractionRun)) == 1
        assert session.scalar(select(func.count()).select_from(Claim)) == first.claims


def test_concurrent_deliveries_store_one_run(session_factory: sessionmaker[Session]) -> None:
    """Two workers handed the same call at once (a redelivery race) leave exactly one run."""
    call_id = _store(session_factory)
    barrier = threading.Barrier(2)
    outcomes = []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(process_call(session_factory, call_id, HeuristicProvider(), _prompt()))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 2
    with unit_of_work(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ExtractionRun)) == 1
        claims = session.scalar(select(func.count()).select_from(Claim))
    assert claims == max(o.claims for o in outcomes)


def test_offline_extraction_time_is_recorded_as_provider_time(session_factory: sessionmaker[Session]) -> None:
    call_id = _store(session_factory)
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    with unit_of_work(session_factory) as session:
        run = session.scalars(select(ExtractionRun)).one()
    assert run.llm_ms is not None and run.llm_ms > 0
    assert run.total_ms is not None and run.total_ms >= run.llm_ms


def test_call_that_never_finishes_is_failed_after_max_attempts(session_factory: sessionmaker[Session]) -> None:
    from sqlalchemy import update

    call_id = _store(session_factory)
    with unit_of_work(session_factory) as session:
        # Eight deliveries started and died (killed workers) without recording anything.
        session.execute(update(Call).values(attempts=8, state=CallState.processing))
    outcome = process_call(session_factory, call_id, HeuristicProvider(), _prompt(), max_attempts=8)
    assert outcome.state is CallState.failed
    assert outcome.error is not None and "gave up after 8 attempts" in outcome.error
    with unit_of_work(session_factory) as session:
        run = session.scalars(select(ExtractionRun)).one()
        call = session.get(Call, call_id)
    assert run.status is RunStatus.failed
    assert call is not None and call.state is CallState.failed and call.last_error == outcome.error


def test_reviewed_call_is_not_reextracted_by_a_stray_message(session_factory: sessionmaker[Session]) -> None:
    import dataclasses

    from sqlalchemy import update

    call_id = _store(session_factory)
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).values(state=CallState.approved))
    new_prompt = dataclasses.replace(_prompt(), version="extract-v1-tuned")

    stray = process_call(session_factory, call_id, HeuristicProvider(), new_prompt)
    assert stray.skipped and stray.state is CallState.approved

    explicit = process_call(session_factory, call_id, HeuristicProvider(), new_prompt, reprocess_reviewed=True)
    assert not explicit.skipped
    with unit_of_work(session_factory) as session:
        versions = session.scalars(select(ExtractionRun.prompt_version).order_by(ExtractionRun.id)).all()
    assert versions == ["extract-v1", "extract-v1-tuned"]


def test_failure_of_a_duplicate_delivery_does_not_undo_a_success(session_factory: sessionmaker[Session]) -> None:
    """Two deliveries raced; the first stored its result, the second then hit a permanent error."""
    from app.pipeline.persist import RunFacts, idempotency_key
    from app.pipeline.run import _record_failure
    from app.schemas.usage import Usage

    call_id = _store(session_factory)
    first = process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    provider, prompt = HeuristicProvider(), _prompt()
    with unit_of_work(session_factory) as session:
        call = session.get(Call, call_id)
        assert call is not None
        key = idempotency_key(call.id, call.transcript_hash, prompt.version, provider.name, provider.model)
        facts = RunFacts(key, provider.name, provider.model, prompt.version, call.transcript_hash, Usage(), None, None)

    outcome = _record_failure(session_factory, call_id, facts, "model answer unusable", None)

    assert outcome.skipped and outcome.state is first.state
    with unit_of_work(session_factory) as session:
        statuses = session.scalars(select(ExtractionRun.status)).all()
        call = session.get(Call, call_id)
    assert statuses == [RunStatus.succeeded]
    assert call is not None and call.state is first.state


def test_retry_gives_a_call_failed_for_attempts_a_fresh_budget(session_factory: sessionmaker[Session]) -> None:
    from sqlalchemy import update

    from app.pipeline.reconcile import requeue_calls

    call_id = _store(session_factory)
    with unit_of_work(session_factory) as session:
        session.execute(update(Call).values(attempts=8, state=CallState.processing))
    assert process_call(session_factory, call_id, HeuristicProvider(), _prompt(), max_attempts=8).state is (
        CallState.failed
    )
    with unit_of_work(session_factory) as session:
        assert requeue_calls(session) == [call_id]
    retried = process_call(session_factory, call_id, HeuristicProvider(), _prompt(), max_attempts=8)
    assert retried.state in {CallState.ready_for_review, CallState.needs_attention}


def test_a_busy_connection_pool_is_retried_not_failed(postgres_url: str) -> None:
    """Every pooled connection busy past the pool timeout while the result is stored: the call is not
    failed (the worker retries it later), and the retry stores it."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from app.db.session import make_session_factory

    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT_SECONDS)
    factory = make_session_factory(engine)
    call_id = _store(factory)
    releases: list[threading.Timer] = []

    class PoolHoggingModel(HeuristicProvider):
        """Stands in for the model; while it answers, something else takes the only connection and gives
        it back only after the store has timed out (in time for a failure to be recorded, were it one)."""

        def extract(self, transcript, prompt):  # type: ignore[no-untyped-def]
            # Answered first, then the connection taken: the release's timer starts as close as it can to
            # the store's wait for a connection, so a slow extraction on a loaded box cannot eat the half
            # pool timeout of margin on either side.
            answer = super().extract(transcript, prompt)
            connection = engine.connect()
            releases.append(threading.Timer(POOL_TIMEOUT_SECONDS * 1.5, connection.close))
            releases[-1].start()
            return answer

    try:
        with pytest.raises(PoolTimeoutError):
            process_call(factory, call_id, PoolHoggingModel(), _prompt())
        releases[0].join()
        with unit_of_work(factory) as session:
            assert session.get(Call, call_id).state is CallState.processing  # type: ignore[union-attr]
            assert session.scalar(select(func.count()).select_from(ExtractionRun)) == 0
        outcome = process_call(factory, call_id, HeuristicProvider(), _prompt())
        assert outcome.state in {CallState.ready_for_review, CallState.needs_attention}
    finally:
        for release in releases:
            release.join()
        engine.dispose()


class _DecidedMeanwhile(HeuristicProvider):
    """The heuristic provider, while a reviewer sets the call's state (committed) during the extraction."""

    def __init__(self, factory: sessionmaker[Session], call_id: str, state: CallState) -> None:
        self._factory, self._call_id, self._state = factory, call_id, state

    def extract(self, transcript, prompt):  # type: ignore[no-untyped-def]
        from sqlalchemy import update

        with unit_of_work(self._factory) as session:
            session.execute(update(Call).where(Call.id == self._call_id).values(state=self._state))
        return super().extract(transcript, prompt)


def test_a_decision_made_while_a_call_is_extracted_again_is_reopened_not_overwritten(
    session_factory: sessionmaker[Session],
) -> None:
    """A call with a result keeps its state while it is extracted again, so a reviewer may decide it meanwhile:
    `postcall reprocess` storing the new result reopens that decision (audited, call.reopened), a stray
    message's result is not stored over it."""
    import dataclasses

    from app.models import OutboxEvent, ReviewEvent

    call_id = _store(session_factory)
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    reprocess = process_call(session_factory, call_id, _DecidedMeanwhile(session_factory, call_id, CallState.rejected),
                             dataclasses.replace(_prompt(), version="extract-v1-r2"), reprocess_reviewed=True)
    assert reprocess.reopened and not reprocess.skipped
    with session_factory() as session:
        actions = session.scalars(select(ReviewEvent.action).where(ReviewEvent.call_id == call_id)).all()
        events = session.scalars(select(OutboxEvent.type).where(OutboxEvent.call_id == call_id)
                                 .order_by(OutboxEvent.id)).all()
    assert "call_reopened" in actions
    assert events[-2:] == ["call.reopened", "call.processed"]

    stray = process_call(session_factory, call_id, _DecidedMeanwhile(session_factory, call_id, CallState.approved),
                         dataclasses.replace(_prompt(), version="extract-v1-r3"))
    assert stray.skipped and stray.state is CallState.approved
    with session_factory() as session:
        versions = session.scalars(select(ExtractionRun.prompt_version).where(ExtractionRun.status
                                   == RunStatus.succeeded)).all()
    assert "extract-v1-r3" not in versions


def test_a_reprocess_that_fails_keeps_the_calls_place_in_the_review_queue(
    session_factory: sessionmaker[Session],
) -> None:
    from app.errors import PermanentError

    class Broken(HeuristicProvider):
        def extract(self, transcript, prompt):  # type: ignore[no-untyped-def]
            raise PermanentError("the model answered nothing usable")

    call_id = _store(session_factory)
    process_call(session_factory, call_id, HeuristicProvider(), _prompt())
    with session_factory() as session:
        before = session.get(Call, call_id)
        assert before is not None
        state, since = before.state, before.state_changed_at
    import dataclasses

    failed = process_call(session_factory, call_id, Broken(), dataclasses.replace(_prompt(), version="extract-v9"),
                          reprocess_reviewed=True)
    assert failed.error is not None and failed.state is state
    with session_factory() as session:
        after = session.get(Call, call_id)
        assert after is not None
        assert (after.state, after.state_changed_at) == (state, since) and after.last_error
