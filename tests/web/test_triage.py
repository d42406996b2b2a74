"""Triage and wrap-up: queue previews, approve and next, bulk approval, the case note, my calls."""

from __future__ import annotations

import html
import re
import uuid

import pytest
from sqlalchemy import select, update

from app.db.session import unit_of_work
from app.models import Call, CallState, ReviewEvent
from app.review import approve_verified_calls, pending_unverified
from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.users import AccessDeniedError, authenticate
from app.web.queue import CallFilters, list_calls
from tests.web.conftest import TARGETS, World, csrf_from
from tests.web.world import SeededCall, extraction, seed_call


def verified_call(world: World, target: str = "acme_a1_blue") -> SeededCall:
    """A call whose every item is verified (the default extraction without its fabricated $50 credit)."""
    document: Extraction = extraction()
    document = document.model_copy(update={"summary": document.summary[:1]})
    tenant, agent_id, team = TARGETS[target]
    return seed_call(world.factory, tenant=tenant, external_id=f"verified-{uuid.uuid4().hex[:8]}",
                     agent_id=agent_id, team=team, document=document)


def thrice_flagged_call(world: World) -> SeededCall:
    """The default extraction plus two more fabricated credits: three unverified items."""
    document: Extraction = extraction()
    invented = [Statement(text=f"Customer was offered a ${amount} credit",
                          evidence=[EvidenceRef(utterance=3, quote=f"I can offer you a ${amount} credit")])
                for amount in (60, 70)]
    document = document.model_copy(update={"summary": [*document.summary, *invented]})
    return seed_call(world.factory, tenant="acme", external_id=f"thrice-{uuid.uuid4().hex[:8]}",
                     agent_id="a1", team="blue", document=document)


def flagged_stored_and_recounted(world: World, call_id: str) -> tuple[int, int]:
    with world.factory() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call.flagged_items, pending_unverified(session, call_id)


