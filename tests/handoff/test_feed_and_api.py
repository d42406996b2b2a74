"""The pull feed and the webhook JSON API, through the real app (TestClient) on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.handoff.feed import MAX_EVENT_ID, CursorError, FeedPage, decode_cursor, read_feed
from app.handoff.outbox import EventType, record_event
from app.models import Call, UserRole
from app.pipeline.store import StoreStatus, store_transcript
from app.schemas.transcript import Role
from tests.handoff.conftest import events_of, make_principal, processed_call, register
from tests.support.processes import wait_until
from tests.support.transcripts import CARD_CALL_LINES, make_transcript
from tests.web.world import BrokerQueue, client_for


@pytest.fixture
def api(db_url: str, allow_private: object) -> Iterator[TestClient]:
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=True) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


HANDOFF_DOC = PROJECT_ROOT / "docs" / "handoff.md"

# On PostgreSQL a page comes back empty while another transaction is still writing events (the feed
# waits only briefly for it); polling again gets them.
SETTLE_TIMEOUT = 15.0


def events_for(client: TestClient, token: str, *, after: str | None = None, limit: int = 100,
               expect: int = 1) -> dict[str, Any]:
    url = f"/api/events?limit={limit}" + (f"&after={after}" if after else "")
    page: dict[str, Any] = {}

    def enough() -> bool:
        nonlocal page
        page = client.get(url, headers=bearer(token)).json()
        return len(page["events"]) >= expect

    wait_until(enough, SETTLE_TIMEOUT, interval=0.1)
    return page


def test_the_feed_pages_in_commit_order_and_applies_visibility(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    _, agent = make_principal(session_factory, "al", UserRole.agent, agent_id="A-7")
    _, other_agent = make_principal(session_factory, "bo", UserRole.agent, agent_id="B-1")
    _, globex = make_principal(session_factory, "gus", UserRole.admin, tenant="globex")
    mine = [processed_call(session_factory, f"feed-{n}", agent_id="A-7") for n in range(2)]
    theirs = processed_call(session_factory, "feed-b", agent_id="B-1")
    foreign = processed_call(session_factory, "feed-g", tenant="globex", agent_id="A-7")

    first = events_for(api, admin, limit=2, expect=2)
    assert [e["data"]["call_id"] for e in first["events"]] == mine
    assert all(e["type"] == "call.processed" and e["id"].startswith("msg_") for e in first["events"])
    rest = events_for(api, admin, after=first["next_cursor"])
    assert [e["data"]["call_id"] for e in rest["events"]] == [theirs]
    # The cursor stops at acme's newest event: globex's, newer, is not acme's to know of.
    newest = str(events_of(session_factory, theirs)[-1].id)
    assert rest["next_cursor"] == newest != str(events_of(session_factory, foreign)[-1].id)
    empty = api.get(f"/api/events?after={rest['next_cursor']}", headers=bearer(admin)).json()
    assert empty == {"events": [], "next_cursor": newest}
    # A cursor past the tenant's newest event is no cursor of the feed's: a reader keeping it would skip
    # every event written up to it. Globex's newer event does not make it one (tests/handoff/test_feed_cursors.py).
    newest_of_all = int(events_of(session_factory, foreign)[-1].id)
    for ahead in (int(newest) + 1, newest_of_all, newest_of_all + 1000):
        answer = api.get(f"/api/events?after={ahead}", headers=bearer(admin))
        assert answer.status_code == 422 and "past the newest event" in answer.text, ahead
    # An agent's cursor moves past its tenant's events it does not see, so it never falls behind a purge.
    agent_page = events_for(api, agent, after=first["next_cursor"], expect=0)
    assert agent_page == {"events": [], "next_cursor": newest}

    agent_view = events_for(api, agent, expect=2)["events"]
    assert [e["data"]["call_id"] for e in agent_view] == mine
    assert [e["data"]["call_id"] for e in events_for(api, other_agent)["events"]] == [theirs]
    assert [e["data"]["call_id"] for e in events_for(api, globex)["events"]] == [foreign]
    assert api.get("/api/events").status_code == 401
    assert api.get("/api/events?after=nonsense", headers=bearer(admin)).status_code == 422


@pytest.mark.parametrize("replace_content", [False, True], ids=["metadata-corrected", "transcript-replaced"])
def test_the_feed_follows_the_call_to_its_new_agent(
    api: TestClient, session_factory: sessionmaker[Session], replace_content: bool
) -> None:
    _, before = make_principal(session_factory, "al", UserRole.agent, agent_id="A-7")
    _, after = make_principal(session_factory, "bo", UserRole.agent, agent_id="B-1")
    call_id = processed_call(session_factory, "moved", agent_id="A-7")
    assert [e["data"]["call_id"] for e in events_for(api, before)["events"]] == [call_id]
    lines = [*CARD_CALL_LINES, (Role.customer, "One more thing.")] if replace_content else CARD_CALL_LINES
    transcript = make_transcript(lines, external_id="moved", agent_id="B-1")
    with unit_of_work(session_factory) as session:  # the contact center reassigns the call
        status = store_transcript(session, transcript, tenant="acme", external_id="moved", replace=True).status
    assert status is (StoreStatus.replaced if replace_content else StoreStatus.updated)
    # The former agent no longer reads the call or its events, but is told it left them: an integration that
    # filed the record under A-7 learned nothing (the feed just stopped showing the call).
    (gone,) = api.get("/api/events", headers=bearer(before)).json()["events"]
    assert gone["type"] == "call.reassigned"
    assert (gone["data"]["call_id"], gone["data"]["external_id"], gone["data"]["agent_id"]) == (call_id, "moved", "A-7")
    assert gone["data"]["extraction"] is None and gone["data"]["summary"]["statements"] == []  # identity only
    assert "B-1" not in str(gone)  # the new owner is not named
    assert api.get("/api/calls", headers=bearer(before)).json()["calls"] == []
    moved = events_for(api, after)["events"]
    assert {e["data"]["call_id"] for e in moved} == {call_id}
    assert "call.reassigned" not in [e["type"] for e in moved]
    if not replace_content:
        # Receivers hold the record filed under A-7: the correction reaches them as call.updated.
        assert [e["type"] for e in moved] == ["call.processed", "call.updated"]
        assert moved[-1]["data"]["agent_id"] == "B-1" and moved[-1]["data"]["extraction"] is not None
        # Moved again: each former agent keeps the one event that told them.
        _, third = make_principal(session_factory, "cy", UserRole.agent, agent_id="C-2")
        again = make_transcript(lines, external_id="moved", agent_id="C-2")
        with unit_of_work(session_factory) as session:
            store_transcript(session, again, tenant="acme", external_id="moved", replace=True)
        for reader, agent in ((before, "A-7"), (after, "B-1")):
            told = [(e["type"], e["data"]["agent_id"]) for e in events_for(api, reader)["events"]]
            assert told == [("call.reassigned", agent)], told
        assert [e["type"] for e in events_for(api, third)["events"]] == [
            "call.processed", "call.updated", "call.updated"]


# Unicode digits `str.isdigit` takes (superscript, Arabic-Indic, fullwidth), signs, spaces, and ids past
# the 32-bit outbox.id.
BAD_CURSORS = ["²", "٣", "１２", "-1", "+1", " 1", "1 ", "1.0", "0x1", "1_000", str(MAX_EVENT_ID + 1), "9" * 40]


def test_bad_cursors_are_refused_by_the_decoder_and_422_on_the_feed(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    for bad in BAD_CURSORS:
        with pytest.raises(CursorError):
            decode_cursor(bad)
        answer = api.get("/api/events", params={"after": bad}, headers=bearer(admin))
        assert answer.status_code == 422, (bad, answer.text)
        assert "invalid cursor" in answer.json()["detail"]
    assert (decode_cursor(None), decode_cursor(""), decode_cursor("0"), decode_cursor(str(MAX_EVENT_ID))) == (
        0, 0, 0, MAX_EVENT_ID)
    # The largest cursor decodes (no database error) and is refused as past the newest event, not a 500.
    largest = api.get("/api/events", params={"after": str(MAX_EVENT_ID)}, headers=bearer(admin))
    assert largest.status_code == 422 and "past the newest event" in largest.text


@given(cursor=st.one_of(st.text(max_size=14), st.integers(min_value=-(2**40), max_value=2**40).map(str)))
def test_a_cursor_decodes_to_an_event_id_or_is_refused(cursor: str) -> None:
    try:
        decoded = decode_cursor(cursor)
    except CursorError:
        assert not (cursor.isascii() and cursor.isdigit() and int(cursor) <= MAX_EVENT_ID)
    else:
        assert 0 <= decoded <= MAX_EVENT_ID
        assert decoded == (int(cursor) if cursor else 0) and (not cursor or cursor.isascii())


@pytest.mark.postgres
def test_an_event_committed_late_is_not_skipped_by_a_cursor(postgres_url: str, allow_private: object) -> None:
    """A transaction holding a lower event id commits after a higher one: a reader that polls in between
    gets nothing past the open transaction, so its cursor cannot skip the late event."""
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        admin, _ = make_principal(factory, "ada", UserRole.admin)
        slow_call = processed_call(factory, "late-1")
        fast_call = processed_call(factory, "late-2")
        def read(after: str | None) -> FeedPage:
            with unit_of_work(factory) as session:
                return read_feed(session, admin, after, 100)

        assert wait_until(lambda: len(read(None).items) == 2, SETTLE_TIMEOUT)
        start = read(None).next_cursor

        slow = factory()
        slow_event = record_event(slow, slow.get(Call, slow_call), EventType.approved)  # type: ignore[arg-type]
        with unit_of_work(factory) as session:
            fast_event = record_event(session, session.get(Call, fast_call), EventType.approved)  # type: ignore[arg-type]
        assert slow_event < fast_event

        while_open = read(start)
        assert while_open.items == []  # the open transaction holds back everything after it
        slow.commit()
        slow.close()
        assert wait_until(lambda: len(read(while_open.next_cursor).items) == 2, SETTLE_TIMEOUT)
        assert [item.call_id for item in read(while_open.next_cursor).items] == [slow_call, fast_call]
    finally:
        engine.dispose()


def _admin_and_supervisor(factory: sessionmaker[Session]) -> tuple[str, str, str]:
    _, admin = make_principal(factory, "ada", UserRole.admin)
    _, supervisor = make_principal(factory, "sue", UserRole.supervisor)
    _, globex = make_principal(factory, "gus", UserRole.admin, tenant="globex")
    return admin, supervisor, globex


def test_webhook_endpoints_api_is_admin_only_and_tenant_scoped(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    admin, supervisor, globex = _admin_and_supervisor(session_factory)
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hooks", "events": ["call.approved"],
                                              "description": "CRM"}, headers=bearer(admin))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["call.approved"] and body["active"]
    listed = api.get("/api/webhooks", headers=bearer(admin)).json()
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert body["secret"] not in api.get("/api/webhooks", headers=bearer(admin)).text

    assert api.get("/api/webhooks", headers=bearer(supervisor)).status_code == 403
    refused = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=bearer(supervisor))
    assert refused.status_code == 403
    assert api.get("/api/webhooks", headers=bearer(globex)).json() == []
    assert api.post(f"/api/webhooks/{body['id']}/disable", headers=bearer(globex)).status_code == 404

    rotated = api.post(f"/api/webhooks/{body['id']}/rotate-secret", headers=bearer(admin)).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != body["secret"]
    # Again during the overlap: refused (it would drop the original secret at once), unless forced.
    again = api.post(f"/api/webhooks/{body['id']}/rotate-secret", headers=bearer(admin))
    assert again.status_code == 409 and "still signs" in again.text
    forced = api.post(f"/api/webhooks/{body['id']}/rotate-secret?force=true", headers=bearer(admin))
    assert forced.status_code == 200 and forced.json()["secret"] not in (rotated["secret"], body["secret"])
    disabled = api.post(f"/api/webhooks/{body['id']}/disable", headers=bearer(admin)).json()
    assert disabled["active"] is False and "ada" in disabled["disabled_reason"]

    bad_event = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["call.eaten"]},
                         headers=bearer(admin))
    assert bad_event.status_code == 422
    no_events = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/x", "events": []}, headers=bearer(admin))
    assert no_events.status_code == 422 and "at least one event type" in no_events.text  # not "all of them"
    control = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/esc\u001b[2J"}, headers=bearer(admin))
    assert control.status_code == 422 and "control characters" in control.text
    assert [e["id"] for e in api.get("/api/webhooks", headers=bearer(admin)).json()] == [body["id"]]
    assert api.get("/api/webhooks/deliveries?failed=true", headers=bearer(admin)).json() == []
    assert api.post("/api/webhooks/deliveries/replay", json={}, headers=bearer(admin)).status_code == 422


def test_deliveries_page_by_id_and_filter_by_call_and_64_bit_ids_are_taken(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # Capped at 500 with no way past them, an admin could not see a busy endpoint's older deliveries; and a
    # delivery id past 2^31 (64-bit since migration 0026) was refused by the replay as invalid.
    admin, _, _ = _admin_and_supervisor(session_factory)
    register(session_factory, "http://127.0.0.1:9/crm")
    calls = [processed_call(session_factory, f"page-{n}") for n in range(5)]
    every = api.get("/api/webhooks/deliveries", headers=bearer(admin)).json()
    assert len(every) == 5 and [d["id"] for d in every] == sorted((d["id"] for d in every), reverse=True)
    first = api.get("/api/webhooks/deliveries?limit=2", headers=bearer(admin)).json()
    second = api.get(f"/api/webhooks/deliveries?limit=2&before={first[-1]['id']}", headers=bearer(admin)).json()
    third = api.get(f"/api/webhooks/deliveries?limit=2&before={second[-1]['id']}", headers=bearer(admin)).json()
    assert [d["id"] for d in first + second + third] == [d["id"] for d in every]
    one = api.get(f"/api/webhooks/deliveries?call_id={calls[2]}", headers=bearer(admin)).json()
    assert [d["call_id"] for d in one] == [calls[2]]
    by_external = api.get("/api/webhooks/deliveries?call_id=page-2", headers=bearer(admin)).json()
    assert by_external == one
    big = 2**31 + 5
    assert api.get(f"/api/webhooks/deliveries?before={big}", headers=bearer(admin)).json() == every
    replay = api.post("/api/webhooks/deliveries/replay", json={"delivery_ids": [big]}, headers=bearer(admin))
    assert replay.status_code == 404, replay.text  # a well-formed id that is not there, not a malformed one
    assert api.get(f"/api/webhooks/deliveries?before={2**63}", headers=bearer(admin)).status_code == 422


def _next_link(response: Any) -> str | None:
    """The target of the response's RFC 8288 `rel="next"` link, or None when it has none."""
    target = response.links.get("next", {}).get("url")
    return str(target) if target is not None else None


