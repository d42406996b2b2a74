"""A call whose earlier tries died with their worker is processed alone, in a process of its own
(app/worker/isolated.py): a bystander is processed as usual, the call that kills processes is failed
alone, and nothing running beside it loses a try to it."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from app.config import get_settings
from app.context import reset_context
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import SuspectCallError
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, CallState
from app.pipeline.calls import get_call
from app.pipeline.run import SUSPECT_AFTER_ATTEMPTS, process_call
from app.pipeline.store import store_transcript
from app.worker.isolated import run_isolated
from tests.support.transcripts import make_transcript

KILLS_ITSELF = [sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGKILL)})"]


@pytest.fixture
def worker_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    reset_context()
    yield sqlite_url
    reset_context()


def _suspect_call(url: str, name: str) -> str:
    """A call left `processing` by tries that died with their workers."""
    engine = create_db_engine(url)
    try:
        factory = make_session_factory(engine)
        with unit_of_work(factory) as session:
            call_id = store_transcript(session, make_transcript(), tenant="acme", external_id=name).call_id
            session.execute(update(Call).where(Call.id == call_id).values(
                state=CallState.processing, attempts=SUSPECT_AFTER_ATTEMPTS))
        return call_id
    finally:
        engine.dispose()


def _state(url: str, call_id: str) -> tuple[CallState, int, str | None]:
    engine = create_db_engine(url)
    try:
        with make_session_factory(engine)() as session:
            call = get_call(session, call_id)
            return call.state, call.attempts, call.last_error
    finally:
        engine.dispose()


def test_a_worker_does_not_start_a_call_whose_tries_died_with_their_workers(worker_database: str) -> None:
    call_id = _suspect_call(worker_database, "suspect")
    engine = create_db_engine(worker_database)
    factory = make_session_factory(engine)
    prompt = PromptTemplate.load(get_settings().prompts_dir, get_settings().prompt_version)
    try:
        with pytest.raises(SuspectCallError):
            process_call(factory, call_id, HeuristicProvider(), prompt, isolate_suspects=True)
        assert _state(worker_database, call_id)[:2] == (CallState.processing, SUSPECT_AFTER_ATTEMPTS)  # untouched
        # Where it runs alone, it is processed as usual.
        outcome = process_call(factory, call_id, HeuristicProvider(), prompt)
        assert outcome.state in (CallState.ready_for_review, CallState.needs_attention)
    finally:
        engine.dispose()


def test_a_bystander_is_processed_alone_in_a_process_of_its_own(worker_database: str) -> None:
    call_id = _suspect_call(worker_database, "bystander")
    result = run_isolated(call_id, timeout=120)
    assert result.died is None and result.transient is None
    assert result.state in (CallState.ready_for_review.value, CallState.needs_attention.value)
    assert _state(worker_database, call_id)[0].value == result.state


def test_the_call_that_kills_its_process_alone_is_failed_and_nothing_else(worker_database: str) -> None:
    from app.worker.tasks import _process_alone

    culprit = _suspect_call(worker_database, "culprit")
    beside = _suspect_call(worker_database, "beside")
    assert run_isolated(culprit, timeout=60, command=KILLS_ITSELF).died == f"signal {int(signal.SIGKILL)}"
    task = SimpleNamespace(request=SimpleNamespace(retries=0))
    assert _process_alone(task, culprit, command=KILLS_ITSELF) == CallState.failed.value
    state, _, error = _state(worker_database, culprit)
    assert state is CallState.failed and error is not None and "killed the process that ran it alone" in error
    assert _state(worker_database, beside)[0] is CallState.processing  # its own fate is its own


def test_an_error_the_process_reports_is_a_retry_not_a_crash(worker_database: str) -> None:
    # A lock held past its timeout or the database restarting made the process exit with an error: the call
    # was failed as the one that "crashes workers", where any worker would have retried it.
    call_id = _suspect_call(worker_database, "unlucky")
    reported = [sys.executable, "-c", "import sys; print('OperationalError: lock timeout', file=sys.stderr); "
                "sys.exit(1)"]
    result = run_isolated(call_id, timeout=60, command=reported)
    assert result.died is None and result.state is None
    assert result.transient is not None and "lock timeout" in result.transient
    assert _state(worker_database, call_id)[0] is CallState.processing