def test_the_stored_flagged_count_agrees_with_a_recount_through_every_decision(world: World) -> None:
    call = thrice_flagged_call(world)
    unverified = [key for key, grounded in call.grounded.items() if not grounded]
    assert len(unverified) == 3
    assert flagged_stored_and_recounted(world, call.call_id) == (3, 3)
    headers = world.token("supervisor")

    def review(key: str, body: dict[str, str]) -> None:
        answer = world.client.post(f"/api/claims/{call.claim(key)}/review", json=body, headers=headers)
        assert answer.status_code == 200, answer.text

    def decide(decision: str) -> int:
        url = f"/api/calls/{call.call_id}/review"
        return world.client.post(url, json={"decision": decision}, headers=headers).status_code

    review("reason", {"action": "approve"})  # a verified item: nothing pending changes
    assert flagged_stored_and_recounted(world, call.call_id) == (3, 3)
    review(unverified[0], {"action": "edit", "text": "Customer asked about a credit"})
    # An edit its evidence does not support is still undecided: approving it as written decides it.
    assert flagged_stored_and_recounted(world, call.call_id) == (3, 3)
    review(unverified[0], {"action": "approve"})
    assert flagged_stored_and_recounted(world, call.call_id) == (2, 2)
    review(unverified[1], {"action": "reject"})
    review(unverified[1], {"action": "approve"})  # a second decision on the same item counts once
    assert flagged_stored_and_recounted(world, call.call_id) == (1, 1)
    added = world.client.post(
        f"/api/calls/{call.call_id}/claims",
        json={"kind": "action_item", "text": "Refund $99 today", "owner": "agent",
              "evidence": [{"utterance": 2, "quote": "I will refund the $30 late fee to your card"}]},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    assert (added.json()["status"], added.json()["review_status"]) == ("ungrounded", "approved")  # adding decides
    assert flagged_stored_and_recounted(world, call.call_id) == (1, 1)
    assert decide("approve") == 409
    review(unverified[2], {"action": "reject"})
    assert flagged_stored_and_recounted(world, call.call_id) == (0, 0)
    assert decide("approve") == 200 and decide("reopen") == 200
    assert flagged_stored_and_recounted(world, call.call_id) == (0, 0)


def test_the_queue_the_call_page_and_bulk_approval_read_the_stored_count(world: World) -> None:
    """The readers use `calls.flagged_items` rather than recounting: a stored count (here one no decision
    produced) is what every one of them shows and acts on."""
    call = verified_call(world)
    with unit_of_work(world.factory) as session:
        session.execute(update(Call).where(Call.id == call.call_id).values(flagged_items=2))
    with world.factory() as session:
        principal = authenticate(session, world.tokens["supervisor"])
        assert principal is not None
        listing = list_calls(session, principal, CallFilters(limit=200))
        assert pending_unverified(session, call.call_id) == 0
    row = next(c for c in listing.calls if c.call_id == call.call_id)
    assert row.flagged and row.flagged_items == 2
    page = world.browser("supervisor").get(f"/calls/{call.call_id}").text
    assert "2 unverified items still pending" in page
    assert decide_status(world, call.call_id, "approve") == 409
    with unit_of_work(world.factory) as session:
        supervisor = authenticate(session, world.tokens["supervisor"])
        assert supervisor is not None
        bulk = approve_verified_calls(session, supervisor, [call.call_id])
    assert bulk.approved == [] and bulk.refused == {call.call_id: "unverified items pending"}
    assert state_of(world, call.call_id) is CallState.ready_for_review


def decide_status(world: World, call_id: str, decision: str) -> int:
    answer = world.client.post(f"/api/calls/{call_id}/review", json={"decision": decision},
                               headers=world.token("supervisor"))
    return answer.status_code


def state_of(world: World, call_id: str) -> CallState:
    with world.factory() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call.state


def test_queue_rows_preview_reason_outcome_flags_due_and_wait(world: World) -> None:
    flagged = world.fresh_call("acme_a1_blue")
    with world.factory() as session:
        principal = authenticate(session, world.tokens["supervisor"])
        assert principal is not None
        listing = list_calls(session, principal, CallFilters(limit=200))
    row = next(c for c in listing.calls if c.call_id == flagged.call_id)
    assert row.reason == "Customer was charged a $30 late fee despite paying on time"
    assert row.outcome == "Agent will refund the $30 late fee"
    assert row.flagged_items == 1  # the fabricated "$50 credit"
    assert row.earliest_due == "today"
    assert row.earliest_due_date is not None and row.earliest_due_date.isoformat() == "2026-03-03"
    assert row.waiting_since is not None
    page = world.browser("supervisor").get("/", params={"state": "all"}).text
    assert "Customer was charged a $30 late fee despite paying on time" in page
    assert "1 unverified" in page
    assert "/static/queue.js" in page


def test_approve_and_next_opens_the_next_call_to_review(world: World) -> None:
    first, second = verified_call(world), verified_call(world)
    browser = world.browser("agent_a1")
    page = browser.get(f"/calls/{first.call_id}").text
    assert 'id="approve-next"' in page
    response = browser.post(f"/calls/{first.call_id}/decision",
                            data={"decision": "approve", "then": "next", "csrf_token": csrf_from(page)},
                            follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/calls/")
    assert first.call_id not in response.headers["location"]
    assert state_of(world, first.call_id) is CallState.approved
    assert state_of(world, second.call_id) is CallState.ready_for_review
    # A call with an undecided unverified item offers no one-key approval.
    flagged = world.fresh_call("acme_a1_blue")
    assert 'id="approve-next"' not in browser.get(f"/calls/{flagged.call_id}").text


def test_bulk_approval_decides_each_verified_call_with_its_own_audit_event(world: World) -> None:
    good = [verified_call(world), verified_call(world, "acme_a2_red")]
    flagged = world.fresh_call("acme_a1_blue")
    browser = world.browser("supervisor")
    page = browser.get("/").text
    assert 'id="bulk-approve"' in page
    ids = [c.call_id for c in good] + [flagged.call_id]
    response = browser.post("/calls/approve", data={"call_id": ids, "csrf_token": csrf_from(page)},
                            follow_redirects=True)
    with world.factory() as session:
        flagged_external = session.scalar(select(Call.external_id).where(Call.id == flagged.call_id))
    assert f"2 calls approved. Not approved: {flagged_external} (needs attention)." in html.unescape(response.text)
    assert [state_of(world, c.call_id) for c in good] == [CallState.approved, CallState.approved]
    assert state_of(world, flagged.call_id) is CallState.needs_attention
    with world.factory() as session:
        events = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id.in_(ids))).all()
    assert sorted((e.call_id, e.action, e.actor_name) for e in events) == sorted(
        (c.call_id, "call_approved", "supervisor") for c in good
    )


def test_agents_cannot_bulk_approve(world: World) -> None:
    call = verified_call(world)
    with world.factory() as session:
        agent = authenticate(session, world.tokens["agent_a1"])
        assert agent is not None
    with unit_of_work(world.factory) as session, pytest.raises(AccessDeniedError, match="bulk-approve"):
        approve_verified_calls(session, agent, [call.call_id])
    assert state_of(world, call.call_id) is CallState.ready_for_review
    assert 'id="bulk-approve"' not in world.browser("agent_a1").get("/").text


def test_agent_wraps_up_from_my_calls_editing_the_note(world: World) -> None:
    call = verified_call(world)
    browser = world.browser("agent_a1")
    mine = browser.get("/mine").text
    assert "My calls" in mine and f"/calls/{call.call_id}" in mine
    assert f"/calls/{world.calls['acme_a2_red'].call_id}" not in mine
    page = browser.get(f"/calls/{call.call_id}").text
    # The derived note: the reason, what else was said, the outcome, the next step.
    assert "Customer was charged a $30 late fee despite paying on time." in page
    assert "Next: send the customer a confirmation email (today)." in page
    saved = browser.post(f"/calls/{call.call_id}/note",
                         data={"note": "Late fee refunded; confirmation email today.", "csrf_token": csrf_from(page)})
    assert "Case note saved." in saved.text
    assert "Late fee refunded; confirmation email today." in saved.text
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None and stored.case_note == "Late fee refunded; confirmation email today."
        (event,) = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == call.call_id)).all()
    assert event.action == "note_edited"
    assert event.before == {"case_note": None}
    approved = browser.post(f"/calls/{call.call_id}/decision",
                            data={"decision": "approve", "csrf_token": csrf_from(saved.text)})
    assert "Call approved." in approved.text
    # Approved: the note is locked like the items.
    locked = browser.post(f"/calls/{call.call_id}/note",
                          data={"note": "changed", "csrf_token": csrf_from(approved.text)})
    assert "can no longer change" in locked.text


