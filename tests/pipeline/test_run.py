"""process_call with the offline provider, on SQLite and PostgreSQL: states, runs, claims, evidence,
the offsets invariant, idempotency and a concurrent race for the same call."""

from __future__ import annotations

import threading

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