def test_a_full_page_of_deliveries_links_the_next_and_the_last_page_does_not(
    api: TestClient, session_factory: sessionmaker[Session], db_url: str
) -> None:
    # The list was paged by `before=<id>` with no hint of a next page: a client had to know the rule and
    # guess whether a short page was the end.
    admin, _, _ = _admin_and_supervisor(session_factory)
    register(session_factory, "http://127.0.0.1:9/crm")
    register(session_factory, "http://127.0.0.1:9/tickets")
    calls = [processed_call(session_factory, f"link-{n}") for n in range(5)]
    every = [d["id"] for d in api.get("/api/webhooks/deliveries?limit=500", headers=bearer(admin)).json()]
    assert len(every) == 10  # a delivery per call and endpoint

    # Following the links walks every delivery once, newest first: no overlap, no gap; the last page has none.
    pages: list[list[int]] = []
    url: str | None = "/api/webhooks/deliveries?limit=3"
    while url is not None:
        response = api.get(url, headers=bearer(admin))
        assert response.status_code == 200, response.text
        pages.append([d["id"] for d in response.json()])
        url = _next_link(response)
        # POSTCALL_PUBLIC_URL is set (the fixture): absolute on it, as the record's review_url is.
        assert url is None or url.startswith("https://postcall.example.test/api/webhooks/deliveries?"), url
        assert len(pages) <= 4
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [delivery for page in pages for delivery in page] == every

    # The other parameters stay in the link: one call's deliveries (of two endpoints), a page at a time.
    first = api.get("/api/webhooks/deliveries?call_id=link-2&limit=1", headers=bearer(admin))
    link = _next_link(first)
    assert link is not None
    query = parse_qs(urlsplit(link).query)
    assert query == {"call_id": ["link-2"], "limit": ["1"], "before": [str(first.json()[0]["id"])]}
    second = api.get(link, headers=bearer(admin))
    assert [d["call_id"] for d in first.json() + second.json()] == [calls[2], calls[2]]
    # That page was full too: its link leads to an empty page, which has none.
    last = api.get(_next_link(second) or "", headers=bearer(admin))
    assert last.status_code == 200 and last.json() == [] and "link" not in last.headers
    # `failed` (and any parameter sent) is kept the same way; a page short of the limit has no link.
    assert _next_link(api.get("/api/webhooks/deliveries?failed=false&limit=500", headers=bearer(admin))) is None
    assert "failed=false" in (_next_link(api.get("/api/webhooks/deliveries?failed=false&limit=10",
                                                 headers=bearer(admin))) or "")

    # The loop docs/handoff.md shows walks them all the same.
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", HANDOFF_DOC.read_text(), re.S)
                   if "def deliveries(" in block)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # our own documentation
    api.headers.update(bearer(admin))
    walked = [d["id"] for d in namespace["deliveries"](api, "/api/webhooks/deliveries?limit=4")]
    assert walked == every

    # Without POSTCALL_PUBLIC_URL the link is a path, which a client resolves against the URL it asked.
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=True, public_url=None) as plain:
        relative = _next_link(plain.get("/api/webhooks/deliveries?limit=4", headers=bearer(admin)))
    assert relative == f"/api/webhooks/deliveries?limit=4&before={every[3]}"


