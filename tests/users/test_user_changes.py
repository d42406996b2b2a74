"""A user's role, team and agent id change, and a deactivated user comes back (`postcall users change`,
`postcall users reactivate`, PATCH /api/users/{id}, POST /api/users/{id}/deactivate and /reactivate): each
change recorded, holding from the user's next request, never leaving a tenant without an active admin from
the API, and a reactivated user's old token never working again."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.users import users_app
from app.db.session import unit_of_work
from app.models import User, UserRole
from app.models.tables import UserEvent
from app.users import LastAdminError, UserError, change_user, create_user, set_view_pii
from tests.users.conftest import Site
from tests.web.world import bearer, seed_call, seed_user

runner = CliRunner()


def _events(factory: sessionmaker[Session], name: str) -> list[tuple[str, dict[str, object]]]:
    with factory() as session:
        return [(e.action, e.detail) for e in session.scalars(
            select(UserEvent).where(UserEvent.user_name == name).order_by(UserEvent.id))]


def _user_id(factory: sessionmaker[Session], name: str) -> int:
    with factory() as session:
        found = session.scalar(select(User.id).where(User.name == name))
        assert found is not None
        return found


def test_the_commands_change_a_user_and_bring_one_back_with_a_new_token(
    cli_database: str, session_factory: sessionmaker[Session]
) -> None:
    added = runner.invoke(users_app, ["add", "dana", "--role", "agent", "--agent-id", "a1", "--tenant", "acme",
                                      "--json"])
    assert added.exit_code == 0, added.output
    old_token = json.loads(added.output)["token"]

    promoted = runner.invoke(users_app, ["change", "dana", "--role", "supervisor", "--team", "north", "--tenant",
                                         "acme", "--json"])
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.output) | {"id": 0} == {
        "id": 0, "name": "dana", "tenant": "acme", "role": "supervisor", "team": "north", "agent_id": "a1",
        "active": True}
    cleared = runner.invoke(users_app, ["change", "dana", "--no-team", "--tenant", "acme"])
    assert cleared.exit_code == 0, cleared.output
    same = runner.invoke(users_app, ["change", "dana", "--role", "supervisor", "--tenant", "acme"])
    assert same.exit_code == 0, same.output  # nothing changed: nothing recorded
    nothing = runner.invoke(users_app, ["change", "dana", "--tenant", "acme"])
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    both = runner.invoke(users_app, ["change", "dana", "--team", "x", "--no-team", "--tenant", "acme"])
    assert both.exit_code == 2

    still_on = runner.invoke(users_app, ["reactivate", "dana", "--tenant", "acme"])
    assert still_on.exit_code != 0 and "is active" in still_on.output
    assert runner.invoke(users_app, ["deactivate", "dana", "--tenant", "acme"]).exit_code == 0
    back = runner.invoke(users_app, ["reactivate", "dana", "--tenant", "acme", "--json"])
    assert back.exit_code == 0, back.output
    new_token = json.loads(back.output)["token"]
    assert new_token != old_token

    assert [action for action, _ in _events(session_factory, "dana")] == [
        "user_created", "user_changed", "user_changed", "user_deactivated", "user_reactivated"]
    changes = _events(session_factory, "dana")
    assert changes[1][1] == {"role": {"from": "agent", "to": "supervisor"}, "team": {"from": None, "to": "north"}}
    assert changes[2][1] == {"team": {"from": "north", "to": None}}
    assert changes[4][1]["active"] == {"from": False, "to": True}
    assert old_token not in json.dumps(changes) and new_token not in json.dumps(changes)


def test_an_agent_needs_an_agent_id_after_a_change_as_at_creation(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        created = create_user(session, tenant="acme", name="sam", role=UserRole.supervisor)
        tenant_id, user_id = created.user.tenant_id, created.user.id
    with pytest.raises(UserError, match="agent id"), unit_of_work(session_factory) as session:
        change_user(session, tenant_id, user_id, role=UserRole.agent)
    with unit_of_work(session_factory) as session:
        change_user(session, tenant_id, user_id, role=UserRole.agent, agent_id="a7")
    with pytest.raises(UserError, match="agent id"), unit_of_work(session_factory) as session:
        change_user(session, tenant_id, user_id, agent_id=None)
    with session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None and (user.role, user.agent_id) == (UserRole.agent, "a7")


def test_an_admin_changes_a_role_that_holds_from_the_next_request(site: Site) -> None:
    admin = bearer(seed_user(site.factory, tenant="acme", name="ada", role=UserRole.admin))
    sam = bearer(seed_user(site.factory, tenant="acme", name="sam", role=UserRole.supervisor))
    seed_call(site.factory, tenant="acme", external_id="mine", agent_id="a1", team=None)
    seed_call(site.factory, tenant="acme", external_id="theirs", agent_id="a2", team=None)
    sam_id = _user_id(site.factory, "sam")
    assert len(site.client.get("/api/calls", headers=sam).json()["calls"]) == 2

    demoted = site.client.patch(f"/api/users/{sam_id}", json={"role": "agent", "agent_id": "a1"}, headers=admin)
    assert demoted.status_code == 200, demoted.text
    assert (demoted.json()["role"], demoted.json()["agent_id"]) == ("agent", "a1")
    seen = site.client.get("/api/calls", headers=sam)  # the same token, the new role
    assert seen.status_code == 200
    assert [item["external_id"] for item in seen.json()["calls"]] == ["mine"]
    assert site.client.get("/api/me", headers=sam).json()["role"] == "agent"

    cleared = site.client.patch(f"/api/users/{sam_id}", json={"role": "supervisor", "agent_id": None}, headers=admin)
    assert cleared.status_code == 200 and cleared.json()["agent_id"] is None
    for refused, code in (({"rolle": "admin"}, 422), ({}, 422), ({"role": "agent"}, 422), ({"role": "owner"}, 422)):
        answer = site.client.patch(f"/api/users/{sam_id}", json=refused, headers=admin)
        assert answer.status_code == code, (refused, answer.text)
    assert site.client.patch(f"/api/users/{sam_id}", json={"role": "admin"}, headers=sam).status_code == 403
    assert site.client.get("/api/me", headers=sam).json()["role"] == "supervisor"


def test_another_tenants_user_is_not_found(site: Site) -> None:
    admin = bearer(seed_user(site.factory, tenant="acme", name="ada", role=UserRole.admin))
    seed_user(site.factory, tenant="globex", name="gus", role=UserRole.admin)
    gus = _user_id(site.factory, "gus")
    for method, path, body in (("PATCH", f"/api/users/{gus}", {"role": "analyst"}),
                               ("POST", f"/api/users/{gus}/deactivate", None),
                               ("POST", f"/api/users/{gus}/reactivate", None)):
        answer = site.client.request(method, path, json=body, headers=admin)
        assert answer.status_code == 404, (path, answer.text)
    with site.factory() as session:
        user = session.get(User, gus)
        assert user is not None and user.active and user.role is UserRole.admin


def test_the_api_never_leaves_a_tenant_without_an_active_admin(site: Site) -> None:
    ada = bearer(seed_user(site.factory, tenant="acme", name="ada", role=UserRole.admin))
    ada_id = _user_id(site.factory, "ada")
    for method, path, body in (("PATCH", f"/api/users/{ada_id}", {"role": "supervisor"}),
                               ("POST", f"/api/users/{ada_id}/deactivate", None)):
        answer = site.client.request(method, path, json=body, headers=ada)
        assert answer.status_code == 409, answer.text
        assert "only active admin" in answer.json()["detail"]
    seed_user(site.factory, tenant="acme", name="bo", role=UserRole.admin)
    assert site.client.patch(f"/api/users/{ada_id}", json={"role": "supervisor"}, headers=ada).status_code == 200
    assert site.client.get("/api/users", headers=ada).status_code == 403  # her own demotion holds at once


@pytest.mark.postgres
def test_two_admins_demoting_each_other_at_once_leave_one_admin(pg_factory: sessionmaker[Session]) -> None:
    # Each counted the other as the admin left, before either committed: the tenant kept none.
    factory = pg_factory
    with unit_of_work(factory) as session:
        ada, bo = (create_user(session, tenant="acme", name=name, role=UserRole.admin).user
                   for name in ("ada", "bo"))
        tenant_id, ada_id, bo_id = ada.tenant_id, ada.id, bo.id
    outcome: list[BaseException | None] = []

    def demote_bo() -> None:
        try:
            with unit_of_work(factory) as session:
                change_user(session, tenant_id, bo_id, role=UserRole.supervisor)
            outcome.append(None)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    with unit_of_work(factory) as session:
        change_user(session, tenant_id, ada_id, role=UserRole.supervisor)
        other = threading.Thread(target=demote_bo)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive() and not outcome  # waits for this demotion's transaction
    other.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], LastAdminError)
    with factory() as session:
        assert session.scalars(select(User.id).where(User.role == UserRole.admin)).all() == [bo_id]


def test_deactivate_and_reactivate_through_the_api(site: Site) -> None:
    ada_token = seed_user(site.factory, tenant="acme", name="ada", role=UserRole.admin)
    ada = bearer(ada_token)
    old = seed_user(site.factory, tenant="acme", name="dana", role=UserRole.agent, agent_id="a1")
    dana_id = _user_id(site.factory, "dana")
    assert site.client.get("/api/me", headers=bearer(old)).status_code == 200

    off = site.client.post(f"/api/users/{dana_id}/deactivate", headers=ada)
    assert off.status_code == 200 and off.json()["active"] is False
    assert site.client.get("/api/me", headers=bearer(old)).status_code == 401
    assert site.client.post(f"/api/users/{dana_id}/deactivate", headers=ada).status_code == 200  # already off

    back = site.client.post(f"/api/users/{dana_id}/reactivate", headers=ada)
    assert back.status_code == 200, back.text
    new = back.json()["token"]
    assert back.json()["active"] is True and new != old
    assert site.client.get("/api/me", headers=bearer(old)).status_code == 401  # never again
    assert site.client.get("/api/me", headers=bearer(new)).json()["name"] == "dana"
    again = site.client.post(f"/api/users/{dana_id}/reactivate", headers=ada)
    assert again.status_code == 409
    assert site.client.post(f"/api/users/{dana_id}/reactivate", headers=bearer(new)).status_code == 403

    # An admin without view_pii never gets the token of a user who has it, by reactivating them either.
    with unit_of_work(site.factory) as session:
        set_view_pii(session, "acme", "dana", allowed=True)
    assert site.client.post(f"/api/users/{dana_id}/deactivate", headers=ada).status_code == 200
    assert site.client.post(f"/api/users/{dana_id}/reactivate", headers=ada).status_code == 403
    assert [action for action, _ in _events(site.factory, "dana")] == [
        "user_created", "user_deactivated", "user_reactivated", "view_pii_granted", "user_deactivated"]
