"""What `process_call` records about its own cost, and how its final write survives a dead connection."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

import app.pipeline.run as pipeline_run
from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.grounding import verify_extraction
from app.llm.base import ProviderResult
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.llm.scripted_server import ScriptedOpenAIServer
from app.models import CallState, ExtractionRun, RunStatus
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.schemas.extraction import Extraction
from app.schemas.grounding import VerificationReport
from app.schemas.transcript import Role, Transcript
from bench.answers.model import quoting_answer
from bench.answers.run import scripted_provider
from tests.pipeline.test_run import _prompt, _store
from tests.support.transcripts import CARD_CALL_LINES, make_transcript


def test_run_timings_include_the_commit_and_put_cpu_beside_wall(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    call_id = _store(session_factory)
    commits: list[float] = []
    dialect = session_factory.kw["bind"].dialect
    do_commit = dialect.do_commit

    def commit_and_note_when(dbapi_connection: Any) -> None:
        do_commit(dbapi_connection)
        commits.append(time.perf_counter())

    # The driver's commits (the pipeline commits on Core connections, not through a session).
    monkeypatch.setattr(dialect, "do_commit", commit_and_note_when)
    # The pipeline's own clock readings: its first is the start `total_ms` counts from (a reading taken here
    # before the call would be earlier by the call's entry, which a loaded box can stretch past a commit's).
    readings: list[float] = []

    def perf_counter() -> float:
        readings.append(time.perf_counter())
        return readings[-1]

    monkeypatch.setattr(pipeline_run, "time", SimpleNamespace(perf_counter=perf_counter, thread_time=time.thread_time))
    provider, prompt = HeuristicProvider(), _prompt()
    started = time.perf_counter()
    process_call(session_factory, call_id, provider, prompt)
    # Claim, then result: the result's commit is the second (the timings are one autocommit UPDATE after it).
    assert len(commits) == 2
    result_committed_ms = (commits[1] - readings[0]) * 1000.0
    with unit_of_work(session_factory) as session:
        run = session.scalars(select(ExtractionRun)).one()
    assert run.total_ms is not None and run.db_ms is not None and run.cpu_ms is not None
    assert run.total_ms >= result_committed_ms  # measured after the commit, so it covers it
    assert run.total_ms <= (time.perf_counter() - started) * 1000.0
    assert 0 < run.db_ms <= run.total_ms
    # One thread's CPU time cannot exceed the wall time it ran in.
    assert 0 < run.cpu_ms <= run.total_ms


class _KillsConnectionsWhileExtracting(HeuristicProvider):
    """Terminates every other session of the database while "the model" answers, as a restart would."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.extractions = 0

    def extract(self, transcript: Transcript, prompt: PromptTemplate) -> ProviderResult:
        self.extractions += 1
        url = make_url(self.database_url)
        with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                             autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return super().extract(transcript, prompt)


def test_result_is_stored_over_a_pooled_connection_that_died_during_extraction(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    try:
        factory = make_session_factory(engine)
        call_id = _store(factory)
        provider = _KillsConnectionsWhileExtracting(postgres_url)
        outcome = process_call(factory, call_id, provider, _prompt())
        assert provider.extractions == 1  # the answer was not asked for again
        assert outcome.state in {CallState.ready_for_review, CallState.needs_attention}
        with unit_of_work(factory) as session:
            run = session.scalars(select(ExtractionRun)).one()
        assert run.status is RunStatus.succeeded and run.id == outcome.run_id
    finally:
        engine.dispose()




# No personal data, and no statement of the local model's answer restates another.
PLAIN_CALL = [
    (Role.customer, "Hello, my internet has been dropping every evening this week."),
    (Role.agent, "I will send an engineer to your street tomorrow morning."),
    (Role.customer, "Can you tell me when it will be fixed for good?"),
    (Role.agent, "The fault on the line in your street is being repaired right now."),
    (Role.customer, "Thank you, that is all I needed to know today."),
    (Role.agent, "You are welcome, have a good evening and goodbye."),
]


# The card call is redacted (a date of birth) and its answer has a fabricated quote: view, repair, final.
@pytest.mark.parametrize(("lines", "verifications"), [(PLAIN_CALL, 1), (CARD_CALL_LINES, 3)])
def test_the_answer_is_verified_again_only_when_redaction_changed_the_transcript(
    lines: list[tuple[Role, str]], verifications: int, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(sqlite_url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        call_id = store_transcript(session, make_transcript(lines), tenant="acme", external_id="c1").call_id
    verified: list[int] = []

    def counting_verify(transcript: Transcript, extraction: Extraction) -> VerificationReport:
        verified.append(1)
        return verify_extraction(transcript, extraction)

    monkeypatch.setattr(pipeline_run, "verify_extraction", counting_verify)
    with ScriptedOpenAIServer(quoting_answer) as server:
        outcome = process_call(factory, call_id, scripted_provider(get_settings(), server.base_url), _prompt())
    engine.dispose()
    assert outcome.claims > 0
    assert len(verified) == verifications
