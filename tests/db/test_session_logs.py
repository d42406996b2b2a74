"""No transcript text in logs: a failing insert's exception and the engine's own log lines carry no
SQL parameters."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, Tenant
from app.models import Utterance as UtteranceRow

SECRET = "my card is 4111 1111 1111 1111 and my SSN is 123-45-6789"


@pytest.mark.parametrize("backend", ["postgres_url", "sqlite_url"])
def test_a_failing_insert_logs_no_transcript_text(
    backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_db_engine(request.getfixturevalue(backend))
    factory = make_session_factory(engine)
    try:
        with unit_of_work(factory) as session:
            tenant = Tenant(slug="logs")
            session.add(tenant)
            session.flush()
            call = Call(tenant_id=tenant.id, external_id="c1", source_format="native", transcript_hash="h")
            session.add(call)
            session.flush()
            call_id = call.id
        row = {"call_id": call_id, "index": 0, "speaker": "A", "role": "customer", "text": SECRET}
        with unit_of_work(factory) as session:
            session.execute(insert(UtteranceRow), [row])
        # The engine logs every statement at INFO (as with echo=True) while the failure happens.
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
        logger = logging.getLogger("postcall.test")
        with pytest.raises(IntegrityError) as failure:  # noqa: PT012 - the failure is logged as the app would
            try:
                with unit_of_work(factory) as session:
                    session.execute(insert(UtteranceRow), [row])  # same (call, index): unique violation
            except IntegrityError:
                logger.exception("storing the call failed")
                raise
        assert "uq_utterances_call_id_index" in str(failure.value) or "UNIQUE" in str(failure.value)
        assert "INSERT INTO utterances" in caplog.text  # the statement itself was logged...
        assert "4111" not in caplog.text  # ...but none of its parameters
        assert "123-45-6789" not in caplog.text
        assert SECRET not in str(failure.value)
        assert "hidden" in str(failure.value)
    finally:
        engine.dispose()
