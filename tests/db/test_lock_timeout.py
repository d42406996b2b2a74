"""A worker, a command or a web request waits for a row lock at most POSTCALL_DB_LOCK_TIMEOUT_SECONDS
(PostgreSQL): a claim no longer waits on a reviewer's or a migration's lock past the visibility timeout."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app.db.session import create_db_engine, is_transient_database_error, make_session_factory, unit_of_work
from app.models import Call
from app.pipeline.store import store_transcript
from tests.support.transcripts import make_transcript


@pytest.mark.postgres
def test_a_lock_held_elsewhere_is_waited_for_at_most_the_lock_timeout(postgres_url: str) -> None:
    holder = create_db_engine(postgres_url)
    waiter = create_db_engine(postgres_url, lock_timeout_seconds=0.5)
    with unit_of_work(make_session_factory(holder)) as session:
        call_id = store_transcript(session, make_transcript(), tenant="acme", external_id="locked").call_id
    try:
        with holder.begin() as held:
            held.execute(select(Call.id).where(Call.id == call_id).with_for_update())  # a reviewer's lock
            started = time.monotonic()
            with pytest.raises(OperationalError) as caught, waiter.begin() as waiting:
                waiting.execute(select(Call.id).where(Call.id == call_id).with_for_update())
            waited = time.monotonic() - started
        assert 0.4 < waited < 10
        assert getattr(caught.value.orig, "sqlstate", None) == "55P03"  # lock_not_available
        assert is_transient_database_error(caught.value)  # the worker retries the call later
        with waiter.connect() as connection:
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "500ms"
    finally:
        holder.dispose()
        waiter.dispose()


@pytest.mark.postgres
def test_the_lock_timeout_keeps_the_urls_own_options(postgres_url: str) -> None:
    # As a startup `options` parameter it replaced the URL's own (a statement_timeout here).
    engine = create_db_engine(f"{postgres_url}?options=-c%20statement_timeout%3D12345", lock_timeout_seconds=2)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "12345ms"
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "2s"
            connection.rollback()
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "2s"  # outlives a rollback
    finally:
        engine.dispose()