def test_the_deliveries_link_header_is_in_the_openapi_document(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/api/webhooks/deliveries"]["get"]
    header = operation["responses"]["200"]["headers"]["Link"]
    assert header["schema"] == {"type": "string"} and 'rel="next"' in header["description"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"


def test_a_calls_record_is_fetched_as_its_events_carry_it(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # After a 410 (or a lost delivery) a receiver rebuilds what it filed from the same postcall.call.v1
    # record, not from the review API's shape (claims with `status`, no `due_date`, no note).
    admin, _, globex = _admin_and_supervisor(session_factory)
    _, agent = make_principal(session_factory, "al", UserRole.agent, agent_id="A-7")
    call_id = processed_call(session_factory, "rec-fetch", agent_id="A-7")
    (event,) = events_of(session_factory, call_id)
    fetched = api.get(f"/api/calls/{call_id}/record", headers=bearer(admin))
    assert fetched.status_code == 200
    assert fetched.json() == event.payload["data"]  # nothing changed since the event: the same record
    assert api.get(f"/api/calls/{call_id}/record", headers=bearer(agent)).status_code == 200  # the agent's call
    assert api.get(f"/api/calls/{call_id}/record", headers=bearer(globex)).status_code == 404
    assert api.get("/api/calls/no-such-call/record", headers=bearer(admin)).status_code == 404


def test_private_urls_are_refused_unless_allowed(db_url: str, session_factory: sessionmaker[Session]) -> None:
    admin, _, _ = _admin_and_supervisor(session_factory)
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=False) as client:
        refused = client.post("/api/webhooks", json={"url": "https://127.0.0.1/hooks"}, headers=bearer(admin))
        assert refused.status_code == 422 and "POSTCALL_WEBHOOK_ALLOW_PRIVATE" in refused.json()["detail"]
        plain = client.post("/api/webhooks", json={"url": "http://93.184.215.14/hooks"}, headers=bearer(admin))
        assert plain.status_code == 422 and "https" in plain.json()["detail"]


def test_the_record_schema_is_public(api: TestClient) -> None:
    schema = api.get("/api/schemas/call.v1.json")
    assert schema.status_code == 200 and schema.json()["title"] == "postcall.call.v1"




def test_a_tenant_has_at_most_the_configured_number_of_active_endpoints(
    db_url: str, allow_private: object, session_factory: sessionmaker[Session]
) -> None:
    # Every event fans out to each active endpoint inside the change's transaction: a thousand endpoints
    # made each review of every tenant slower and used up delivery ids for all.
    admin, _, globex = _admin_and_supervisor(session_factory)
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=True, webhook_max_endpoints=2) as api:
        made = [api.post("/api/webhooks", json={"url": f"http://127.0.0.1:9/h{n}"}, headers=bearer(admin))
                for n in range(3)]
        assert [r.status_code for r in made] == [201, 201, 422]
        assert "POSTCALL_WEBHOOK_MAX_ENDPOINTS" in made[2].text
        # Per tenant: another tenant's admin still has room.
        other = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/g"}, headers=bearer(globex))
        assert other.status_code == 201
        first = made[0].json()["id"]
        assert api.post(f"/api/webhooks/{first}/disable", headers=bearer(admin)).status_code == 200
        again = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/h3"}, headers=bearer(admin))
        assert again.status_code == 201
        # Enabling the disabled one again would make three.
        enabled = api.post(f"/api/webhooks/{first}/enable", headers=bearer(admin))
        assert enabled.status_code == 422 and "disable one first" in enabled.text


def test_a_feed_with_nothing_yet_hands_out_a_cursor_it_takes_back(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # next_cursor was null before any event: a client sending it back as text (after=null) was refused.
    _, admin = make_principal(session_factory, "ada", UserRole.admin, tenant="quiet")
    first = api.get("/api/events", headers=bearer(admin)).json()
    assert first == {"events": [], "next_cursor": "0"}
    again = api.get("/api/events", params={"after": first["next_cursor"]}, headers=bearer(admin))
    assert again.status_code == 200 and again.json() == {"events": [], "next_cursor": "0"}


def test_registering_an_active_endpoints_url_again_warns_in_the_api_answer(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    body = {"url": "https://hooks.example.com/postcall", "events": ["call.approved", "call.reopened"]}
    first = api.post("/api/webhooks", json=body, headers=bearer(admin))
    assert first.status_code == 201, first.text
    second = api.post("/api/webhooks", json={**body, "url": "HTTPS://hooks.example.com:443/postcall"},
                      headers=bearer(admin))
    assert second.status_code == 201, second.text
    assert any(str(first.json()["id"]) in warning and "rotate-secret" in warning
               for warning in second.json()["warnings"]), second.json()["warnings"]


def test_a_call_moved_within_its_team_is_not_reassigned_for_the_team(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # The event was shown to the whole former (agent, team) pair: the team's supervisor, who still owns the
    # call, was told it left them, and an integration would close tasks for a call it still has.
    _, lead = make_principal(session_factory, "sue", UserRole.supervisor, team="blue")
    _, former = make_principal(session_factory, "al", UserRole.agent, agent_id="A-7")
    call_id = processed_call(session_factory, "within", agent_id="A-7", team="blue")
    moved = make_transcript(CARD_CALL_LINES, external_id="within", agent_id="B-1")
    moved = moved.model_copy(update={"metadata": moved.metadata.model_copy(update={"team": "blue"})})
    with unit_of_work(session_factory) as session:
        store_transcript(session, moved, tenant="acme", external_id="within", replace=True)
    assert [e["type"] for e in events_for(api, lead)["events"]] == ["call.processed", "call.updated"]
    assert [e["type"] for e in events_for(api, former)["events"]] == ["call.reassigned"]
    assert api.get(f"/api/calls/{call_id}", headers=bearer(lead)).status_code == 200


def test_a_disabled_endpoint_is_deleted_for_good_and_an_active_one_is_not(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # Endpoints could only be disabled: a re-registered receiver left the old one listed for ever.
    from sqlalchemy import func, select

    from app.models import WebhookDelivery, WebhookEndpoint

    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    _, agent = make_principal(session_factory, "al", UserRole.agent, agent_id="A-7")
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=bearer(admin))
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    processed_call(session_factory, "for-delete")  # one delivery to it
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    active = api.delete(f"/api/webhooks/{endpoint_id}", headers=bearer(admin))
    assert active.status_code == 409 and "disable it first" in active.json()["detail"]
    assert api.delete(f"/api/webhooks/{endpoint_id}", headers=bearer(agent)).status_code == 403
    assert api.post(f"/api/webhooks/{endpoint_id}/disable", headers=bearer(admin)).status_code == 200
    assert api.delete(f"/api/webhooks/{endpoint_id}", headers=bearer(admin)).status_code == 204
    assert api.delete(f"/api/webhooks/{endpoint_id}", headers=bearer(admin)).status_code == 404
    assert [e["id"] for e in api.get("/api/webhooks", headers=bearer(admin)).json()] == []
    with session_factory() as session:
        assert session.get(WebhookEndpoint, endpoint_id) is None
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_bodies_a_route_does_not_read_and_ambiguous_replays_are_refused(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    # {"skip_backlog": true} posted to enable was ignored (the backlog was queued); a replay with all_dead and
    # an "endpoint_id" replayed every endpoint's dead letters; event_id beside delivery_ids was ignored.
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=bearer(admin))
    endpoint_id = created.json()["id"]
    assert api.post(f"/api/webhooks/{endpoint_id}/disable", headers=bearer(admin)).status_code == 200
    with_body = api.post(f"/api/webhooks/{endpoint_id}/enable", json={"skip_backlog": True}, headers=bearer(admin))
    assert with_body.status_code == 422 and "takes no body" in with_body.json()["detail"]
    assert "skip_backlog" in with_body.json()["detail"]  # names the query parameter to use instead
    assert api.get("/api/webhooks", headers=bearer(admin)).json()[0]["active"] is False  # nothing was done
    assert api.post(f"/api/webhooks/{endpoint_id}/enable", json={}, headers=bearer(admin)).status_code == 200
    for body in ({"all_dead": True, "endpoint_id": endpoint_id}, {"delivery_ids": [1], "dry_run": True},
                 {"event_id": "msg_x", "delivery_ids": [1]}):
        answer = api.post("/api/webhooks/deliveries/replay", json=body, headers=bearer(admin))
        assert answer.status_code == 422, (body, answer.text)
    misspelt = api.post("/api/users", json={"name": "sup_east", "role": "supervisor", "teem": "east"},
                        headers=bearer(admin))
    assert misspelt.status_code == 422
