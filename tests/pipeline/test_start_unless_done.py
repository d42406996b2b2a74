"""`start_unless_done` (the claim's done-check, start and transcript load; one statement on PostgreSQL) must
do what the three statements it replaces did, on both backends, and see a run committed while the caller
waited for the call's row lock."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, unit_of_work
from app.models import Call, CallState, ExtractionRun, RunStatus
from app.models import Utterance as UtteranceRow
from app.pipeline.calls import load_transcript, lock_call_row
from app.pipeline.persist import _SUCCEEDED_RUN_ID, start_unless_done
from app.pipeline.store import store_transcript
from app.schemas.transcript import Transcript
from tests.support.transcripts import make_transcript

KEY = "k" * 64


def _stored(factory: sessionmaker[Session], external_id: str = "start-1") -> str:
    with unit_of_work(factory) as session:
        return store_transcript(session, make_transcript(), tenant="acme", external_id=external_id).call_id


def _add_run(factory: sessionmaker[Session], call_id: str, status: RunStatus) -> int:
    with unit_of_work(factory) as session:
        run = ExtractionRun(call_id=call_id, tenant_id=session.get_one(Call, call_id).tenant_id, idempotency_key=KEY,
                            provider="p", model="m", prompt_version="v", transcript_hash="h", status=status)
        session.add(run)
        session.flush()
        return run.id


def _call(factory: sessionmaker[Session], call_id: str) -> tuple[Any, ...]:
    with factory() as session:
        return tuple(session.execute(select(Call.state, Call.attempts, Call.state_changed_at)
                                     .where(Call.id == call_id)).one())


def test_a_call_not_done_is_started_and_its_transcript_loaded(session_factory: sessionmaker[Session]) -> None:
    call_id = _stored(session_factory)
    _add_run(session_factory, call_id, RunStatus.failed)  # a failed run with the key is no result
    before = _call(session_factory, call_id)
    with unit_of_work(session_factory) as session:
        row = lock_call_row(session, call_id)
        expected = load_transcript(session, row)
        started = start_unless_done(session, row, KEY, attempts=3)
    assert isinstance(started, Transcript)
    assert started == expected and started.model_dump_json() == expected.model_dump_json()
    state, attempts, changed_at = _call(session_factory, call_id)
    assert (state, attempts) == (CallState.processing, 3)
    assert changed_at > before[2]


def test_a_call_done_already_is_left_as_it_is(session_factory: sessionmaker[Session]) -> None:
    call_id = _stored(session_factory)
    run_id = _add_run(session_factory, call_id, RunStatus.succeeded)
    before = _call(session_factory, call_id)
    with unit_of_work(session_factory) as session:
        assert start_unless_done(session, lock_call_row(session, call_id), KEY, attempts=1) == run_id
    assert _call(session_factory, call_id) == before
    assert before[:2] == (CallState.queued, 0)


def test_a_call_without_utterances_fails_validation_as_before(session_factory: sessionmaker[Session]) -> None:
    call_id = _stored(session_factory)
    with unit_of_work(session_factory) as session:
        session.execute(delete(UtteranceRow).where(UtteranceRow.call_id == call_id))
    with unit_of_work(session_factory) as session, pytest.raises(ValidationError, match="utterances"):
        start_unless_done(session, lock_call_row(session, call_id), KEY, attempts=1)


@pytest.mark.postgres
def test_a_run_committed_while_waiting_for_the_lock_is_seen(postgres_url: str) -> None:
    """The lock is taken by its own statement; the done-check runs after it, with a snapshot that includes
    what the lock's holder committed."""
    from app.db.session import create_db_engine, make_session_factory

    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        call_id = _stored(factory, "raced")
        got: list[int | Transcript] = []
        holder = factory()
        lock_call_row(holder, call_id)  # the first worker holds the call

        def second_worker() -> None:
            with unit_of_work(factory) as session:
                row = lock_call_row(session, call_id)  # waits for the first worker's commit
                got.append(start_unless_done(session, row, KEY, attempts=1))

        waiter = threading.Thread(target=second_worker)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # still waiting for the lock
        run = ExtractionRun(call_id=call_id, tenant_id=holder.get_one(Call, call_id).tenant_id, idempotency_key=KEY,
                            provider="p", model="m", prompt_version="v", transcript_hash="h",
                            status=RunStatus.succeeded)
        holder.add(run)
        holder.flush()
        run_id = run.id
        holder.commit()
        holder.close()
        waiter.join(10)
        assert got == [run_id]
        assert _call(factory, call_id)[:2] == (CallState.queued, 0)  # not started again
    finally:
        engine.dispose()


def test_the_done_check_uses_the_succeeded_key_index_in_a_generic_plan(postgres_url: str) -> None:
    """The server reuses one generic plan of a prepared statement only if it is no costlier than planning
    for each call's values: the succeeded-run lookup must reach the partial unique index on its own, with
    the key a parameter (with the status bound too, the generic plan scanned every run)."""
    engine = create_db_engine(postgres_url)
    try:
        # The statement's own SQL, its parameters (whatever it binds) numbered as a prepared statement's.
        names = iter(range(1, 100))
        sql = re.sub(r"%\(\w+\)s", lambda _: f"${next(names)}",
                     str(_SUCCEEDED_RUN_ID.compile(dialect=engine.dialect)))
        values = ", ".join("'k'" for _ in range(sql.count("$")))
        with engine.connect() as conn:
            conn.execute(text("SET plan_cache_mode = force_generic_plan"))
            conn.execute(text(f"PREPARE done_check AS {sql}"))
            plan = "\n".join(conn.execute(text(f"EXPLAIN EXECUTE done_check({values})")).scalars())
    finally:
        engine.dispose()
    assert "uq_extraction_runs_succeeded_key" in plan, plan
