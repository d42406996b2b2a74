"""A shared world for the web tests: two tenants, users of every role, calls with verified extractions.

Built once per backend (SQLite file and a throwaway PostgreSQL database) and shared by the module;
tests that change a call seed a fresh one (`world.fresh_call`) so no test depends on another's order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory
from app.models import UserRole
from tests.support.services import migrated_pg_database, migrated_sqlite_database
from tests.web.world import BrokerQueue, SeededCall, client_for, seed_call, seed_user

# name -> (tenant, role, team, agent id)
USERS: dict[str, tuple[str, UserRole, str | None, str | None]] = {
    "admin": ("acme", UserRole.admin, None, None),
    "supervisor": ("acme", UserRole.supervisor, None, None),
    "supervisor_blue": ("acme", UserRole.supervisor, "blue", None),
    "analyst": ("acme", UserRole.analyst, None, None),
    "agent_a1": ("acme", UserRole.agent, None, "a1"),
    "agent_a2": ("acme", UserRole.agent, None, "a2"),
    "globex_admin": ("globex", UserRole.admin, None, None),
    # Same agent id as acme's agent_a1: tenant scoping must hold even when agent ids collide.
    "globex_agent_a1": ("globex", UserRole.agent, None, "a1"),
}
# target -> (tenant, agent id, team)
TARGETS: dict[str, tuple[str, str, str]] = {
    "acme_a1_blue": ("acme", "a1", "blue"),
    "acme_a2_red": ("acme", "a2", "red"),
    "globex_a1_blue": ("globex", "a1", "blue"),
}
# Written out by hand (not derived from the code under test): who sees which call.
VISIBLE: dict[str, set[str]] = {
    "admin": {"acme_a1_blue", "acme_a2_red"},
    "supervisor": {"acme_a1_blue", "acme_a2_red"},
    "supervisor_blue": {"acme_a1_blue"},
    "analyst": {"acme_a1_blue", "acme_a2_red"},
    "agent_a1": {"acme_a1_blue"},
    "agent_a2": {"acme_a2_red"},
    "globex_admin": {"globex_a1_blue"},
    "globex_agent_a1": {"globex_a1_blue"},
}
CAN_REVIEW = {"admin", "supervisor", "supervisor_blue", "agent_a1", "agent_a2", "globex_admin", "globex_agent_a1"}
CAN_SUBMIT = {"admin", "supervisor", "supervisor_blue", "globex_admin"}
ADMINS = {"admin", "globex_admin"}
CAN_REOPEN = {"admin", "supervisor", "supervisor_blue", "globex_admin"}

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def expected_status(user: str, target: str, *, allowed: bool, success: int) -> int:
    """404 for what the user cannot see, 403 for a visible call and a forbidden action."""
    if target not in VISIBLE[user]:
        return 404
    return success if allowed else 403


@dataclass
class World:
    url: str
    factory: sessionmaker[Session]
    client: TestClient
    enqueue: BrokerQueue
    tokens: dict[str, str]
    calls: dict[str, SeededCall]
    browsers: dict[str, TestClient] = field(default_factory=dict)

    def token(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def fresh_call(self, target: str) -> SeededCall:
        tenant, agent_id, team = TARGETS[target]
        return seed_call(self.factory, tenant=tenant, external_id=f"{target}-{uuid.uuid4().hex[:8]}",
                         agent_id=agent_id, team=team)

    def call_for(self, target: str, *, will_change: bool) -> SeededCall:
        """A fresh call when the request is expected to change it; otherwise the shared base call,
        which no test ever changes, so a refused request can be checked to have changed nothing."""
        return self.fresh_call(target) if will_change else self.calls[target]

    def browser(self, user: str) -> TestClient:
        """A client signed in through the sign-in form, holding that user's session cookie."""
        if user not in self.browsers:
            # Entered once and kept: a TestClient outside `with` starts an event loop thread per request.
            client = TestClient(self.client.app).__enter__()
            sign_in(client, self.tokens[user])
            self.browsers[user] = client
        return self.browsers[user]


def csrf_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient, token: str) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def _build_world(url: str) -> World:
    """Users and calls on `url`, a database already at the head revision."""
    engine: Engine = create_db_engine(url)
    factory = make_session_factory(engine)
    tokens = {
        name: seed_user(factory, tenant=tenant, name=name, role=role, team=team, agent_id=agent_id)
        for name, (tenant, role, team, agent_id) in USERS.items()
    }
    calls = {
        target: seed_call(factory, tenant=tenant, external_id=f"base-{target}", agent_id=agent_id, team=team)
        for target, (tenant, agent_id, team) in TARGETS.items()
    }
    enqueue = BrokerQueue.fresh()
    return World(url, factory, client_for(url, enqueue).__enter__(), enqueue, tokens, calls)


def _close(world: World) -> None:
    for client in [world.client, *world.browsers.values()]:
        client.__exit__(None, None, None)
    app_factory: sessionmaker[Session] = world.client.app.state.web.session_factory  # type: ignore[attr-defined]
    for factory in (app_factory, world.factory):
        bind = factory.kw["bind"]
        assert isinstance(bind, Engine)
        bind.dispose()


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if request.param == "sqlite":
        directory: Path = tmp_path_factory.mktemp("web")
        built = _build_world(migrated_sqlite_database(str(directory / "web.db")))
        yield built
        _close(built)
        return
    with migrated_pg_database() as url:
        built = _build_world(url)
        yield built
        _close(built)  # before the database is dropped


# Users whose browser sessions the page matrix drives (every role, both tenants).
MATRIX_USERS = list(USERS)
