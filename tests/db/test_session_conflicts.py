"""`retry_conflicts`: a unit of work PostgreSQL aborts as a deadlock victim or a serialization failure is
run again from the start, a bounded number of times; any other error is its answer at once. The errors
are real ones, raised by PostgreSQL with their SQLSTATE."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import CONFLICT_ATTEMPTS, create_db_engine, make_session_factory, retry_conflicts
from app.models import Tenant

pytestmark = pytest.mark.postgres


@pytest.fixture
def factory(postgres_url: str) -> sessionmaker[Session]:
    return make_session_factory(create_db_engine(postgres_url))


def _raise(session: Session, sqlstate: str) -> None:
    session.execute(text(f"DO $$ BEGIN RAISE EXCEPTION 'scripted' USING ERRCODE = '{sqlstate}'; END $$"))


def _tenants(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Tenant.slug).order_by(Tenant.slug)))


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])  # deadlock_detected, serialization_failure
def test_a_conflict_runs_the_whole_unit_of_work_again(factory: sessionmaker[Session], sqlstate: str) -> None:
    attempts: list[int] = []
    with factory() as session:

        def work() -> str:
            attempts.append(len(attempts) + 1)
            session.add(Tenant(slug=f"attempt-{len(attempts)}"))
            session.flush()
            if len(attempts) == 1:
                _raise(session, sqlstate)
            session.commit()
            return "done"

        assert retry_conflicts(session, work) == "done"
    assert attempts == [1, 2]
    assert _tenants(factory) == ["attempt-2"]  # the aborted attempt left nothing behind


def test_conflicts_are_retried_a_bounded_number_of_times(factory: sessionmaker[Session]) -> None:
    attempts: list[int] = []
    with factory() as session:

        def work() -> None:
            attempts.append(1)
            _raise(session, "40P01")

        with pytest.raises(OperationalError) as failure:
            retry_conflicts(session, work)
    assert len(attempts) == CONFLICT_ATTEMPTS
    assert getattr(failure.value.orig, "sqlstate", None) == "40P01"


def test_other_database_errors_are_not_retried(factory: sessionmaker[Session]) -> None:
    attempts: list[int] = []
    with factory() as session:

        def work() -> None:
            attempts.append(1)
            _raise(session, "57014")  # query_canceled: an OperationalError, but no conflict

        with pytest.raises(OperationalError):
            retry_conflicts(session, work)
        session.rollback()
        assert session.scalar(select(func.count()).select_from(Tenant)) == 0
    assert attempts == [1]