def test_call_page_shows_the_speaker_once_and_the_status_names(world: World) -> None:
    page = world.browser("supervisor").get(f"/calls/{world.calls['acme_a1_blue'].call_id}").text
    assert '<span class="speaker">Dana</span>' in page  # a name says more than the role: shown
    assert ">verbatim<" not in page and "verbatim up to" not in page
    assert '">exact' in page


def test_a_speaker_label_that_only_repeats_the_role_is_not_shown_twice(world: World) -> None:
    from app.pipeline.store import store_transcript
    from tests.support.transcripts import make_transcript

    with unit_of_work(world.factory) as session:  # speakers "Agent" and "Customer", as plain-text calls have
        call_id = store_transcript(session, make_transcript(external_id=f"plain-{uuid.uuid4().hex[:8]}",
                                                            agent_id="a1"), tenant="acme",
                                   external_id=f"plain-{uuid.uuid4().hex[:8]}").call_id
    page = world.browser("supervisor").get(f"/calls/{call_id}").text
    assert '<span class="who">agent</span>' in page
    assert '<span class="speaker">Agent</span>' not in page
    assert '<span class="speaker">Customer</span>' not in page


def test_call_page_links_the_next_call_to_review(world: World) -> None:
    first = verified_call(world, "acme_a2_red")
    page = world.browser("agent_a2").get(f"/calls/{first.call_id}").text
    link = re.search(r'href="/calls/([0-9a-f]{32})" id="next-call"', page)
    assert link is not None and link.group(1) != first.call_id
    with world.factory() as session:
        following = session.get(Call, link.group(1))
        assert following is not None
        # Queue order: a call with unverified items (the shared a2 call has one) before a verified one.
        assert following.agent_id == "a2" and following.state is CallState.needs_attention


def test_a_bulk_approval_waiting_on_another_reports_what_the_other_approved(world: World) -> None:
    # Two supervisors' bulk approvals of the same calls: the second was told "1 call approved" for a call the
    # first had approved a moment before (it read the state before taking the lock); in opposite orders the
    # two deadlocked and one answered 500. (PostgreSQL: the calls' row locks; SQLite: the database's write lock.)
    import threading

    calls = sorted([verified_call(world).call_id, verified_call(world).call_id])
    outcome: list[object] = []

    def second_supervisor() -> None:
        with unit_of_work(world.factory) as session:
            sue = authenticate(session, world.tokens["supervisor"])
            assert sue is not None
            outcome.append(approve_verified_calls(session, sue, list(reversed(calls))))

    with unit_of_work(world.factory) as session:
        sam = authenticate(session, world.tokens["admin"])
        assert sam is not None
        first = approve_verified_calls(session, sam, calls)
        other = threading.Thread(target=second_supervisor)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # waiting for the first approval's locks
    other.join(timeout=30)
    assert first.approved == calls
    (second,) = outcome
    assert second.approved == []  # type: ignore[attr-defined]
    assert second.refused == dict.fromkeys(  # type: ignore[attr-defined]
        calls, "approved: only calls whose items are all verified are approved in bulk")
    with world.factory() as session:
        approvals = session.scalars(select(ReviewEvent.call_id).where(
            ReviewEvent.call_id.in_(calls), ReviewEvent.action == "call_approved")).all()
    assert sorted(approvals) == calls



def test_approve_and_next_after_a_colleague_approved_says_so_and_goes_to_the_next_call(world: World) -> None:
    # The second supervisor pressing y was told "Call approved." and sent to the head of the queue: the call had
    # left the queue, so it had no place to follow.
    first, second = verified_call(world), verified_call(world)
    sam, sue = world.browser("supervisor"), world.browser("admin")
    page = sue.get(f"/calls/{first.call_id}").text
    offered = re.search(r'name="next_call" value="([^"]*)"', page)
    assert offered is not None
    token = csrf_from(page)
    sam_page = sam.get(f"/calls/{first.call_id}").text
    assert sam.post(f"/calls/{first.call_id}/decision", data={
        "decision": "approve", "then": "next", "csrf_token": csrf_from(sam_page)}).status_code == 200
    response = sue.post(f"/calls/{first.call_id}/decision", data={
        "decision": "approve", "then": "next", "next_call": second.call_id, "csrf_token": token},
        follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith(f"/calls/{second.call_id}")
    landed = sue.get(response.headers["location"]).text
    assert "was approved already: nothing changed" in landed
