"""Bad or hostile input through the HTTP API ends in a 4xx naming the problem: never a 500, never a record
stored in part, never a decided record changed (issue: bad input never reaches a 500)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.models import Call, CallState, Claim, User, Utterance
from tests.web.conftest import World, csrf_from, sign_in
from tests.web.world import client_for, native_call
from tests.web.world import plain_text_call as plain_text_call_bytes


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def claim_count(world: World, call_id: str) -> int:
    with world.factory() as session:
        return int(session.scalar(select(func.count()).select_from(Claim).where(Claim.call_id == call_id)) or 0)


def approve(world: World, call_id: str, user: str = "supervisor") -> None:
    """Decide every unverified item, then approve the call, through the API."""
    headers = world.token(user)
    detail = world.client.get(f"/api/calls/{call_id}", headers=headers).json()
    for claim in detail["claims"]:
        if claim["status"] != "grounded":
            world.client.post(f"/api/claims/{claim['id']}/review", json={"action": "reject"}, headers=headers)
    response = world.client.post(f"/api/calls/{call_id}/review", json={"decision": "approve"}, headers=headers)
    assert response.status_code == 200, response.text


# ------------------------------------------------------------- 2. utterances per call are bounded


def test_a_call_over_the_utterance_limit_is_422_and_nothing_is_stored(world: World) -> None:
    external_id = unique("long")
    document = {"external_id": external_id,
                "utterances": [{"speaker": "Agent" if n % 2 else "Customer", "text": f"Turn {n}."} for n in range(6)]}
    with client_for(world.url, world.enqueue, max_utterances_per_call=5) as client:
        response = client.post("/api/calls", content=json.dumps(document).encode(), headers=world.token("admin"))
        assert response.status_code == 422, response.text
        assert "limit is 5" in response.json()["detail"]
        document["utterances"].pop()
        accepted = client.post("/api/calls", content=json.dumps(document).encode(), headers=world.token("admin"))
        assert accepted.status_code == 202, accepted.text


# ------------------------------------------------------------------------ 1. decided calls are locked


def test_replacing_an_approved_call_is_409_until_it_is_reopened(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    headers = world.token("supervisor")
    external_id = world.client.get(f"/api/calls/{call.call_id}", headers=headers).json()["external_id"]
    approve(world, call.call_id)
    items = claim_count(world, call.call_id)
    params = {"external_id": external_id, "replace": "true"}
    refused = world.client.post("/api/calls", params=params, content=native_call(external_id, team="blue"),
                                headers=headers)
    assert refused.status_code == 409, refused.text
    assert "approved" in refused.json()["detail"] and "reopen" in refused.json()["detail"]
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None and stored.state is CallState.approved
    assert claim_count(world, call.call_id) == items

    reopened = world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "reopen"}, headers=headers)
    assert reopened.status_code == 200
    replaced = world.client.post("/api/calls", params=params, content=native_call(external_id, team="blue"),
                                 headers=headers)
    assert replaced.status_code == 202, replaced.text
    assert replaced.json()["status"] == "replaced"
    events = world.client.get(f"/api/calls/{call.call_id}/events", headers=headers).json()
    assert events[-1]["action"] == "transcript_replaced"
    # Every event names the person who acted; none is anonymous "system".
    assert {e["actor"] for e in events} == {"supervisor"}
    assert all(e["actor_user_id"] is not None for e in events)


def test_a_rejected_call_also_refuses_replacement(world: World) -> None:
    call = world.fresh_call("acme_a2_red")
    headers = world.token("admin")
    external_id = world.client.get(f"/api/calls/{call.call_id}", headers=headers).json()["external_id"]
    assert world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "reject"},
                             headers=headers).status_code == 200
    refused = world.client.post("/api/calls", params={"external_id": external_id, "replace": "true"},
                                content=native_call(external_id, agent_id="a2"), headers=headers)
    assert refused.status_code == 409
    assert "rejected" in refused.json()["detail"]


# ------------------------------------------------------------- 11. metadata is correctable by replace


def test_replace_with_the_same_utterances_corrects_metadata_and_keeps_the_extraction(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    headers = world.token("admin")
    detail = world.client.get(f"/api/calls/{call.call_id}", headers=headers).json()
    external_id = detail["external_id"]
    items = claim_count(world, call.call_id)
    # The seeded call's own utterances, resubmitted as native JSON with a corrected agent id and team.
    document = {
        "external_id": external_id, "agent_id": "a2", "team": "red", "started_at": "2026-03-03T09:30:00Z",
        "utterances": [{"speaker": u["speaker"], "role": u["role"], "start": u["start"], "end": u["end"],
                        "text": u["text"]} for u in detail["utterances"]],
    }
    body = json.dumps(document).encode()
    without_replace = world.client.post("/api/calls", params={"external_id": external_id}, content=body,
                                        headers=headers)
    assert without_replace.status_code == 409
    assert "agent_id" in without_replace.json()["detail"]
    corrected = world.client.post("/api/calls", params={"external_id": external_id, "replace": "true"},
                                  content=body, headers=headers)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["status"] == "updated"
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None
        assert (stored.agent_id, stored.team) == ("a2", "red")
    assert claim_count(world, call.call_id) == items
    events = world.client.get(f"/api/calls/{call.call_id}/events", headers=headers).json()
    assert events[-1]["action"] == "metadata_corrected"
    assert events[-1]["actor"] == "admin"
    assert events[-1]["before"] == {"agent_id": "a1", "team": "blue"}
    assert events[-1]["after"] == {"agent_id": "a2", "team": "red"}


# --------------------------------------------------------- 5. parallel first submissions of one call


def test_parallel_first_submissions_of_one_external_id_all_get_an_answer(world: World) -> None:
    external_id = unique("race")
    body = native_call(external_id)

    def submit(_: int) -> int:
        response = world.client.post("/api/calls", params={"external_id": external_id}, content=body,
                                     headers=world.token("admin"))
        return response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = sorted(pool.map(submit, range(12)))
    assert codes == [200] * 11 + [202], codes
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(Call).where(Call.external_id == external_id)) == 1
        call_id = session.scalar(select(Call.id).where(Call.external_id == external_id))
        assert session.scalar(select(func.count()).select_from(Utterance).where(Utterance.call_id == call_id)) == 2


# ------------------------------------------------- 3. NUL characters: one rule (422) on both backends


@pytest.mark.parametrize(
    ("method", "path", "params", "named"),
    [
        ("GET", "/api/calls", {"agent": "a\x00"}, "agent"),
        ("GET", "/api/calls/x%00y", {}, "path"),
        ("GET", "/api/calls/x%00y/events", {}, "path"),
        ("POST", "/api/calls", {"external_id": "nul\x00id"}, "external_id"),
        ("GET", "/", {"agent": "\x00"}, "agent"),
    ],
)
def test_a_nul_in_a_path_or_query_parameter_is_422_naming_it(
    world: World, method: str, path: str, params: dict[str, str], named: str
) -> None:
    response = world.client.request(method, path, params=params, content=native_call("n"),
                                    headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert named in response.text and "NUL" in response.text


@pytest.mark.parametrize("where", ["text", "speaker", "external_id", "agent_id"])
def test_a_nul_in_a_submitted_transcript_is_422_and_nothing_is_stored(world: World, where: str) -> None:
    external_id = unique("nul")
    document = json.loads(native_call(external_id))
    if where in ("text", "speaker"):
        document["utterances"][0][where] = "Dana\x00 here"
    else:
        document[where] = "x\x00y"
    response = world.client.post("/api/calls", params={"external_id": external_id},
                                 content=json.dumps(document).encode(), headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["detail"] and where in response.json()["detail"]
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(Call).where(Call.external_id == external_id)) == 0


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/users", {"name": "eve\x00", "role": "analyst"}),
        ("/api/users", {"name": "eve", "role": "agent", "agent_id": "a\x00"}),
        ("/api/calls/{call}/claims", {"text": "Refund\x00", "owner": "agent",
                                      "evidence": [{"utterance": 2, "quote": "I will refund the $30 late fee"}]}),
        ("/api/claims/{claim}/review", {"action": "edit", "text": "Refund \x00 today"}),
        ("/api/claims/{claim}/review", {"action": "edit", "due": "to\x00morrow"}),
    ],
)
def test_a_nul_in_a_json_body_is_422_naming_the_field(world: World, url: str, body: dict[str, object]) -> None:
    call = world.calls["acme_a1_blue"]
    target = url.format(call=call.call_id, claim=call.claim("action0"))
    response = world.client.post(target, json=body, headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["detail"]
    assert response.json()["detail"].startswith("body.")


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/users", {"name": "ok1", "role": "supervisor", "team": "t\ud800"}),
        ("/api/webhooks", {"url": "https://93.184.215.14/x", "description": "d\udfff"}),
        ("/api/claims/{claim}/review", {"action": "edit", "text": "new \ud800 text"}),
        ("/api/claims/{claim}/review", {"action": "edit", "due": "to\udc00morrow"}),
    ],
)
def test_a_lone_surrogate_in_a_json_body_is_422_naming_the_field(world: World, url: str, body: dict[str, str]) -> None:
    # Sent as the JSON escape a careless client produces; no UTF-8 holds it, so it reached the driver (500).
    call = world.calls["acme_a1_blue"]
    target = url.format(call=call.call_id, claim=call.claim("action0"))
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as its \u escape
    response = world.client.post(target, content=raw, headers={**world.token("admin"),
                                                               "content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "lone surrogate" in response.json()["detail"]


@pytest.mark.parametrize(("field", "value"), [
    ("name", "eve\x1b[2J"), ("name", "eve\x07"), ("name", "\u202eeve.exe"), ("agent_id", "A-7\x1b]0;pwned\x07"),
    ("agent_id", "\u202e7-A"), ("team", "blue\x1b[31m"),
])
def test_control_and_bidi_characters_in_a_new_users_fields_are_422(world: World, field: str, value: str) -> None:
    # Accepted and shown on every page and list, and by `postcall users list` in a terminal, while a call's
    # external id refused them: the same check now (app/text/storable.py `require_printable`).
    name = unique("ctl")
    body = {"name": name, "role": "agent", "agent_id": "A-7", field: value}
    response = world.client.post("/api/users", json=body, headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "control character" in response.json()["detail"]
    with world.factory() as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.name.in_([name, value]))) == 0


@pytest.mark.parametrize("external_id", ["  ", "\u200b", "\t"])
def test_a_blank_external_id_is_refused(world: World, external_id: str) -> None:
    response = world.client.post("/api/calls", params={"external_id": external_id},
                                 content=plain_text_call_bytes(), headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "external_id is required" in response.json()["detail"]


@pytest.mark.parametrize("query", ["external_id=%FF", "external_id=caf%C3", "agent=%FE"])
def test_percent_encoded_bytes_that_are_not_utf8_are_422(world: World, query: str) -> None:
    # Decoded leniently they became U+FFFD, and two different ids the same stored call.
    response = world.client.post(f"/api/calls?{query}", content=native_call(unique("utf8")),
                                 headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "not valid UTF-8" in response.json()["detail"]
    assert world.client.get("/api/calls/%FF", headers=world.token("admin")).status_code == 422


def test_a_nul_in_an_edit_posted_from_the_call_page_is_refused(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    browser = world.browser("supervisor")
    page = browser.get(f"/calls/{call.call_id}")
    response = browser.post(
        f"/calls/{call.call_id}/claims/{call.claim('action0')}/review",
        data={"action": "edit", "text": "Refund\x00", "csrf_token": csrf_from(page.text)},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "NUL" in response.text
    with world.factory() as session:
        claim = session.get(Claim, call.claim("action0"))
        assert claim is not None and "\x00" not in claim.text


# ------------------------------------------- 4. surrogates, impossible dates and out-of-range numbers


def test_a_lone_surrogate_in_a_submitted_transcript_is_422(world: World) -> None:
    external_id = unique("surrogate")
    body = native_call(external_id).replace(b"Dana speaking", b"Dana \\ud800 speaking")
    response = world.client.post("/api/calls", params={"external_id": external_id}, content=body,
                                 headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "surrogate" in response.json()["detail"]
    assert "utterances[0].text" in response.json()["detail"]


def test_a_start_time_without_a_utc_instant_is_422(world: World) -> None:
    document = json.loads(native_call(unique("old")))
    document["started_at"] = "0001-01-01T00:00:00+14:00"
    response = world.client.post("/api/calls", content=json.dumps(document).encode(), headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert "started_at" in response.json()["detail"]


def test_the_last_representable_day_is_a_valid_filter(world: World) -> None:
    response = world.client.get("/api/calls", params={"date_to": "9999-12-31", "date_from": "0001-01-01"},
                                headers=world.token("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["total"] >= 2


@pytest.mark.parametrize("day", ["0.0", "1700000000", "2026-3-1", "03/01/2026"])
def test_a_day_filter_takes_iso_days_only(world: World, day: str) -> None:
    response = world.client.get("/api/calls", params={"date_from": day}, headers=world.token("admin"))
    assert response.status_code == 422
    assert "YYYY-MM-DD" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/api/calls", {"offset": str(2**63)}),
        ("GET", "/api/calls", {"offset": str(2**31)}),
        ("GET", "/api/calls", {"limit": str(2**63)}),
        ("POST", f"/api/claims/{2**31}/review", {}),
        ("POST", f"/api/claims/{2**63}/review", {}),
        ("GET", "/", {"page": str(2**62)}),
    ],
)
def test_numbers_beyond_the_database_range_are_422(world: World, method: str, path: str,
                                                   params: dict[str, str]) -> None:
    client = world.browser("admin") if path == "/" else world.client
    response = client.request(method, path, params=params, json={"action": "approve"},
                              headers=world.token("admin"))
    assert response.status_code == 422, response.text


# ---------------------------------------------------------------- 7. sessions end and stay their own


def test_signing_out_ends_the_session_on_the_server(world: World) -> None:
    with TestClient(world.client.app) as browser:
        sign_in(browser, world.tokens["analyst"])
        saved = dict(browser.cookies)
        assert browser.get("/", follow_redirects=False).status_code == 200
        page = browser.get("/")
        assert browser.post("/logout", data={"csrf_token": csrf_from(page.text)},
                            follow_redirects=False).status_code == 303
    with TestClient(world.client.app, cookies=saved) as replay:
        # The cookie saved before signing out is refused: back to the sign-in page.
        response = replay.get("/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")
    with TestClient(world.client.app) as again:
        sign_in(again, world.tokens["analyst"])  # signing in afresh works
        assert again.get("/", follow_redirects=False).status_code == 200


def test_a_refused_form_post_does_not_replace_a_signed_in_session(world: World) -> None:
    with TestClient(world.client.app) as browser:
        sign_in(browser, world.tokens["supervisor"])
        call = world.calls["acme_a1_blue"]
        # A cross-site form arrives without the SameSite=Lax cookie and without the CSRF token.
        with TestClient(world.client.app) as cross_site:
            refused = cross_site.post(f"/calls/{call.call_id}/decision", data={"decision": "approve"},
                                      follow_redirects=False)
        assert refused.status_code in (303, 403)
        assert "set-cookie" not in refused.headers
        # The same post carrying the cookie but a forged token: 403, and the session survives it.
        forged = browser.post(f"/calls/{call.call_id}/decision", data={"decision": "approve", "csrf_token": "x"},
                              follow_redirects=False)
        assert forged.status_code == 403
        assert "set-cookie" not in forged.headers
        assert browser.get("/", follow_redirects=False).status_code == 200


# ------------------------------------------------------------ 12. the OpenAPI document matches answers


def test_every_documented_422_is_the_error_body_the_api_sends(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    response = world.client.get("/api/calls", params={"limit": "0"}, headers=world.token("admin"))
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


def test_a_malformed_json_body_is_a_documented_422(world: World) -> None:
    call = world.calls["acme_a1_blue"]
    for body in (b"{not json", b'{"action": "\xff"}', b""):
        response = world.client.post(f"/api/claims/{call.claim('reason')}/review", content=body,
                                     headers={**world.token("admin"), "content-type": "application/json"})
        assert response.status_code == 422, (body, response.text)
        assert isinstance(response.json()["detail"], str)


def test_options_lists_the_methods_a_path_serves(world: World) -> None:
    response = world.client.options("/api/calls")
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    detail = world.client.options("/api/calls/some-id")
    assert set(detail.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE", "OPTIONS"}
    assert world.client.options("/api/nothing-here").status_code == 404


def test_head_answers_as_get_without_a_body(world: World) -> None:
    # Load balancers probe with HEAD; a GET-only route answered 405 and the app looked down.
    health, head = world.client.get("/healthz"), world.client.head("/healthz")
    assert head.status_code == health.status_code and head.content == b""
    assert head.headers["content-type"] == health.headers["content-type"]
    listing = world.client.head("/api/calls", headers=world.token("admin"))
    assert listing.status_code == 200 and listing.content == b""
    assert world.client.head("/api/calls").status_code == 401  # the same checks as GET
    assert world.client.head("/api/nothing-here").status_code == 404


def test_head_on_the_export_answers_its_headers_without_running_the_export(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # HEAD ran the GET and threw its body away: for /api/export, the tenant's whole export, for nothing.
    import app.web.analytics as analytics

    pulled: list[int] = []

    def counted_export(*_: object, **__: object) -> object:
        for chunk in range(1_000):
            pulled.append(chunk)
            yield b"{}\n"

    monkeypatch.setattr(analytics, "export_bytes", counted_export)
    head = world.client.head("/api/export", headers=world.token("admin"))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in head.headers["content-disposition"]
    assert len(pulled) <= 1  # stopped at the first chunk, not the thousandth
    assert world.client.head("/api/export").status_code == 401  # the same checks as GET
    get = world.client.get("/api/export", headers=world.token("admin"))
    assert get.status_code == 200 and len(get.content.splitlines()) == 1_000
