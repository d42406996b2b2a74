"""The whole role x tenant matrix on every API endpoint, on SQLite and on PostgreSQL.

Every case also checks that a refused request changed nothing, so a 404 or 403 that is answered only
after the write happened would fail.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update

from app.db.session import unit_of_work
from app.models import Call, CallState, Claim, ReviewEvent, UserRole
from app.users import deactivate_user
from tests.web.conftest import (
    ADMINS,
    CAN_REOPEN,
    CAN_REVIEW,
    CAN_SUBMIT,
    TARGETS,
    USERS,
    VISIBLE,
    World,
    expected_status,
)
from tests.web.world import bearer, plain_text_call, seed_user

MATRIX = [pytest.param(user, target, id=f"{user}-{target}") for user in USERS for target in TARGETS]


def events_of(world: World, call_id: str) -> list[str]:
    with world.factory() as session:
        return list(session.scalars(select(ReviewEvent.action).where(ReviewEvent.call_id == call_id)
                                    .order_by(ReviewEvent.id)).all())


def review_status(world: World, claim_id: int) -> str | None:
    with world.factory() as session:
        claim = session.get(Claim, claim_id)
        return claim.review_status.value if claim else None


# -------------------------------------------------------------------------------------------- reads


@pytest.mark.parametrize(("user", "target"), MATRIX)
def test_get_call_and_its_events(world: World, user: str, target: str) -> None:
    call = world.calls[target]
    response = world.client.get(f"/api/calls/{call.call_id}", headers=world.token(user))
    events = world.client.get(f"/api/calls/{call.call_id}/events", headers=world.token(user))
    expected = expected_status(user, target, allowed=True, success=200)
    assert (response.status_code, events.status_code) == (expected, expected)
    if expected == 200:
        body = response.json()
        assert body["call_id"] == call.call_id
        assert {c["id"] for c in body["claims"]} == set(call.claims.values())
        assert len(body["utterances"]) == 6
        assert events.json() == []
    else:
        # The same answer as for a call that never existed: nothing about it leaks.
        missing = world.client.get(f"/api/calls/{uuid.uuid4().hex}", headers=world.token(user))
        assert response.json() == {"detail": f"call {call.call_id} not found"}
        assert missing.status_code == 404


@pytest.mark.parametrize("user", list(USERS))
def test_list_calls_shows_exactly_the_visible_calls(world: World, user: str) -> None:
    response = world.client.get("/api/calls", params={"limit": 200}, headers=world.token(user))
    assert response.status_code == 200
    listed = {c["call_id"] for c in response.json()["calls"]}
    base = {target: call.call_id for target, call in world.calls.items()}
    assert {t for t, call_id in base.items() if call_id in listed} == VISIBLE[user]
    tenant, _role, team, agent_id = USERS[user]
    for item in response.json()["calls"]:
        assert item["tenant"] == tenant
        if agent_id is not None:
            assert item["agent_id"] == agent_id
        if team is not None:
            assert item["team"] == team


# ------------------------------------------------------------------------------------------- writes


@pytest.mark.parametrize(("user", "target"), MATRIX)
def test_review_claim(world: World, user: str, target: str) -> None:
    expected = expected_status(user, target, allowed=user in CAN_REVIEW, success=200)
    call = world.call_for(target, will_change=expected == 200)
    claim_id = call.claim("action0")
    response = world.client.post(f"/api/claims/{claim_id}/review", json={"action": "approve"},
                                 headers=world.token(user))
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.json()["review_status"] == "approved"
        assert events_of(world, call.call_id) == ["claim_approved"]
    else:
        assert review_status(world, claim_id) == "pending"
        assert events_of(world, call.call_id) == []


@pytest.mark.parametrize(("user", "target"), MATRIX)
def test_add_claim(world: World, user: str, target: str) -> None:
    expected = expected_status(user, target, allowed=user in CAN_REVIEW, success=201)
    call = world.call_for(target, will_change=expected == 201)
    body = {"kind": "action_item", "text": "Refund the $30 late fee", "owner": "agent",
            "evidence": [{"utterance": 2, "quote": "I will refund the $30 late fee"}]}
    response = world.client.post(f"/api/calls/{call.call_id}/claims", json=body, headers=world.token(user))
    assert response.status_code == expected, response.text
    with world.factory() as session:
        count = session.scalar(select(func.count()).select_from(Claim).where(Claim.call_id == call.call_id))
    assert count == len(call.claims) + (1 if expected == 201 else 0)


@pytest.mark.parametrize(("user", "target"), MATRIX)
def test_decide_call(world: World, user: str, target: str) -> None:
    expected = expected_status(user, target, allowed=user in CAN_REVIEW, success=200)
    call = world.call_for(target, will_change=expected == 200)
    response = world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "reject"},
                                 headers=world.token(user))
    assert response.status_code == expected, response.text
    with world.factory() as session:
        state = session.scalar(select(Call.state).where(Call.id == call.call_id))
    assert (state.value if state else None) == ("rejected" if expected == 200 else "needs_attention")


@pytest.mark.parametrize(("user", "target"), MATRIX)
def test_reopen_call(world: World, user: str, target: str) -> None:
    expected = expected_status(user, target, allowed=user in CAN_REOPEN, success=200)
    call = world.fresh_call(target)
    with world.factory.begin() as session:
        session.execute(update(Call).where(Call.id == call.call_id).values(state=CallState.approved))
    response = world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "reopen"},
                                 headers=world.token(user))
    assert response.status_code == expected, response.text
    with world.factory() as session:
        state = session.scalar(select(Call.state).where(Call.id == call.call_id))
    assert state is (CallState.needs_attention if expected == 200 else CallState.approved)
    assert events_of(world, call.call_id) == (["call_reopened"] if expected == 200 else [])


@pytest.mark.parametrize(("user", "target"), MATRIX)
def test_delete_call(world: World, user: str, target: str) -> None:
    expected = expected_status(user, target, allowed=user in ADMINS, success=204)
    call = world.call_for(target, will_change=expected == 204)
    if expected == 204:
        world.client.post(f"/api/claims/{call.claim('reason')}/review", json={"action": "approve"},
                          headers=world.token(user))
    response = world.client.delete(f"/api/calls/{call.call_id}", headers=world.token(user))
    assert response.status_code == expected, response.text
    with world.factory() as session:
        still_there = session.get(Call, call.call_id) is not None
        claims_left = session.scalar(select(func.count()).select_from(Claim).where(Claim.call_id == call.call_id))
    if expected == 204:
        assert not still_there
        assert claims_left == 0
        # The earlier decision stays, and the deletion is recorded without transcript content.
        assert events_of(world, call.call_id) == ["claim_approved", "call_deleted"]
        trail = world.client.get(f"/api/calls/{call.call_id}/events", headers=world.token(user)).json()
        assert "Dana" not in str(trail[-1]) and "refund" not in str(trail[-1]).lower()
        assert world.client.get(f"/api/calls/{call.call_id}", headers=world.token(user)).status_code == 404
    else:
        assert still_there
        assert claims_left == len(call.claims)
        assert events_of(world, call.call_id) == []


@pytest.mark.parametrize("user", list(USERS))
def test_submit_call(world: World, user: str) -> None:
    external_id = f"submit-{user}-{uuid.uuid4().hex[:8]}"
    before = len(world.enqueue.calls)
    response = world.client.post("/api/calls", params={"external_id": external_id},
                                 content=plain_text_call(), headers=world.token(user))
    if user not in CAN_SUBMIT:
        assert response.status_code == 403
        assert len(world.enqueue.calls) == before
        with world.factory() as session:
            assert session.scalar(select(Call.id).where(Call.external_id == external_id)) is None
        return
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "created"
    assert body["enqueued"] is True
    assert world.enqueue.calls[before:] == [body["call_id"]]
    # The submitter can see what they handed over (a team supervisor's call gets their team).
    shown = world.client.get(f"/api/calls/{body['call_id']}", headers=world.token(user))
    assert shown.status_code == 200
    assert shown.json()["tenant"] == USERS[user][0]


@pytest.mark.parametrize("user", list(USERS))
def test_user_management_is_for_admins(world: World, user: str) -> None:
    listing = world.client.get("/api/users", headers=world.token(user))
    name = f"new-{uuid.uuid4().hex[:8]}"
    created = world.client.post("/api/users", json={"name": name, "role": "analyst"}, headers=world.token(user))
    if user in ADMINS:
        assert listing.status_code == 200
        assert {u["tenant"] for u in listing.json()} == {USERS[user][0]}
        assert created.status_code == 201
        token = created.json()["token"]
        me = world.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["tenant"] == USERS[user][0]
        assert me.json()["role"] == "analyst"
        again = world.client.post("/api/users", json={"name": name, "role": "analyst"}, headers=world.token(user))
        assert again.status_code == 409
        agent = world.client.post("/api/users", json={"name": f"{name}-agent", "role": "agent"},
                                  headers=world.token(user))
        assert agent.status_code == 422
        assert "agent_id" in agent.json()["detail"]
    else:
        assert listing.status_code == 403
        assert created.status_code == 403


@pytest.mark.parametrize("user", list(USERS))
def test_token_rotation_is_for_admins_of_the_users_tenant(world: World, user: str) -> None:
    # Users made for this case (a rotation would break the shared users' tokens): one per tenant.
    targets: dict[str, tuple[int, str]] = {}
    for tenant in ("acme", "globex"):
        token = seed_user(world.factory, tenant=tenant, name=f"target-{uuid.uuid4().hex[:8]}", role=UserRole.analyst)
        targets[tenant] = (world.client.get("/api/me", headers=bearer(token)).json()["id"], token)
    for tenant, (user_id, token) in targets.items():
        response = world.client.post(f"/api/users/{user_id}/rotate-token", headers=world.token(user))
        # An admin of another tenant is answered as if the user did not exist.
        expected = 403 if user not in ADMINS else 200 if USERS[user][0] == tenant else 404
        assert response.status_code == expected, (tenant, response.text)
        old_token_works = world.client.get("/api/me", headers=bearer(token)).status_code == 200
        assert old_token_works is (expected != 200), tenant
        if expected == 200:
            assert world.client.get("/api/me", headers=bearer(response.json()["token"])).json()["id"] == user_id
        else:
            assert "token" not in response.text


# ------------------------------------------------------------------------------------ authentication

ENDPOINTS = [
    ("GET", "/api/me"),
    ("GET", "/api/calls"),
    ("POST", "/api/calls"),
    ("GET", "/api/calls/{call}"),
    ("DELETE", "/api/calls/{call}"),
    ("GET", "/api/calls/{call}/events"),
    ("POST", "/api/calls/{call}/review"),
    ("POST", "/api/calls/{call}/claims"),
    ("POST", "/api/claims/{claim}/review"),
    ("GET", "/api/users"),
    ("POST", "/api/users"),
    ("POST", "/api/me/rotate-token"),
    ("POST", "/api/users/1/rotate-token"),
    ("GET", "/api/users/events"),
    ("GET", "/api/events"),
    ("GET", "/api/webhooks"),
    ("POST", "/api/webhooks"),
    ("POST", "/api/webhooks/1/disable"),
    ("POST", "/api/webhooks/1/enable"),
    ("POST", "/api/webhooks/1/rotate-secret"),
    ("GET", "/api/webhooks/deliveries"),
    ("POST", "/api/webhooks/deliveries/replay"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_a_valid_token(world: World, method: str, path: str) -> None:
    call = world.calls["acme_a1_blue"]
    url = path.format(call=call.call_id, claim=call.claim("reason"))
    for headers in (
        {},
        {"Authorization": "Bearer pc_not-a-real-token"},
        {"Authorization": f"Basic {world.tokens['admin']}"},
    ):
        response = world.client.request(method, url, headers=headers, json={})
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
    with world.factory() as session:
        assert session.get(Call, call.call_id) is not None
        assert session.scalar(select(func.count()).select_from(ReviewEvent)
                              .where(ReviewEvent.call_id == call.call_id)) == 0


def test_a_browser_session_cookie_does_not_authenticate_the_api(world: World) -> None:
    browser = world.browser("admin")
    assert browser.get("/").status_code == 200
    assert browser.get("/api/calls").status_code == 401


def test_deactivated_user_is_refused(world: World) -> None:
    created = world.client.post("/api/users", json={"name": f"leaver-{uuid.uuid4().hex[:6]}", "role": "supervisor"},
                                headers=world.token("admin")).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert world.client.get("/api/me", headers=headers).status_code == 200

    with unit_of_work(world.factory) as session:
        deactivate_user(session, "acme", created["name"])
    assert world.client.get("/api/me", headers=headers).status_code == 401
