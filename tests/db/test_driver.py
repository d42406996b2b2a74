"""`FixedStatement` runs a prebuilt statement on the driver's cursor (PostgreSQL): what it sends and returns
must be what `Connection.execute` sends and returns (values, their types, the rows' attributes), on both
backends; and a driver error must surface as the same SQLAlchemy exception, a lost connection invalidated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from app.db.driver import FixedStatement, run_on_driver
from app.db.session import create_db_engine, unit_of_work
from app.handoff.outbox import _INSERT_EVENT
from app.models import Call, CallState, ExtractionRun, RunStatus, Tenant
from app.pipeline.calls import _LOCK_CALL_ROW, _START_PROCESSING, _TRANSCRIPT_ROWS, state_columns
from app.pipeline.persist import _LOCK_CALL_FOR_RESULT, _SUCCEEDED_RUN_ID_FIXED
from app.pipeline.store import store_transcript
from tests.support.transcripts import make_transcript

CALLS = cast(Table, Call.__table__)
RUNS = cast(Table, ExtractionRun.__table__)


def _store(factory: sessionmaker[Session]) -> tuple[str, str]:
    """A stored call (started in a non-UTC zone, with a failed and a succeeded run) and its succeeded run's key."""
    transcript = make_transcript()
    transcript.metadata.started_at = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    with unit_of_work(factory) as session:
        call_id = store_transcript(session, transcript, tenant="driver", external_id="driver-1").call_id
        tenant_id = session.get_one(Call, call_id).tenant_id
        for status, key in ((RunStatus.failed, "k-failed"), (RunStatus.succeeded, "k-done")):
            session.add(ExtractionRun(call_id=call_id, tenant_id=tenant_id, idempotency_key=key, provider="p",
                                      model="m", prompt_version="v", transcript_hash="h", status=status))
    return call_id, "k-done"


@pytest.fixture
def stored(session_factory: sessionmaker[Session]) -> tuple[str, str]:
    return _store(session_factory)


def _same_rows(fixed: list[Any], core: list[Any], names: list[str] | None = None) -> None:
    assert len(fixed) == len(core) > 0
    for mine, theirs in zip(fixed, core, strict=True):
        assert tuple(mine) == tuple(theirs)
        assert [type(value) for value in mine] == [type(value) for value in theirs]  # enums, not their strings
        for name in names or []:
            assert getattr(mine, name) == getattr(theirs, name)


def test_reads_return_what_connection_execute_returns(session_factory: sessionmaker[Session],
                                                      stored: tuple[str, str]) -> None:
    call_id, key = stored
    with session_factory() as session:
        connection = session.connection()
        cases: list[tuple[FixedStatement, dict[str, Any], list[str]]] = [
            (_LOCK_CALL_ROW, {"call_id": call_id}, ["id", "state", "started_at", "enqueued_at", "llm_mode"]),
            (_TRANSCRIPT_ROWS, {"call_id": call_id}, ["index", "role", "role_confidence", "start_s", "text"]),
            (_LOCK_CALL_FOR_RESULT, {"call_id": call_id, "key": key}, ["id", "tenant_id", "slug", "time_zone"]),
            (_SUCCEEDED_RUN_ID_FIXED, {"key": key}, ["id"]),
        ]
        for statement, parameters, names in cases:
            fixed = statement.all(connection, parameters)
            core = connection.execute(statement.statement, parameters).all()
            _same_rows(fixed, core, names)
        row = _LOCK_CALL_ROW.one_or_none(connection, {"call_id": call_id})
        assert row.state is CallState.queued
        assert row.started_at == datetime(2026, 3, 1, 14, 30, tzinfo=UTC) and row.started_at.tzinfo is UTC
        # The constant the statement binds (the succeeded status) is sent as the column stores it.
        assert _SUCCEEDED_RUN_ID_FIXED.scalar(connection, {"key": key}) is not None
        assert _SUCCEEDED_RUN_ID_FIXED.scalar(connection, {"key": "k-failed"}) is None
        assert _LOCK_CALL_ROW.one_or_none(connection, {"call_id": "no-such-call"}) is None
        assert _TRANSCRIPT_ROWS.all(connection, {"call_id": "no-such-call"}) == []
        session.rollback()


def test_writes_store_what_connection_execute_stores(session_factory: sessionmaker[Session],
                                                     stored: tuple[str, str]) -> None:
    call_id, _ = stored
    moment = datetime(2026, 5, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))

    def written(run: Any) -> tuple[Any, ...]:
        with unit_of_work(session_factory) as session:
            run(session.connection())
        with session_factory() as session:
            # Read as stored, not through the column types: what was sent, not what it reads back as.
            return tuple(session.execute(
                text("SELECT state, state_changed_at, review_rank, attempts FROM calls WHERE id = :id"),
                {"id": call_id}).one())

    parameters = {"changed_call_id": call_id, "attempt": 7, **state_columns(CallState.processing, moment)}
    by_fixed = written(lambda connection: _START_PROCESSING.execute(connection, parameters))
    reset = {**parameters, "attempt": 0, **state_columns(CallState.queued, moment - timedelta(days=1))}
    written(lambda connection: connection.execute(_START_PROCESSING.statement, reset))
    by_core = written(lambda connection: connection.execute(_START_PROCESSING.statement, parameters))
    assert by_fixed == by_core
    assert by_fixed[0] == "processing" and by_fixed[3] == 7


