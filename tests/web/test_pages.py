"""The review pages: sign-in, session cookie, CSRF, the queue, the call page and its forms."""

from __future__ import annotations

import html
import json
import logging
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db.session import unit_of_work
from app.models import Claim, ReviewEvent
from app.pipeline.calls import get_call
from app.users import deactivate_user
from app.web import create_app
from tests.web.conftest import MATRIX_USERS, TARGETS, VISIBLE, World, csrf_from, sign_in
from tests.web.world import settings_for

PAGE_MATRIX = [pytest.param(u, t, id=f"{u}-{t}") for u in MATRIX_USERS for t in TARGETS]


def claim_state(world: World, claim_id: int) -> str:
    with world.factory() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        return claim.review_status.value


# -------------------------------------------------------------------------------------------- sign-in


def test_pages_redirect_to_sign_in_and_back(world: World) -> None:
    with TestClient(world.client.app) as client:
        call_id = world.calls["acme_a1_blue"].call_id
        response = client.get(f"/calls/{call_id}", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next=%2Fcalls%2F{call_id}"
        page = client.get(response.headers["location"])
        signed = client.post("/login", data={"token": world.tokens["agent_a1"], "csrf_token": csrf_from(page.text),
                                             "next": f"/calls/{call_id}"}, follow_redirects=False)
        assert signed.headers["location"] == f"/calls/{call_id}"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        assert client.get(f"/calls/{call_id}").status_code == 200


def test_sign_in_refuses_a_bad_token_and_a_missing_csrf_token(world: World) -> None:
    with TestClient(world.client.app) as client:
        page = client.get("/login")
        wrong = client.post("/login", data={"token": "pc_wrong", "csrf_token": csrf_from(page.text)})
        assert wrong.status_code == 401
        assert "not valid" in wrong.text
        forged = client.post("/login", data={"token": world.tokens["admin"]}, follow_redirects=False)
        assert forged.status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example"])
def test_sign_in_never_redirects_off_site(world: World, target: str) -> None:
    with TestClient(world.client.app) as client:
        page = client.get("/login")
        signed = client.post("/login", data={"token": world.tokens["admin"], "csrf_token": csrf_from(page.text),
                                             "next": target}, follow_redirects=False)
        assert signed.headers["location"] == "/"


def test_sign_out_ends_the_session(world: World) -> None:
    with TestClient(world.client.app) as client:
        sign_in(client, world.tokens["analyst"])
        page = client.get("/")
        assert client.post("/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
                           ).status_code == 303
        assert client.get("/", follow_redirects=False).status_code == 303


def test_a_deactivated_user_loses_the_open_session(world: World) -> None:
    name = f"temp-{uuid.uuid4().hex[:6]}"
    token = world.client.post("/api/users", json={"name": name, "role": "analyst"},
                              headers=world.token("admin")).json()["token"]
    with TestClient(world.client.app) as client:
        sign_in(client, token)
        assert client.get("/").status_code == 200
        with unit_of_work(world.factory) as session:
            deactivate_user(session, "acme", name)
        assert client.get("/", follow_redirects=False).status_code == 303


def test_secure_cookie_when_served_over_https(world: World) -> None:
    app = create_app(settings_for(world.url), https_only=True)
    with TestClient(app, base_url="https://testserver") as client:
        page = client.get("/login")
        signed = client.post("/login", data={"token": world.tokens["admin"], "csrf_token": csrf_from(page.text)},
                             follow_redirects=False)
        assert "secure" in signed.headers["set-cookie"].lower()


def test_default_secret_key_is_warned_about(world: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.web.app"):
        app = create_app(Settings(database_url=world.url))
    assert "POSTCALL_SECRET_KEY" in caplog.text
    with TestClient(app) as client:
        assert "Development secret key in use" in client.get("/login").text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="app.web.app"):
        create_app(settings_for(world.url))
    assert "POSTCALL_SECRET_KEY" not in caplog.text


def test_a_forged_session_cookie_is_ignored(world: World) -> None:
    with TestClient(world.client.app) as client:
        client.cookies.set("postcall_session", "eyJ1aWQiOiAxfQ==.forged.signature")
        assert client.get("/", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------------ the matrix


@pytest.mark.parametrize(("user", "target"), PAGE_MATRIX)
def test_call_page_matrix(world: World, user: str, target: str) -> None:
    call = world.calls[target]
    response = world.browser(user).get(f"/calls/{call.call_id}")
    assert response.status_code == (200 if target in VISIBLE[user] else 404)
    if response.status_code == 404:
        assert "Dana" not in response.text  # nothing of the call's content


@pytest.mark.parametrize(("user", "target"), PAGE_MATRIX)
def test_review_form_matrix(world: World, user: str, target: str) -> None:
    visible, reviewer = target in VISIBLE[user], user != "analyst"
    call = world.call_for(target, will_change=visible and reviewer)
    browser = world.browser(user)
    token = csrf_from(browser.get("/").text)
    response = browser.post(f"/calls/{call.call_id}/claims/{call.claim('reason')}/review",
                            data={"action": "approve", "csrf_token": token}, follow_redirects=False)
    assert response.status_code == (303 if visible and reviewer else 403 if visible else 404)
    assert claim_state(world, call.claim("reason")) == ("approved" if visible and reviewer else "pending")


# ----------------------------------------------------------------------------------------- queue


def test_queue_lists_visible_calls_with_counts_and_filters(world: World) -> None:
    browser = world.browser("agent_a1")
    page = browser.get("/")
    assert page.status_code == 200
    assert f"/calls/{world.calls['acme_a1_blue'].call_id}" in page.text
    assert f"/calls/{world.calls['acme_a2_red'].call_id}" not in page.text
    assert f"/calls/{world.calls['globex_a1_blue'].call_id}" not in page.text
    assert re.search(r"to review <b>\d+</b>", page.text)
    assert "unverified items" in page.text
    empty = browser.get("/", params={"agent": "someone-else"})
    assert "No calls match." in empty.text
    assert "/calls/" not in empty.text.split("</form>", 2)[-1]
    # Malformed filters fall back instead of failing.
    assert browser.get("/", params={"state": "nonsense", "date_from": "yesterday"}).status_code == 200


# ------------------------------------------------------------------------------------- call page


def test_call_page_shows_transcript_items_and_evidence_marks(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    page = world.browser("supervisor").get(f"/calls/{call.call_id}").text
    # The transcript with roles and timestamps.
    assert page.count('class="utt role-') == 6
    assert '<span class="who">agent</span>' in page and "00:08" in page
    # The evidence of the action item is marked exactly around its verified span.
    action = call.claim("action0")
    marked = re.findall(r'<span class="ev" data-c="([^"]*)">([^<]*)</span>', page)
    spans = [html.unescape(text) for ids, text in marked if str(action) in ids.split()]
    assert "".join(spans) == "I will also send you a confirmation email today"
    # The fabricated item is flagged, never stated as fact.
    fabricated = page.split(f'id="claim-{call.claim("summary1")}"')[1].split("</article>")[0]
    assert "unverified" in fabricated and "Unverified claim:" in fabricated
    assert "ungrounded: not found" in fabricated
    grounded = page.split(f'id="claim-{call.claim("reason")}"')[1].split("</article>")[0]
    assert "Unverified claim:" not in grounded and ">verified<" in grounded
    # Forms carry the CSRF token; the call cannot be approved while an unverified item is pending.
    assert page.count('name="csrf_token"') >= 2 * len(call.claims)
    assert re.search(r'id="approve-call"[^>]*disabled', page)
    assert "/static/call.js" in page


def test_analyst_sees_a_read_only_page(world: World) -> None:
    page = world.browser("analyst").get(f"/calls/{world.calls['acme_a1_blue'].call_id}").text
    assert "Read-only" in page
    assert 'value="approve"' not in page and "Add a missed item" not in page


def test_form_without_csrf_token_changes_nothing(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    response = world.browser("admin").post(f"/calls/{call.call_id}/claims/{call.claim('reason')}/review",
                                           data={"action": "approve", "csrf_token": "stolen?"})
    assert response.status_code == 403
    assert claim_state(world, call.claim("reason")) == "pending"


def test_review_forms_edit_reject_add_and_history(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    browser = world.browser("supervisor")
    base = f"/calls/{call.call_id}"
    token = csrf_from(browser.get(base).text)
    edited = browser.post(f"{base}/claims/{call.claim('action0')}/review", follow_redirects=False, data={
        "action": "edit", "text": "Email the confirmation", "owner": "agent", "due": "today", "csrf_token": token})
    assert edited.headers["location"] == f"{base}#claim-{call.claim('action0')}"
    browser.post(f"{base}/claims/{call.claim('summary1')}/review", data={"action": "reject", "csrf_token": token})
    selection = json.dumps([{"utterance": 4, "quote": "You will see the refund within 5 business days"}])
    added = browser.post(f"{base}/claims", follow_redirects=False, data={
        "kind": "action_item", "text": "Refund arrives within 5 business days", "owner": "agent",
        "due": "5 business days", "selection": selection, "csrf_token": token})
    assert added.status_code == 303
    page = browser.get(base).text
    assert "Item added." in page
    assert "added by reviewer" in page
    history = page.split('id="history"')[1]
    assert history.index("edited an item") < history.index("rejected an item") < history.index("added an item")
    assert "text: “Send the customer a confirmation email” → “Email the confirmation”" in html.unescape(history)
    assert not re.search(r'id="approve-call"[^>]*disabled', page)
    approved = browser.post(f"{base}/decision", data={"decision": "approve", "csrf_token": token})
    assert "Call approved." in approved.text
    with world.factory() as session:
        assert get_call(session, call.call_id).state.value == "approved"
        actions = session.scalars(select(ReviewEvent.action).where(ReviewEvent.call_id == call.call_id)
                                  .order_by(ReviewEvent.id)).all()
    assert actions == ["claim_edited", "claim_rejected", "claim_added", "call_approved"]


def test_supervisor_reopens_a_decided_call_from_its_page(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    base = f"/calls/{call.call_id}"
    agent = world.browser("agent_a1")
    agent_token = csrf_from(agent.get(base).text)
    rejected = agent.post(f"{base}/decision", data={"decision": "reject", "csrf_token": agent_token})
    assert "Call rejected." in rejected.text
    assert 'id="reopen-call"' not in rejected.text  # agents decide; reopening is a supervisor's call
    refused = agent.post(f"{base}/decision", data={"decision": "reopen", "csrf_token": agent_token})
    assert "may not reopen" in refused.text
    supervisor = world.browser("supervisor")
    page = supervisor.get(base).text
    assert 'id="reopen-call"' in page
    reopened = supervisor.post(f"{base}/decision", data={"decision": "reopen", "csrf_token": csrf_from(page)})
    assert "Call reopened for review." in reopened.text
    assert 'id="reopen-call"' not in reopened.text
    assert "reopened the call for review" in reopened.text.split('id="history"')[1]
    with world.factory() as session:
        assert get_call(session, call.call_id).state.value == "needs_attention"


def test_refused_decisions_become_messages_on_the_page(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    browser = world.browser("supervisor")
    base = f"/calls/{call.call_id}"
    token = csrf_from(browser.get(base).text)
    refused = browser.post(f"{base}/decision", data={"decision": "approve", "csrf_token": token})
    assert refused.status_code == 200
    assert "unverified item(s) still pending" in refused.text
    bad_selection = browser.post(f"{base}/claims", data={
        "text": "Something", "owner": "agent", "selection": "not json", "csrf_token": token})
    assert "could not be read" in bad_selection.text
    with world.factory() as session:
        assert get_call(session, call.call_id).state.value == "needs_attention"


def test_admin_deletes_from_the_page(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    browser = world.browser("admin")
    page = browser.get(f"/calls/{call.call_id}").text
    assert "data-confirm" in page
    done = browser.post(f"/calls/{call.call_id}/delete", data={"csrf_token": csrf_from(page)})
    assert "deleted; its audit trail is kept" in done.text
    assert browser.get(f"/calls/{call.call_id}").status_code == 404
    supervisor_page = world.browser("supervisor").get(f"/calls/{world.calls['acme_a1_blue'].call_id}").text
    assert "/delete" not in supervisor_page
