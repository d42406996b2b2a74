"""The JSON API beyond authorization: handing over transcripts, list filters, review bodies, the spec."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.db.session import unit_of_work
from app.models import Call, CallState
from app.pipeline.calls import get_call
from app.users import deactivate_user
from tests.web.conftest import World, sign_in
from tests.web.world import UNREACHABLE_BROKER_URL, BrokerQueue, bearer, client_for, native_call, plain_text_call


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stored_calls(world: World, external_id: str) -> int:
    with world.factory() as session:
        return int(session.scalar(select(func.count()).select_from(Call).where(Call.external_id == external_id)) or 0)


# ----------------------------------------------------------------------------------- POST /api/calls


def test_submit_stores_queued_call_and_enqueues_after_commit(world: World) -> None:
    external_id = unique("post")
    seen_in_db: list[CallState] = []

    def enqueue(call_ids: Sequence[str]) -> int:
        # The worker must find the call committed when the message arrives.
        with world.factory() as session:
            seen_in_db.extend(get_call(session, call_id).state for call_id in call_ids)
        return world.enqueue(call_ids)

    with client_for(world.url, enqueue) as client:
        response = client.post("/api/calls", params={"external_id": external_id, "source_name": "call.txt"},
                               content=plain_text_call(), headers=world.token("supervisor"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["state"] == "queued"
    assert body["format"] == "text"
    assert body["enqueued"] is True
    assert seen_in_db == [CallState.queued]
    detail = world.client.get(f"/api/calls/{body['call_id']}", headers=world.token("supervisor")).json()
    assert [u["role"] for u in detail["utterances"]] == ["agent", "customer", "agent"]
    assert detail["utterances"][1]["text"] == "I was charged a $30 late fee although I paid on time."


def test_broker_down_still_accepts_and_says_so(world: World) -> None:
    external_id = unique("nobroker")
    with client_for(world.url, BrokerQueue(UNREACHABLE_BROKER_URL)) as client:
        response = client.post("/api/calls", params={"external_id": external_id}, content=plain_text_call(),
                               headers=world.token("admin"))
    assert response.status_code == 202
    assert response.json()["enqueued"] is False
    assert "reconciler" in response.json()["detail"]
    with world.factory() as session:
        assert get_call(session, response.json()["call_id"]).state is CallState.queued


def test_identical_resubmission_is_a_no_op_and_changed_content_needs_replace(world: World) -> None:
    external_id = unique("again")
    params = {"external_id": external_id}
    first = world.client.post("/api/calls", params=params, content=plain_text_call(), headers=world.token("admin"))
    enqueued = len(world.enqueue.calls)
    again = world.client.post("/api/calls", params=params, content=plain_text_call(), headers=world.token("admin"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["status"] == "unchanged"
    assert again.json()["call_id"] == first.json()["call_id"]
    # Still queued (its first message may never have reached the broker): handed to the workers again.
    assert again.json()["enqueued"] is True and len(world.enqueue.calls) == enqueued + 1
    with unit_of_work(world.factory) as session:
        session.execute(update(Call).where(Call.id == first.json()["call_id"]).values(state=CallState.failed))
    settled = world.client.post("/api/calls", params=params, content=plain_text_call(), headers=world.token("admin"))
    assert settled.json()["enqueued"] is False and len(world.enqueue.calls) == enqueued + 1  # processed: nothing
    changed = plain_text_call(amount="$45")
    conflict = world.client.post("/api/calls", params=params, content=changed, headers=world.token("admin"))
    assert conflict.status_code == 409
    assert "replace" in conflict.json()["detail"]
    replaced = world.client.post("/api/calls", params={**params, "replace": "true"}, content=changed,
                                 headers=world.token("admin"))
    assert replaced.status_code == 202
    assert replaced.json()["status"] == "replaced"
    assert world.enqueue.calls[-1] == first.json()["call_id"]


def test_an_external_id_is_one_id_as_stored(world: World) -> None:
    external_id = unique("padded")
    # The query's id silently replaced a different one in the body.
    clash = world.client.post("/api/calls", params={"external_id": unique("other")},
                              content=native_call(external_id), headers=world.token("admin"))
    assert clash.status_code == 422 and "not the transcript's" in clash.json()["detail"]
    # Padded, it was stored padded: a call nobody found by its id, and a check of who may overwrite it that
    # looked up another id than the one stored.
    first = world.client.post("/api/calls", params={"external_id": f"  {external_id} "},
                              content=plain_text_call(), headers=world.token("admin"))
    assert first.status_code == 202 and first.json()["external_id"] == external_id
    again = world.client.post("/api/calls", params={"external_id": external_id}, content=plain_text_call(),
                              headers=world.token("admin"))
    assert again.status_code == 200 and again.json()["call_id"] == first.json()["call_id"]
    hidden = world.client.post("/api/calls", params={"external_id": f" {external_id}", "replace": "true"},
                               content=plain_text_call() + b"[00:59] Agent: Bye.\n",
                               headers=world.token("supervisor_blue"))
    assert hidden.status_code == 409, hidden.text  # a call of no team the blue supervisor may not see
    broken = world.client.post("/api/calls", params={"external_id": "a\tb"}, content=plain_text_call(),
                               headers=world.token("admin"))
    assert broken.status_code == 422 and "a tab" in broken.json()["detail"]


def test_native_json_carries_its_own_external_id(world: World) -> None:
    external_id = unique("native")
    response = world.client.post("/api/calls", content=native_call(external_id), headers={
        **world.token("admin"), "Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    assert response.json()["external_id"] == external_id
    assert response.json()["format"] == "native"


@pytest.mark.parametrize(
    ("body", "params", "problem"),
    [
        (b"", {"external_id": "x"}, "body is empty"),
        (b'{"utterances": [{"speaker": "A", "txt": "hi"}]}', {"external_id": "x"}, "utterances[0]"),
        (b"just some words without any speaker", {"external_id": "x"}, "not a transcript format"),
        (plain_text_call(), {}, "external_id is required"),
        (plain_text_call(), {"external_id": "x", "format": "docx"}, "unknown format 'docx'"),
    ],
    ids=["empty", "bad-native-field", "no-speakers", "no-external-id", "unknown-format"],
)
def test_invalid_transcripts_are_422_naming_the_problem_and_store_nothing(
    world: World, body: bytes, params: dict[str, str], problem: str
) -> None:
    external_id = params.get("external_id")
    if external_id:
        params = {**params, "external_id": unique("bad")}
    before = len(world.enqueue.calls)
    response = world.client.post("/api/calls", params=params, content=body, headers=world.token("admin"))
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"]
    assert response.json()["detail"]
    assert len(world.enqueue.calls) == before
    if external_id:
        assert stored_calls(world, params["external_id"]) == 0


@pytest.fixture
def small_limit_client(world: World) -> Iterator[TestClient]:
    with client_for(world.url, max_transcript_bytes=100) as client:
        yield client


def test_oversized_body_is_413(world: World, small_limit_client: TestClient) -> None:
    external_id = unique("big")
    response = small_limit_client.post("/api/calls", params={"external_id": external_id},
                                       content=plain_text_call() * 3, headers=world.token("admin"))
    assert response.status_code == 413
    assert "limit is 100" in response.json()["detail"]
    assert stored_calls(world, external_id) == 0


@pytest.mark.parametrize(("headers", "problem"), [
    ({"content-type": "application/x-www-form-urlencoded"}, "-d also strips its newlines"),
    ({"content-type": "multipart/form-data; boundary=x"}, "the body is a form"),
    ({"content-encoding": "gzip"}, "send the file uncompressed"),
])
def test_a_form_or_a_compressed_body_is_415_saying_how_to_send_the_file(
    world: World, headers: dict[str, str], problem: str
) -> None:
    # `curl -d @call.txt` sent the transcript as a form with its newlines stripped: stored as one
    # utterance of the "Agent" whose label opened the file, 202.
    external_id = unique("form")
    flattened = plain_text_call().replace(b"\n", b"")
    response = world.client.post("/api/calls", params={"external_id": external_id}, content=flattened,
                                 headers={**world.token("admin"), **headers})
    assert response.status_code == 415, response.text
    assert problem in response.json()["detail"]
    assert stored_calls(world, external_id) == 0


def test_team_supervisor_submits_only_their_team(world: World) -> None:
    other = world.client.post("/api/calls", content=native_call(unique("red"), team="red"),
                              headers=world.token("supervisor_blue"))
    assert other.status_code == 403
    own = world.client.post("/api/calls", content=native_call(unique("blue")), headers=world.token("supervisor_blue"))
    assert own.status_code == 202
    with world.factory() as session:
        assert get_call(session, own.json()["call_id"]).team == "blue"


def test_an_external_id_invisible_to_the_submitter_is_not_overwritten(world: World) -> None:
    red = world.calls["acme_a2_red"]
    with world.factory() as session:
        external_id = get_call(session, red.call_id).external_id
    response = world.client.post("/api/calls", params={"external_id": external_id, "replace": "true"},
                                 content=plain_text_call(), headers=world.token("supervisor_blue"))
    assert response.status_code == 409
    with world.factory() as session:
        assert get_call(session, red.call_id).source_format == "native"


def test_a_teamless_call_is_not_the_team_supervisors_to_overwrite(world: World) -> None:
    # The call has no team, so a team supervisor's visibility test on it is NULL, not true: hidden.
    external_id = unique("teamless")
    stored = world.client.post("/api/calls", params={"external_id": external_id}, content=plain_text_call(),
                               headers=world.token("admin"))
    assert stored.status_code == 202, stored.text
    with world.factory() as session:
        before = get_call(session, stored.json()["call_id"]).transcript_hash
    response = world.client.post("/api/calls", params={"external_id": external_id, "replace": "true"},
                                 content=plain_text_call(amount="$45"), headers=world.token("supervisor_blue"))
    assert response.status_code == 409
    assert "already used in this tenant" in response.json()["detail"]
    with world.factory() as session:
        call = get_call(session, stored.json()["call_id"])
        assert (call.team, call.transcript_hash) == (None, before)
    assert stored_calls(world, external_id) == 1


# ------------------------------------------------------------------------------------ GET /api/calls


def test_list_orders_needs_attention_first_and_filters(world: World) -> None:
    grounded_only = world.fresh_call("globex_a1_blue")
    flagged = world.fresh_call("globex_a1_blue")
    with unit_of_work(world.factory) as session:
        get_call(session, grounded_only.call_id).state = CallState.ready_for_review
    # Deciding the only unverified item unflags the call.
    world.client.post(f"/api/claims/{grounded_only.claim('summary1')}/review", json={"action": "reject"},
                      headers=world.token("globex_admin"))
    headers = world.token("globex_admin")
    listing = world.client.get("/api/calls", params={"limit": 200}, headers=headers).json()
    states = [c["state"] for c in listing["calls"]]
    assert states == sorted(states, key=lambda s: {"needs_attention": 0, "ready_for_review": 1}.get(s, 2))
    assert listing["counts"]["needs_attention"] >= 1
    assert listing["total"] == sum(listing["counts"].values())

    def ids(**params: str | list[str]) -> set[str]:
        answer = world.client.get("/api/calls", params={"limit": 200, **params}, headers=headers)
        assert answer.status_code == 200, answer.text
        return {c["call_id"] for c in answer.json()["calls"]}

    assert flagged.call_id in ids(flagged="true")
    assert grounded_only.call_id not in ids(flagged="true")
    assert grounded_only.call_id in ids(flagged="false")
    assert grounded_only.call_id in ids(state="ready_for_review")
    assert grounded_only.call_id not in ids(state="needs_attention")
    assert {grounded_only.call_id, flagged.call_id} <= ids(state=["ready_for_review", "needs_attention"])
    assert flagged.call_id in ids(agent="a1", date_from="2026-03-03", date_to="2026-03-03")
    assert ids(agent="nobody") == set()
    assert flagged.call_id not in ids(date_from="2026-03-04")
    assert flagged.call_id not in ids(date_to="2026-03-02")
    assert world.client.get("/api/calls", params={"state": "bogus"}, headers=headers).status_code == 422


def test_list_pages(world: World) -> None:
    headers = world.token("admin")
    first = world.client.get("/api/calls", params={"limit": 1, "offset": 0}, headers=headers).json()
    second = world.client.get("/api/calls", params={"limit": 1, "offset": 1}, headers=headers).json()
    assert len(first["calls"]) == len(second["calls"]) == 1
    assert first["calls"][0]["call_id"] != second["calls"][0]["call_id"]
    assert first["total"] >= 2


# ------------------------------------------------------------------------------- review bodies


def test_claim_review_edit_and_bad_bodies(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    url = f"/api/claims/{call.claim('action0')}/review"
    headers = world.token("supervisor")
    edited = world.client.post(url, json={"action": "edit", "due": "tomorrow", "owner": "customer"}, headers=headers)
    assert edited.status_code == 200
    assert (edited.json()["due"], edited.json()["owner"], edited.json()["review_status"]) == (
        "tomorrow", "customer", "edited")
    assert world.client.post(url, json={"action": "maybe"}, headers=headers).status_code == 422
    assert world.client.post(url, json={"action": "edit"}, headers=headers).status_code == 422
    events = world.client.get(f"/api/calls/{call.call_id}/events", headers=headers).json()
    assert [e["action"] for e in events] == ["claim_edited"]
    assert events[0]["before"]["due"] == "today"
    assert events[0]["actor"] == "supervisor"


def test_approving_with_pending_unverified_items_is_409(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    url = f"/api/calls/{call.call_id}/review"
    response = world.client.post(url, json={"decision": "approve"}, headers=world.token("admin"))
    assert response.status_code == 409
    assert "unverified" in response.json()["detail"]


def test_adding_an_item_with_a_quote_not_in_the_transcript_is_422(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    body = {"text": "Waive next month's fee", "owner": "agent",
            "evidence": [{"utterance": 2, "quote": "I will waive next month's fee"}]}
    response = world.client.post(f"/api/calls/{call.call_id}/claims", json=body, headers=world.token("admin"))
    assert response.status_code == 422
    assert "not found" in response.json()["detail"]


# ------------------------------------------------------------------------------------ token rotation


def new_user(world: World, role: str = "supervisor") -> tuple[int, str, str]:
    """A user of acme made for one test (rotating a shared user's token would break the others): id, name,
    token."""
    name = unique(f"rotating-{role}")
    created = world.client.post("/api/users", json={"name": name, "role": role}, headers=world.token("admin"))
    assert created.status_code == 201, created.text
    return created.json()["id"], name, created.json()["token"]


def test_an_admin_rotates_a_users_token_the_old_one_and_its_sessions_stop_at_once(world: World) -> None:
    user_id, name, old = new_user(world)
    with TestClient(world.client.app) as browser:
        sign_in(browser, old)
        assert browser.get("/", follow_redirects=False).status_code == 200
        rotated = world.client.post(f"/api/users/{user_id}/rotate-token", headers=world.token("admin"))
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        assert (body["id"], body["name"], body["tenant"], body["active"]) == (user_id, name, "acme", True)
        new = body["token"]
        assert new != old and new.startswith("pc_")
        assert world.client.get("/api/me", headers=bearer(old)).status_code == 401
        assert world.client.get("/api/me", headers=bearer(new)).json()["id"] == user_id
        # The cookie signed in with the old token no longer opens a page: back to the sign-in form.
        ended = browser.get("/", follow_redirects=False)
        assert ended.status_code == 303 and ended.headers["location"].startswith("/login")
        sign_in(browser, new)
        assert browser.get("/", follow_redirects=False).status_code == 200
    listed = world.client.get("/api/users", headers=world.token("admin")).json()
    assert all("token" not in user for user in listed)


def test_a_user_rotates_their_own_token(world: World) -> None:
    user_id, _, old = new_user(world, "analyst")
    with TestClient(world.client.app) as browser:
        sign_in(browser, old)
        rotated = world.client.post("/api/me/rotate-token", headers=bearer(old))
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["token"]
        assert rotated.json()["id"] == user_id
        assert world.client.get("/api/me", headers=bearer(old)).status_code == 401
        assert world.client.post("/api/me/rotate-token", headers=bearer(old)).status_code == 401
        assert world.client.get("/api/me", headers=bearer(new)).json()["id"] == user_id
        assert browser.get("/", follow_redirects=False).status_code == 303


def test_a_deactivated_user_gets_no_new_token(world: World) -> None:
    user_id, name, old = new_user(world)
    with unit_of_work(world.factory) as session:
        deactivate_user(session, "acme", name)
    refused = world.client.post(f"/api/users/{user_id}/rotate-token", headers=world.token("admin"))
    assert refused.status_code == 409
    assert "deactivated" in refused.json()["detail"]
    assert world.client.get("/api/me", headers=bearer(old)).status_code == 401


# ------------------------------------------------------------------------------------- the spec


def test_openapi_spec_documents_every_route_with_bearer_auth(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/api/me", "/api/calls", "/api/calls/{call_id}", "/api/calls/{call_id}/events",
        "/api/calls/{call_id}/review", "/api/calls/{call_id}/claims", "/api/claims/{claim_id}/review",
        "/api/users", "/api/export", "/api/me/rotate-token", "/api/users/{user_id}/rotate-token", "/api/users/events",
        "/api/users/{user_id}", "/api/users/{user_id}/deactivate", "/api/users/{user_id}/reactivate",
        # hand-off (app/web/handoff_api.py)
        "/api/events", "/api/webhooks", "/api/webhooks/{endpoint_id}", "/api/webhooks/{endpoint_id}/disable",
        "/api/webhooks/{endpoint_id}/enable",
        "/api/webhooks/{endpoint_id}/rotate-secret", "/api/webhooks/deliveries", "/api/webhooks/deliveries/replay",
        "/api/schemas/call.v1.json", "/api/schemas/event.v1.json", "/api/calls/{call_id}/record",
    }
    assert spec["components"]["securitySchemes"]["apiToken"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["apiToken"]
        ["description"]}
    post = spec["paths"]["/api/calls"]["post"]
    assert "application/octet-stream" in post["requestBody"]["content"]
    assert {"202", "200", "403", "409", "413", "422"} <= set(post["responses"])
    assert spec["paths"]["/api/calls/{call_id}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"]["$ref"].endswith("/CallDetailOut")


def test_no_cdn_docs_pages_and_security_headers(world: World) -> None:
    assert world.client.get("/docs").status_code in {303, 404}
    response = world.client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "http" not in response.text.replace("http-equiv", "")  # every asset is served locally


def test_answers_holding_data_are_never_cached_and_static_files_may_be(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    for path in (f"/api/calls/{call.call_id}", f"/api/calls/{call.call_id}?unmask=true", "/api/calls"):
        response = world.client.get(path, headers=world.token("admin"))
        assert response.headers["cache-control"] == "no-store", path
    assert world.client.get("/login").headers["cache-control"] == "no-store"
    static = world.client.get("/static/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")


def test_every_api_route_refuses_a_query_parameter_it_does_not_take(world: World) -> None:
    # A misspelt filter was ignored and everything served as if it had applied: `GET /api/calls?status=approved`
    # listed unreviewed calls, which a CRM filed as approved; the same on the deliveries' list and the export.
    admin = world.token("admin")
    for path, unknown in (("/api/calls?status=approved&state=approved", "status"),
                          ("/api/calls?agent_id=a1", "agent_id"),
                          ("/api/webhooks/deliveries?endpoint_id=5&failed=true", "endpoint_id"),
                          ("/api/export?start=2099-01-01&format=jsonl", "start"),
                          ("/api/me?verbose=1", "verbose"),
                          ("/api/events?type=call.approved", "type")):
        answer = world.client.get(path, headers=admin)
        assert answer.status_code == 422, (path, answer.text)
        detail = answer.json()["detail"]
        assert f"unknown query parameter(s) {unknown}" in detail, detail
    taken = world.client.get("/api/calls?status=x", headers=admin).json()["detail"]
    assert "takes " in taken and "state" in taken and "limit" in taken  # says what it does take
    for path in ("/api/calls?state=approved&limit=5", "/api/webhooks/deliveries?failed=true&limit=5", "/api/me",
                 "/api/events?limit=3"):
        assert world.client.get(path, headers=admin).status_code == 200, path


def test_every_api_route_refuses_an_empty_query_value_naming_it(world: World) -> None:
    # `GET /api/calls?agent=` listed every agent's calls as if no agent were asked for, while `?limit=` was a
    # 422: a client that left a field blank got everything, or an error, by the parameter's type.
    admin = world.token("admin")
    call_id = world.calls["acme_a1_blue"].call_id
    for method, path, empty in (("GET", "/api/calls?agent=", "agent"),
                                ("GET", "/api/calls?state=approved&agent=&limit=5", "agent"),
                                ("GET", "/api/calls?limit=", "limit"),
                                ("GET", "/api/calls?cursor=", "cursor"),
                                ("GET", "/api/calls?date_from", "date_from"),  # no "=" at all: empty too
                                ("GET", "/api/calls?state=approved&state=", "state"),
                                ("GET", f"/api/calls/{call_id}?unmask=", "unmask"),
                                ("GET", "/api/events?after=", "after"),
                                ("GET", "/api/webhooks/deliveries?call_id=", "call_id"),
                                ("GET", "/api/export?since=", "since"),
                                ("GET", "/api/users/events?user_id=&after=&limit=", "user_id"),  # the first one named
                                ("POST", "/api/calls?external_id=", "external_id")):
        answer = world.client.request(method, path, headers=admin,
                                      content=b"Agent: hello\n" if method == "POST" else None)
        assert answer.status_code == 422, (path, answer.text)
        detail = answer.json()["detail"]
        assert f"query parameter {empty!r} is empty: give a value or leave the parameter out" in detail, detail
    assert world.client.get("/api/calls?agent=a1&limit=5", headers=admin).status_code == 200
    # The review pages' filter forms submit blank fields: still read as no filter there.
    page = world.browser("supervisor").get("/?state=&agent=&date_from=&date_to=&flagged=")
    assert page.status_code == 200 and 'id="filter-problems"' not in page.text


def test_a_parameter_that_takes_one_value_given_twice_is_refused_and_a_list_one_is_not(world: World) -> None:
    admin = world.token("admin")
    twice = world.client.get("/api/events?after=0&after=2", headers=admin)
    assert twice.status_code == 422 and "after given more than once" in twice.json()["detail"]
    assert world.client.get("/api/calls?limit=5&limit=6", headers=admin).status_code == 422
    states = world.client.get("/api/calls?state=approved&state=rejected", headers=admin)
    assert states.status_code == 200, states.text  # `state` is a list: repeat it to allow several