def test_an_insert_with_returning_and_json(session_factory: sessionmaker[Session], stored: tuple[str, str]) -> None:
    call_id, _ = stored
    with unit_of_work(session_factory) as session:
        tenant_id = session.scalar(select(Call.tenant_id).where(Call.id == call_id))
        values = {"event_tenant_id": tenant_id, "event_call_id": call_id, "event_agent_id": None, "event_team": "t",
                  "event_type": "call.processed", "event_payload": {"data": {"text": "né 5 \u2014", "n": [1, None]}},
                  "event_created_at": datetime(2026, 5, 1, tzinfo=UTC)}
        fixed_id = FixedStatement(_INSERT_EVENT).scalar(session.connection(), {**values, "event_event_id": "msg_a"})
        core_id = session.connection().scalar(_INSERT_EVENT, {**values, "event_event_id": "msg_b"})
        assert isinstance(fixed_id, int) and core_id == fixed_id + 1
    with session_factory() as session:
        rows = session.execute(text("SELECT CAST(payload AS TEXT), created_at, team FROM outbox WHERE id IN (:a, :b) "
                                    "ORDER BY id"), {"a": fixed_id, "b": core_id}).all()
        assert rows[0] == rows[1]


def test_python_side_defaults_and_missing_parameters_are_refused(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    try:
        with engine.connect() as connection:
            # `calls.id` has a Python default (a new id per row): the cursor would not compute it.
            with pytest.raises(TypeError, match="Python-side column defaults"):
                FixedStatement(insert(CALLS).values(tenant_id=bindparam("t"))).execute(connection, {"t": 1})
            with pytest.raises(TypeError, match="missing parameter 'call_id'"):
                _LOCK_CALL_ROW.one_or_none(connection, {})
    finally:
        engine.dispose()


def test_a_driver_error_is_the_sqlalchemy_exception(pg_factory: sessionmaker[Session]) -> None:
    with unit_of_work(pg_factory) as session:
        session.add(Tenant(slug="taken"))
    duplicate = FixedStatement(insert(cast(Table, Tenant.__table__)).values(
        slug=bindparam("slug"), created_at=bindparam("at"), time_zone="UTC"))
    with pg_factory() as session, pytest.raises(IntegrityError) as raised:
        duplicate.execute(session.connection(), {"slug": "taken", "at": datetime.now(UTC)})
    assert not raised.value.connection_invalidated
    assert "[SQL parameters hidden" in str(raised.value)  # as the engine hides them
    with pg_factory() as session, pytest.raises(StatementError):
        run_on_driver(session.connection(), "SELECT %(a)s, %(b)s", {"a": 1}, fetch=True)
    # The error's handling closed the connection's cursor: the next statement on it gets a new one.
    with pg_factory() as session:
        assert run_on_driver(session.connection(), "SELECT %(a)s", {"a": 1}, fetch=True) == [(1,)]
        assert _SUCCEEDED_RUN_ID_FIXED.scalar(session.connection(), {"key": "none"}) is None


def test_a_lost_connection_is_invalidated_and_the_next_one_works(pg_factory: sessionmaker[Session]) -> None:
    call_id, _ = _store(pg_factory)
    engine = pg_factory.kw["bind"]
    with pg_factory() as session:
        connection = session.connection()
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as raised:
            _LOCK_CALL_ROW.one_or_none(connection, {"call_id": call_id})
        assert raised.value.connection_invalidated  # what `_persist_success` retries on
        session.rollback()
    with pg_factory() as session:  # the pool dropped the dead connection: a new one is opened
        assert _LOCK_CALL_ROW.one_or_none(session.connection(), {"call_id": call_id}).id == call_id


def test_an_update_with_a_constant_and_returning(pg_factory: sessionmaker[Session]) -> None:
    """A caller's parameter beside a constant the statement binds itself, and RETURNING through the types."""
    call_id, _ = _store(pg_factory)
    statement = FixedStatement(
        update(CALLS).where(CALLS.c.id == bindparam("call_id"), CALLS.c.state != CallState.failed)
        .values(attempts=CALLS.c.attempts + 1).returning(CALLS.c.attempts, CALLS.c.state)
    )
    with unit_of_work(pg_factory) as session:
        row = statement.one_or_none(session.connection(), {"call_id": call_id})
    assert (row.attempts, row.state) == (1, CallState.queued)


def test_a_parameter_whose_name_the_sql_escapes(session_factory: sessionmaker[Session],
                                               stored: tuple[str, str]) -> None:
    call_id, _ = stored
    statement = FixedStatement(select(CALLS.c.id, CALLS.c.state).where(CALLS.c.id == bindparam("call.id [x]")))
    with session_factory() as session:
        row = statement.one_or_none(session.connection(), {"call.id [x]": call_id})
        assert (row.id, row.state) == (call_id, CallState.queued)
        assert statement.one_or_none(session.connection(), {"call.id [x]": "other"}) is None
