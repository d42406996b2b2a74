"""Which cursors the feed takes (`GET /api/events?after=N`) depends on the reader's own tenant alone: other
tenants' events never change the answer, so it tells nothing of their volume. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.models import UserRole
from tests.handoff.conftest import events_of, make_principal, processed_call
from tests.web.world import BrokerQueue, client_for


@pytest.fixture
def api(db_url: str, allow_private: object) -> Iterator[TestClient]:
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=True) as client:
        yield client


def test_another_tenants_events_do_not_change_which_cursors_a_reader_may_send(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # The 422 for a cursor "past the newest event" was measured against every tenant's newest event: a binary
    # search over `after` told any reader how many events the other tenants wrote.
    _, acme = make_principal(session_factory, "ada", UserRole.admin)
    _, globex = make_principal(session_factory, "gus", UserRole.admin, tenant="globex")
    mine = processed_call(session_factory, "mine")
    newest_of_acme = events_of(session_factory, mine)[-1].id
    probed = range(newest_of_acme + 40)

    def taken(token: str) -> list[int]:
        """The probed cursors the feed answers (anything but 422 'past the newest event')."""
        answers = {cursor: api.get(f"/api/events?after={cursor}", headers={"Authorization": f"Bearer {token}"})
                   for cursor in probed}
        assert {answer.status_code for answer in answers.values()} <= {200, 422}
        return [cursor for cursor, answer in answers.items() if answer.status_code == 200]

    before = taken(acme)
    theirs = [processed_call(session_factory, f"theirs-{n}", tenant="globex") for n in range(3)]
    newest_of_globex = events_of(session_factory, theirs[-1])[-1].id
    assert newest_of_acme < newest_of_globex < probed[-1]

    assert taken(acme) == before == list(range(newest_of_acme + 1))
    # And the other way round: globex's reader is bounded by its own newest event, not acme's.
    assert taken(globex) == list(range(newest_of_globex + 1))
