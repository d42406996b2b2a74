"""The review pages against a probe's findings: unverified previews flagged, `]` and "approve and next"
walking the filtered queue, decided calls without forms that always fail, /mine paged by the call's start,
item messages, bidirectional controls shown, invalid queue filters reported, times labelled UTC."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

import app.web.pages as pages_module
from app.db.session import unit_of_work
from app.models import Call, CallState, Claim, UserRole
from app.models import Utterance as UtteranceRow
from app.users import authenticate
from app.web.queue import CallFilters, list_calls, list_queue
from app.web.view import BIDI_CONTROLS, bidi_codes, due_day, show_bidi
from tests.web.conftest import World, csrf_from, sign_in
from tests.web.world import SeededCall, extraction, seed_call, seed_user

BIDI_SAMPLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def unique_agent() -> str:
    return f"probe-{uuid.uuid4().hex[:8]}"


def verified_call(world: World, agent_id: str) -> SeededCall:
    """A call of acme (team blue) whose items are all verified (the default extraction without the $50 credit)."""
    document = extraction()
    document = document.model_copy(update={"summary": document.summary[:1]})
    return seed_call(world.factory, tenant="acme", external_id=f"probe-{uuid.uuid4().hex[:8]}",
                     agent_id=agent_id, team="blue", document=document)


def flagged_call(world: World, agent_id: str) -> SeededCall:
    """The default extraction: its "$50 credit" summary point is unverified (needs attention)."""
    return seed_call(world.factory, tenant="acme", external_id=f"probe-{uuid.uuid4().hex[:8]}",
                     agent_id=agent_id, team="blue")


def unverified_reason_call(world: World, agent_id: str) -> SeededCall:
    """A call whose reason the transcript does not support (and whose text holds markup)."""
    document = extraction()
    assert document.reason is not None
    reason = document.reason.model_copy(update={
        "text": "Customer demanded a <b>$500</b> refund",
        "evidence": [document.reason.evidence[0].model_copy(update={"quote": "I demand a $500 refund right now"})],
    })
    document = document.model_copy(update={"reason": reason, "summary": document.summary[:1]})
    return seed_call(world.factory, tenant="acme", external_id=f"probe-{uuid.uuid4().hex[:8]}",
                     agent_id=agent_id, team="blue", document=document)


def queue_order(world: World, user: str, filters: CallFilters) -> list[str]:
    with world.factory() as session:
        principal = authenticate(session, world.tokens[user])
        assert principal is not None
        return [c.call_id for c in list_calls(session, principal, filters).calls]


def next_call_href(page: str) -> str | None:
    link = re.search(r'<a href="([^"]+)" id="next-call"', page)
    return html.unescape(link.group(1)) if link else None


@pytest.fixture
def agent_browser(world: World) -> Iterator[tuple[TestClient, str]]:
    """A browser signed in as a new agent of acme with an agent id of its own (no other test's calls)."""
    agent_id = unique_agent()
    token = seed_user(world.factory, tenant="acme", name=f"agent-{agent_id}", role=UserRole.agent, agent_id=agent_id)
    with TestClient(world.client.app) as client:
        sign_in(client, token)
        yield client, agent_id


# ------------------------------------------------------------------------ 1. unverified previews


def test_an_unverified_reason_preview_is_flagged_not_shown_as_fact(
    world: World, agent_browser: tuple[TestClient, str]
) -> None:
    browser, agent_id = agent_browser
    shaky = unverified_reason_call(world, agent_id)
    sound = verified_call(world, agent_id)
    with world.factory() as session:
        principal = authenticate(session, world.tokens["supervisor"])
        assert principal is not None
        queued = list_queue(session, principal, CallFilters(agent=agent_id))
    assert queued.unverified_previews[shaky.call_id] == frozenset({"reason"})
    assert queued.unverified_previews[sound.call_id] == frozenset()
    # The API's list says so too: an integration showing the previews must flag them as well.
    listed = world.client.get("/api/calls", params={"agent": agent_id}, headers=world.token("supervisor"))
    assert listed.status_code == 200, listed.text
    unverified = {item["call_id"]: item["unverified"] for item in listed.json()["calls"]}
    assert unverified[shaky.call_id] == ["reason"] and unverified[sound.call_id] == []

    for page in (world.browser("supervisor").get("/", params={"agent": agent_id}).text, browser.get("/mine").text):
        row = re.search(rf'<tr class="qrow" data-href="/calls/{shaky.call_id}.*?</tr>', page, re.S)
        assert row is not None
        reason = re.search(r'<div class="reason unverified-preview">(.*?)</div>', row.group(0), re.S)
        assert reason is not None, row.group(0)
        assert "Unverified:" in reason.group(1)
        assert "Customer demanded a &lt;b&gt;$500&lt;/b&gt; refund" in reason.group(1)  # still escaped
        assert "<b>$500" not in page
        # The verified outcome of the same row is shown as it is.
        assert '<div class="outcome">→ Agent will refund the $30 late fee</div>' in row.group(0)
        sound_row = re.search(rf'<tr class="qrow" data-href="/calls/{sound.call_id}.*?</tr>', page, re.S)
        assert sound_row is not None and "unverified-preview" not in sound_row.group(0)


# ---------------------------------------------------------------- 2 and 5. walking the filtered queue


def test_next_call_walks_the_filtered_queue_forward_and_wraps(world: World) -> None:
    agent_id = unique_agent()
    calls = {verified_call(world, agent_id).call_id for _ in range(3)}
    order = queue_order(world, "supervisor", CallFilters(states=(CallState.ready_for_review,), agent=agent_id))
    assert set(order) == calls
    browser = world.browser("supervisor")
    query = urlencode({"state": "ready_for_review", "agent": agent_id})
    followers = [next_call_href(browser.get(f"/calls/{call_id}?{query}").text) for call_id in order]
    # Each call leads to the one after it, the last back to the first: `]` never bounces between two.
    assert followers == [f"/calls/{call_id}?{query}" for call_id in [*order[1:], order[0]]]
    # The way back (← and g) returns to the same filtered queue.
    page = browser.get(f"/calls/{order[0]}?{query}").text
    assert f'<a href="/?{html.escape(query)}" class="back" id="back-to-queue"' in page


def test_approve_and_next_and_bulk_approval_keep_the_queue_filters(world: World) -> None:
    agent_id = unique_agent()
    for _ in range(3):
        verified_call(world, agent_id)
    flagged_call(world, "a2")  # another agent's call waiting, ahead in the unfiltered queue (needs attention)
    first, second, third = queue_order(world, "supervisor",
                                       CallFilters(states=(CallState.ready_for_review,), agent=agent_id))
    browser = world.browser("supervisor")
    query = urlencode({"state": "ready_for_review", "agent": agent_id})
    queue = browser.get(f"/?{query}").text
    assert f'href="/calls/{first}?{html.escape(query)}"' in queue
    assert f'action="/calls/approve?{html.escape(query)}"' in queue
    call_page = browser.get(f"/calls/{first}?{query}").text
    assert f'action="/calls/{first}/decision?{html.escape(query)}" class="inline" id="approve-next-form"' in call_page

    approved = browser.post(f"/calls/{first}/decision?{query}",
                            data={"decision": "approve", "then": "next", "csrf_token": csrf_from(call_page)},
                            follow_redirects=False)
    assert approved.status_code == 303
    assert approved.headers["location"] == f"/calls/{second}?{query}"

    bulk = browser.post(f"/calls/approve?{query}&page=1", data={"call_id": [second], "csrf_token": csrf_from(queue)},
                        follow_redirects=False)
    assert bulk.status_code == 303 and bulk.headers["location"] == f"/?{query}"
    bulk = browser.post(f"/calls/approve?{query}&page=2", data={"call_id": [], "csrf_token": csrf_from(queue)},
                        follow_redirects=False)
    assert bulk.headers["location"] == f"/?{query}&page=2"

    last = browser.post(f"/calls/{third}/decision?{query}",
                        data={"decision": "approve", "then": "next", "csrf_token": csrf_from(queue)},
                        follow_redirects=False)
    assert last.headers["location"] == f"/?{query}"  # none left in this queue: back to it
    with world.factory() as session:
        decided = [session.get(Call, call_id) for call_id in (first, second, third)]
        assert [call.state if call else None for call in decided] == [CallState.approved] * 3


def test_item_decisions_keep_the_queue_filters(world: World) -> None:
    agent_id = unique_agent()
    call = flagged_call(world, agent_id)
    browser = world.browser("supervisor")
    query = urlencode({"agent": agent_id, "flagged": "yes"})
    page = browser.get(f"/calls/{call.call_id}?{query}").text
    response = browser.post(f"/calls/{call.call_id}/claims/{call.claim('summary1')}/review?{query}",
                            data={"action": "reject", "csrf_token": csrf_from(page)}, follow_redirects=False)
    assert response.headers["location"] == f"/calls/{call.call_id}?{query}#claim-{call.claim('summary1')}"


# ------------------------------------------------------------------------------ 4. decided calls


def test_a_decided_call_offers_no_item_forms_and_says_why(world: World) -> None:
    call = verified_call(world, "a1")
    agent = world.browser("agent_a1")
    page = agent.get(f"/calls/{call.call_id}").text
    assert 'data-role="approve"' in page and 'id="add-form"' in page
    approved = agent.post(f"/calls/{call.call_id}/decision", data={"decision": "approve",
                                                                   "csrf_token": csrf_from(page)})
    assert "Call approved." in approved.text
    page = approved.text
    for control in ('data-role="approve"', 'data-role="reject"', 'data-role="edit"', 'id="add-form"',
                    "Add a missed item", 'id="approve-call"', 'id="reject-call"', 'id="reopen-call"'):
        assert control not in page, control
    assert "This call is approved: its items and case note are locked." in page
    assert "Reopen it" not in page  # agents do not undo a decision

    supervisor_page = world.browser("supervisor").get(f"/calls/{call.call_id}").text
    assert 'data-role="approve"' not in supervisor_page and 'id="add-form"' not in supervisor_page
    assert "locked. Reopen it for review to change them." in supervisor_page
    assert 'id="reopen-call"' in supervisor_page


# ------------------------------------------------------------------------------------ 6. /mine


def test_my_calls_are_paged_and_ordered_by_the_calls_start(
    world: World, agent_browser: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    browser, agent_id = agent_browser
    march, no_start, backfilled = (verified_call(world, agent_id) for _ in range(3))
    with unit_of_work(world.factory) as session:
        for call, started in ((march, datetime(2026, 3, 5, 8, 0, tzinfo=UTC)), (no_start, None),
                              (backfilled, datetime(2025, 1, 2, 8, 0, tzinfo=UTC))):
            session.execute(update(Call).where(Call.id == call.call_id).values(started_at=started))
    monkeypatch.setattr(pages_module, "DEFAULT_PAGE_SIZE", 2)

    def listed(page: str) -> list[str]:
        return re.findall(r'<tr class="qrow" data-href="/calls/([0-9a-f]{32})', page)

    first = browser.get("/mine").text
    # The backfilled call was stored last but started first: it comes last. Without a start, the call
    # counts from when it was received (today), so it leads.
    assert listed(first) == [no_start.call_id, march.call_id]
    assert 'href="/mine?page=2" id="next-page"' in first
    assert "page 1 of 2" in first
    second = browser.get("/mine", params={"page": 2}).text
    assert listed(second) == [backfilled.call_id]
    assert 'href="/mine?page=1" id="prev-page"' in second and 'id="next-page"' not in second
    beyond = browser.get("/mine", params={"page": 7}).text
    assert 'id="past-end"' in beyond and 'href="/mine?page=2" id="last-page"' in beyond


def test_approve_and_next_from_my_calls_walks_my_calls_in_their_order(
    world: World, agent_browser: tuple[TestClient, str]
) -> None:
    # An agent approving from /mine was sent on by the review queue's order (oldest waiting first), not the
    # next row of /mine, and back to the queue page when it ran out: out of their own list.
    browser, agent_id = agent_browser
    oldest, done, middle, newest = (verified_call(world, agent_id) for _ in range(4))  # queue order: this one
    with unit_of_work(world.factory) as session:
        for call, day in ((oldest, 2), (done, 3), (middle, 4), (newest, 5)):
            session.execute(update(Call).where(Call.id == call.call_id)
                            .values(started_at=datetime(2026, 3, day, 8, 0, tzinfo=UTC)))
        session.execute(update(Call).where(Call.id == done.call_id).values(state=CallState.approved))
    colleagues = verified_call(world, unique_agent())  # another agent's call: never offered, even when posted

    mine = browser.get("/mine").text
    assert f'<a href="/calls/{newest.call_id}?from=mine" class="open">' in mine
    page = browser.get(f"/calls/{newest.call_id}?from=mine").text
    # The next row of /mine still to review (the approved one in between is skipped), and the way back is /mine.
    assert next_call_href(page) == f"/calls/{middle.call_id}?from=mine"
    assert '<a href="/mine" class="back" id="back-to-queue"' in page
    assert f'action="/calls/{newest.call_id}/decision?from=mine" class="inline" id="approve-next-form"' in page
    assert f'name="next_call" value="{middle.call_id}"' in page

    def approve_and_next(call: SeededCall, offered: str = "") -> str:
        answer = browser.post(f"/calls/{call.call_id}/decision?from=mine", follow_redirects=False, data={
            "decision": "approve", "then": "next", "next_call": offered, "csrf_token": csrf_from(mine)})
        assert answer.status_code == 303, answer.text
        return str(answer.headers["location"])

    assert approve_and_next(newest, offered=colleagues.call_id) == f"/calls/{middle.call_id}?from=mine"
    assert approve_and_next(middle, offered=middle.call_id) == f"/calls/{oldest.call_id}?from=mine"
    assert approve_and_next(oldest) == "/mine"  # none of mine left to review: back to /mine, saying so
    back = browser.get("/mine").text
    assert "Call approved. Nothing else to review in this list." in back
    assert [state_of(world, call) for call in (newest, middle, oldest, colleagues)] == [
        CallState.approved, CallState.approved, CallState.approved, CallState.ready_for_review]
    # Opened from the queue, a call page still leads back to the queue.
    assert '<a href="/" class="back" id="back-to-queue"' in browser.get(f"/calls/{newest.call_id}").text


def state_of(world: World, call: SeededCall) -> CallState | None:
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        return stored.state if stored else None


# --------------------------------------------------------------------------------- 7. messages


@pytest.mark.parametrize(("action", "message"), [("approve", "Item approved."), ("reject", "Item rejected.")])
def test_item_decision_messages_are_worded_per_action(world: World, action: str, message: str) -> None:
    call = world.fresh_call("acme_a1_blue")
    browser = world.browser("supervisor")
    page = browser.get(f"/calls/{call.call_id}").text
    answer = browser.post(f"/calls/{call.call_id}/claims/{call.claim('reason')}/review",
                          data={"action": action, "csrf_token": csrf_from(page)})
    assert f'id="flash">{message}</div>' in answer.text
    assert "rejectd" not in answer.text


# ------------------------------------------------------------------------- 8. bidirectional controls


def test_show_bidi_escapes_and_shows_every_bidi_control() -> None:
    shown = str(show_bidi(f"please \u202eevil\u202c <b>text</b> {BIDI_SAMPLE}"))
    assert not BIDI_CONTROLS.search(shown)
    assert "please <span class=\"bidi-control\"" in shown and ">\\u202e</span>evil" in shown
    assert "&lt;b&gt;text&lt;/b&gt;" in shown
    for code in ("202a", "202b", "202c", "202d", "202e", "2066", "2067", "2068", "2069", "200e", "200f", "061c"):
        assert f"\\u{code}" in shown
    assert bidi_codes("a\u202eb<") == "a\\u202eb<"  # an attribute: text only, escaped by the template
    assert str(show_bidi(None)) == ""


def test_bidi_controls_in_transcript_items_notes_and_previews_are_shown_not_applied(world: World) -> None:
    agent_id = unique_agent()
    call = flagged_call(world, agent_id)
    with unit_of_work(world.factory) as session:
        session.execute(update(UtteranceRow).where(UtteranceRow.call_id == call.call_id, UtteranceRow.index == 5)
                        .values(text="please \u202eevil\u202c text <i>x</i>"))
        reason = "Refund \u2066asked\u2069 \u200ffor a late fee"
        session.execute(update(Claim).where(Claim.id == call.claim("reason")).values(text=reason, text_masked=reason))
        session.execute(update(Call).where(Call.id == call.call_id).values(case_note="Note \u061c with \u202d mark"))
    for page in (world.browser("analyst").get(f"/calls/{call.call_id}").text,
                 world.browser("analyst").get("/", params={"agent": agent_id}).text):
        assert not BIDI_CONTROLS.search(page), [hex(ord(c)) for c in BIDI_CONTROLS.findall(page)]
        assert "Refund <span class=\"bidi-control\"" in page
    page = world.browser("analyst").get(f"/calls/{call.call_id}").text
    assert ">\\u202e</span>evil<span" in page and "text &lt;i&gt;x&lt;/i&gt;" in page
    assert "Note <span class=\"bidi-control\"" in page and ">\\u202d</span>" in page


# -------------------------------------------------------------------------------- 10. bad filters


def test_invalid_queue_filters_are_reported_not_silently_ignored(world: World) -> None:
    browser = world.browser("supervisor")
    bogus = browser.get("/", params={"state": "bogus"}).text
    assert 'id="filter-problems"' in bogus and "Unknown state “bogus”" in bogus
    bad_day = browser.get("/", params={"date_from": "2026-13-01"}).text
    assert "From date “2026-13-01” is not a date (YYYY-MM-DD)" in bad_day
    odd_flag = browser.get("/", params={"flagged": "maybe"}).text
    assert "Flagged “maybe” is not one of yes, no" in odd_flag
    assert 'id="filter-problems"' not in browser.get("/").text


def test_flagged_takes_the_apis_true_and_false(world: World) -> None:
    agent_id = unique_agent()
    flagged, verified = flagged_call(world, agent_id), verified_call(world, agent_id)
    browser = world.browser("supervisor")
    for spelling, shown, hidden in (("true", flagged, verified), ("false", verified, flagged)):
        page = browser.get("/", params={"agent": agent_id, "flagged": spelling, "state": "all"}).text
        assert 'id="filter-problems"' not in page
        assert f"/calls/{shown.call_id}" in page and f"/calls/{hidden.call_id}" not in page


def test_a_page_past_the_end_links_to_the_last_page(world: World) -> None:
    agent_id = unique_agent()
    verified_call(world, agent_id)
    page = world.browser("supervisor").get("/", params={"agent": agent_id, "page": 99}).text
    assert 'id="past-end"' in page and "Page 99 is past the end" in page
    assert f'href="/?{html.escape(urlencode({"agent": agent_id, "page": 1}))}" id="last-page"' in page


# ------------------------------------------------------------------------------------ 11. times


def test_times_are_labelled_utc_and_due_dates_carry_another_years_year(world: World) -> None:
    agent_id = unique_agent()
    call = verified_call(world, agent_id)
    with unit_of_work(world.factory) as session:
        session.execute(update(Claim).where(Claim.id == call.claim("action0")).values(due_date=date(2027, 3, 2)))
    browser = world.browser("supervisor")
    page = browser.get(f"/calls/{call.call_id}").text
    assert "<dd>2026-03-03 09:30 UTC</dd>" in page
    decided = browser.post(f"/calls/{call.call_id}/claims/{call.claim('reason')}/review",
                           data={"action": "approve", "csrf_token": csrf_from(page)}).text
    assert re.search(r"<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time> <b>supervisor</b>", decided)
    queue = browser.get("/", params={"agent": agent_id}).text
    assert "2026-03-03 09:30 UTC" in queue
    assert ">Tue 02 Mar 2027</span>" in queue


def test_due_day_shows_the_year_only_when_it_is_not_this_one() -> None:
    assert due_day(date(2026, 3, 2), today=date(2026, 12, 5)) == "Mon 02 Mar"
    assert due_day(date(2027, 3, 2), today=date(2026, 12, 5)) == "Tue 02 Mar 2027"
    assert due_day(None) == ""


def test_a_refused_note_or_edit_quotes_the_reviewers_words_back(world: World) -> None:
    # A colleague approved the call while the note was being written: the page came back without the note box
    # and the sentence was gone.
    call = world.fresh_call("acme_a1_blue")
    writer, approver = world.browser("supervisor"), world.browser("admin")
    page = writer.get(f"/calls/{call.call_id}").text
    token = csrf_from(page)
    approver_page = approver.get(f"/calls/{call.call_id}").text
    approver.post(f"/calls/{call.call_id}/claims/{call.claim('summary1')}/review",
                  data={"action": "reject", "csrf_token": csrf_from(approver_page)})
    approver.post(f"/calls/{call.call_id}/decision", data={"decision": "approve",
                                                           "csrf_token": csrf_from(approver_page)})
    refused = writer.post(f"/calls/{call.call_id}/note",
                          data={"note": "Customer asked for the paper statement too.", "csrf_token": token})
    assert "Your text, not saved: “Customer asked for the paper statement too.”" in html.unescape(refused.text)
