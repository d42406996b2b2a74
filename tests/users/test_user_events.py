"""The append-only audit trail of user changes (`user_events`): written with each change from the CLI and
the API, never holding a token, refused any UPDATE or DELETE, readable by the tenant's admins only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.analysts import grant_analyst, revoke_analyst
from app.cli.common import CLI_ACTOR
from app.cli.users import users_app
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import AppendOnlyError
from app.models import User, UserRole
from app.models.tables import UserEvent
from app.pipeline.store import Actor
from app.users import (
    InactiveUserError,
    create_user,
    deactivate_user,
    hash_token,
    rotate_token_by_id,
    rotate_token_by_name,
    set_view_pii,
)
from tests.support.services import PG_HOST, PG_PORT, PG_USER
from tests.users.conftest import Site
from tests.web.world import bearer

runner = CliRunner()
ADMIN = Actor("ada", 1)


def _events(factory: sessionmaker[Session]) -> list[UserEvent]:
    with factory() as session:
        return list(session.scalars(select(UserEvent).order_by(UserEvent.id)))


def _admin(factory: sessionmaker[Session], tenant: str = "acme", name: str = "ada") -> tuple[int, str]:
    with unit_of_work(factory) as session:
        created = create_user(session, tenant=tenant, name=name, role=UserRole.admin)
        return created.user.id, created.token


def test_every_change_appends_one_event_naming_the_actor_and_no_token(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        created = create_user(session, tenant="acme", name="dana", role=UserRole.agent, agent_id="a1", actor=ADMIN)
        user_id = created.user.id
    with unit_of_work(session_factory) as session:
        set_view_pii(session, "acme", "dana", allowed=True, actor=ADMIN)
    with unit_of_work(session_factory) as session:
        rotated = rotate_token_by_name(session, "acme", "dana", actor=CLI_ACTOR)
    with unit_of_work(session_factory) as session:
        set_view_pii(session, "acme", "dana", allowed=False, actor=CLI_ACTOR)
    with unit_of_work(session_factory) as session:
        by_self = rotate_token_by_id(session, created.user.tenant_id, user_id, replacing=rotated.token,
                                     actor=Actor("dana", user_id))
    with unit_of_work(session_factory) as session:
        deactivate_user(session, "acme", "dana", actor=CLI_ACTOR)

    events = _events(session_factory)
    assert [(e.action, e.actor_name, e.actor_user_id) for e in events] == [
        ("user_created", "ada", 1),
        ("view_pii_granted", "ada", 1),
        ("token_rotated", CLI_ACTOR.name, None),
        ("view_pii_revoked", CLI_ACTOR.name, None),
        ("token_rotated", "dana", user_id),
        ("user_deactivated", CLI_ACTOR.name, None),
    ]
    assert CLI_ACTOR.name.startswith("cli:")
    assert {(e.tenant_id, e.user_id, e.user_name) for e in events} == {(created.user.tenant_id, user_id, "dana")}
    assert events[0].detail["role"] == "agent" and events[0].detail["agent_id"] == "a1"
    assert events[1].detail == {"view_pii": {"from": False, "to": True}}
    assert events[3].detail == {"view_pii": {"from": True, "to": False}}
    assert events[5].detail == {"active": {"from": True, "to": False}}
    # A rotation records the new expiry beside the old one: each issue starts a lifetime of its own.
    first_expiry = events[0].detail["token_expires_at"]
    assert events[2].detail["token_expires_at"]["from"] == first_expiry
    assert events[4].detail["token_expires_at"]["from"] == events[2].detail["token_expires_at"]["to"]
    assert events[4].detail["token_expires_at"]["to"] >= events[4].detail["token_expires_at"]["from"] > first_expiry
    # No token, and no token's hash, anywhere in the trail.
    stored = json.dumps([[e.detail, e.user_name, e.actor_name, e.action] for e in events])
    for token in (created.token, rotated.token, by_self.token):
        assert token not in stored and hash_token(token) not in stored
    assert all(e.created_at is not None and e.created_at.tzinfo is not None for e in events)


def test_a_change_that_changes_nothing_or_fails_records_nothing(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        create_user(session, tenant="acme", name="ivy", role=UserRole.analyst)
    with unit_of_work(session_factory) as session:
        set_view_pii(session, "acme", "ivy", allowed=False)  # never granted: nothing to revoke
        deactivate_user(session, "acme", "ivy")
    with unit_of_work(session_factory) as session:
        deactivate_user(session, "acme", "ivy")  # already off
    with pytest.raises(InactiveUserError), unit_of_work(session_factory) as session:
        rotate_token_by_name(session, "acme", "ivy")
    assert [e.action for e in _events(session_factory)] == ["user_created", "user_deactivated"]


def test_a_change_and_its_event_are_written_together(session_factory: sessionmaker[Session]) -> None:
    """A request failing after the change: no user without its event, ever; on PostgreSQL neither stays.
    (On SQLite a user created as a transaction's first write is committed by its savepoint's release, a
    property of the driver's transaction handling: its event is committed with it, in the savepoint.)"""
    ivy_id, _ = _admin(session_factory, name="ivy")

    def create_then_fail() -> None:
        with unit_of_work(session_factory) as session:
            create_user(session, tenant="acme", name="ghost", role=UserRole.analyst)
            assert session.scalar(select(UserEvent.action).where(UserEvent.user_name == "ghost")) == "user_created"
            raise RuntimeError("the request failed after the change")

    def grant_then_fail() -> None:
        with unit_of_work(session_factory) as session:
            set_view_pii(session, "acme", "ivy", allowed=True)
            raise RuntimeError("the request failed after the change")

    for failing in (create_then_fail, grant_then_fail):
        with pytest.raises(RuntimeError, match="failed after the change"):
            failing()
    with session_factory() as session:
        users = set(session.scalars(select(User.id)))
        pii = set(session.scalars(select(User.id).where(User.view_pii.is_(True))))
    events = _events(session_factory)
    assert users == {e.user_id for e in events if e.action == "user_created"}
    assert pii == set() and "view_pii_granted" not in {e.action for e in events}
    if session_factory.kw["bind"].dialect.name == "postgresql":
        assert users == {ivy_id}


def test_the_orm_refuses_to_change_or_delete_a_user_event(session_factory: sessionmaker[Session]) -> None:
    _admin(session_factory)
    event_id = _events(session_factory)[0].id
    with unit_of_work(session_factory) as session:
        event = session.get(UserEvent, event_id)
        assert event is not None
        event.action = "user_deactivated"
        with pytest.raises(AppendOnlyError):
            session.flush()
        session.rollback()
    with pytest.raises(AppendOnlyError), unit_of_work(session_factory) as session:
        session.delete(session.get(UserEvent, event_id))
    with pytest.raises(AppendOnlyError), unit_of_work(session_factory) as session:
        session.execute(update(UserEvent).where(UserEvent.id == event_id).values(actor_name="someone else"))
    with pytest.raises(AppendOnlyError), unit_of_work(session_factory) as session:
        session.execute(delete(UserEvent).where(UserEvent.id == event_id))
    [kept] = _events(session_factory)
    assert (kept.action, kept.actor_name) == ("user_created", "system")


@pytest.mark.parametrize("statement", ["UPDATE user_events SET actor_name = 'x' WHERE id = :id",
                                       "DELETE FROM user_events WHERE id = :id"])
def test_the_database_refuses_raw_sql_changes_to_user_events(db_url: str, statement: str) -> None:
    engine = create_db_engine(db_url)
    try:
        factory = make_session_factory(engine)
        _admin(factory)
        event_id = _events(factory)[0].id
        with pytest.raises(DBAPIError, match="user_events is append-only"), engine.begin() as connection:
            connection.execute(text(statement), {"id": event_id})
        assert [(e.id, e.actor_name) for e in _events(factory)] == [(event_id, "system")]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_refuses_truncating_user_events_and_deleting_their_tenant(pg_factory: sessionmaker[Session]) -> None:
    _admin(pg_factory)
    engine = pg_factory.kw["bind"]
    with pytest.raises(DBAPIError, match="user_events is append-only"), engine.begin() as connection:
        connection.execute(text("TRUNCATE user_events"))
    # The tenant's events would go by cascade: an audit trail is not removed that way (as review_events).
    with pytest.raises(DBAPIError, match="user_events is append-only"), engine.begin() as connection:
        connection.execute(text("DELETE FROM tenants WHERE slug = 'acme'"))
    assert len(_events(pg_factory)) == 1


# ------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> Any:
    result = runner.invoke(users_app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_every_command_records_the_operator_and_history_shows_one_tenant(cli_database: str) -> None:
    added = json.loads(_cli("add", "sue", "--role", "supervisor", "--tenant", "acme", "--json").output)
    _cli("grant-pii", "sue", "--tenant", "acme")
    _cli("grant-pii", "sue", "--revoke", "--tenant", "acme")
    rotated = json.loads(_cli("rotate-token", "sue", "--tenant", "acme", "--json").output)
    _cli("deactivate", "sue", "--tenant", "acme")
    _cli("add", "bob", "--role", "analyst", "--tenant", "acme")
    _cli("add", "sue", "--role", "admin", "--tenant", "globex")  # the same name in another tenant

    trail = json.loads(_cli("history", "sue", "--tenant", "acme", "--json").output)
    assert trail["tenant"] == "acme"
    assert [(e["action"], e["user"], e["user_id"], e["actor"], e["actor_user_id"]) for e in trail["events"]] == [
        (action, "sue", added["id"], CLI_ACTOR.name, None)
        for action in ("user_created", "view_pii_granted", "view_pii_revoked", "token_rotated", "user_deactivated")
    ]
    whole = json.loads(_cli("history", "--tenant", "acme", "--json").output)["events"]
    assert [(e["user"], e["action"]) for e in whole][-1] == ("bob", "user_created")
    assert {e["user_id"] for e in whole} == {added["id"], added["id"] + 1}  # globex's sue is not there
    newest = json.loads(_cli("history", "--tenant", "acme", "--limit", "2", "--json").output)["events"]
    assert [e["id"] for e in newest] == [e["id"] for e in whole[-2:]]
    globex = json.loads(_cli("history", "--tenant", "globex", "--json").output)["events"]
    assert [(e["user"], e["action"], e["detail"]["role"]) for e in globex] == [("sue", "user_created", "admin")]

    table = _cli("history", "sue", "--tenant", "acme").output
    assert "sue" in table and "cli:" in table
    for output in (table, json.dumps(whole)):
        for token in (added["token"], rotated["token"]):
            assert token not in output and hash_token(token) not in output


def test_history_refuses_an_unknown_user_or_tenant(cli_database: str) -> None:
    _cli("add", "sue", "--role", "supervisor", "--tenant", "acme")
    unknown_user = runner.invoke(users_app, ["history", "zed", "--tenant", "acme"])
    assert unknown_user.exit_code == 2 and "no user 'zed'" in unknown_user.output
    unknown_tenant = runner.invoke(users_app, ["history", "--tenant", "nowhere"])
    assert unknown_tenant.exit_code == 2 and "no tenant 'nowhere'" in unknown_tenant.output


# ------------------------------------------------------------------------------------------------- API


def test_api_changes_record_the_admin_or_the_user_and_only_the_tenant_s_admins_read_them(site: Site) -> None:
    admin_id, admin_token = _admin(site.factory)
    _, globex_token = _admin(site.factory, "globex", "gus")
    made = site.client.post("/api/users", json={"name": "sam", "role": "supervisor"}, headers=bearer(admin_token))
    assert made.status_code == 201
    sam = made.json()
    rotated = site.client.post(f"/api/users/{sam['id']}/rotate-token", headers=bearer(admin_token))
    assert rotated.status_code == 200
    by_self = site.client.post("/api/me/rotate-token", headers=bearer(rotated.json()["token"]))
    assert by_self.status_code == 200

    trail = site.client.get("/api/users/events", params={"user_id": sam["id"]}, headers=bearer(admin_token))
    assert trail.status_code == 200
    assert [(e["action"], e["actor"], e["actor_user_id"], e["user_name"]) for e in trail.json()] == [
        ("user_created", "ada", admin_id, "sam"),
        ("token_rotated", "ada", admin_id, "sam"),
        ("token_rotated", "sam", sam["id"], "sam"),
    ]
    assert trail.json()[0]["detail"]["role"] == "supervisor"
    for token in (sam["token"], rotated.json()["token"], by_self.json()["token"]):
        assert token not in trail.text and hash_token(token) not in trail.text

    whole = site.client.get("/api/users/events", headers=bearer(admin_token)).json()
    assert [e["user_name"] for e in whole] == ["ada", "sam", "sam", "sam"]  # not globex's gus
    page = site.client.get("/api/users/events", params={"after": whole[1]["id"], "limit": 1},
                           headers=bearer(admin_token)).json()
    assert [e["id"] for e in page] == [whole[2]["id"]]

    # Another tenant's admin sees its own trail only, and another tenant's user is not found.
    globex = site.client.get("/api/users/events", headers=bearer(globex_token))
    assert [e["user_name"] for e in globex.json()] == ["gus"]
    assert site.client.get("/api/users/events", params={"user_id": sam["id"]},
                           headers=bearer(globex_token)).status_code == 404
    # Nobody but an admin reads it.
    assert site.client.get("/api/users/events", headers=bearer(by_self.json()["token"])).status_code == 403
    assert site.client.get("/api/users/events").status_code == 401


# ------------------------------------------------------------------------------------------- analysts


@pytest.fixture
def analyst_role() -> Iterator[str]:
    name = f"pc_test_analyst_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.mark.postgres
def test_an_analyst_login_cannot_read_user_events(postgres_url: str, analyst_role: str) -> None:
    """Analysts read the analyst views only; no view reads user_events and nothing grants it (as users)."""
    engine = create_db_engine(postgres_url)
    try:
        factory = make_session_factory(engine)
        _admin(factory)
        with unit_of_work(factory) as session:
            grant_analyst(session, analyst_role, "acme")
        database = engine.url.database
        with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={analyst_role} dbname={database}",
                             autocommit=True) as conn:
            assert conn.execute("SELECT COUNT(*) FROM analytics_calls").fetchone() == (0,)  # a view it may read
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM user_events")
        with unit_of_work(factory) as session:
            revoke_analyst(session, analyst_role)
    finally:
        engine.dispose()
