"""Review decisions (app/review.py) and the append-only audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import delete, make_url, select, text, update
from sqlalchemy.exc import DBAPIError

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import AppendOnlyError
from app.models import Call, CallState, Claim, OutboxEvent, ReviewEvent, ReviewStatus, RunStatus, UserRole, Utterance
from app.pipeline.calls import get_call
from app.pipeline.persist import RunFacts, add_run
from app.review import (
    CallDecision,
    ClaimAction,
    ClaimChanges,
    NewItem,
    ReviewConflictError,
    ReviewInputError,
    SelectedQuote,
    add_reviewer_claim,
    call_events,
    decide_call,
    review_claim,
)
from app.schemas.grounding import ClaimKind
from app.schemas.usage import Usage
from app.users import AccessDeniedError, Principal, authenticate
from tests.support.processes import wait_until
from tests.web.conftest import World
from tests.web.world import bearer, client_for, extraction, seed_call, seed_user


def principal(world: World, user: str) -> Principal:
    with world.factory() as session:
        found = authenticate(session, world.tokens[user])
    assert found is not None
    return found


def test_edit_records_before_and_after(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    supervisor = principal(world, "supervisor")
    with unit_of_work(world.factory) as session:
        claim = review_claim(session, supervisor, call.claim("action0"), ClaimAction.edit,
                             ClaimChanges(text="Email the refund confirmation", owner="agent", due="by 5 pm"))
        assert claim.review_status.value == "edited"
    with world.factory() as session:
        (event,) = call_events(session, supervisor, call.call_id)
    assert event.action == "claim_edited"
    assert event.actor_name == "supervisor"
    assert event.actor_user_id == supervisor.user_id
    assert event.before == {"text": "Send the customer a confirmation email", "owner": "agent", "due": "today",
                            "review_status": "pending"}
    assert event.after == {"text": "Email the refund confirmation", "owner": "agent", "due": "by 5 pm",
                           "review_status": "edited"}


def test_an_edited_item_is_verified_again_on_its_evidence(world: World) -> None:
    # The outcome rests on "I will refund the $30 late fee to your card": an edit writing $5000 kept the
    # verified badge and reached the record as verified.
    call = world.fresh_call("acme_a1_blue")
    agent = principal(world, "agent_a1")

    def edit(changes: ClaimChanges) -> tuple[str, str | None]:
        with unit_of_work(world.factory) as session:
            claim = review_claim(session, agent, call.claim("outcome"), ClaimAction.edit, changes)
            return claim.grounding_status, claim.grounding_reason

    assert edit(ClaimChanges(text="Agent will refund a $5000 late fee")) == ("ungrounded", "unsupported_number")
    assert edit(ClaimChanges(text="Agent refused to refund the $30 late fee")) == (
        "ungrounded", "unsupported_negation")
    assert edit(ClaimChanges(text="The $30 late fee will be refunded to the card")) == ("grounded", None)
    with world.factory() as session:
        owning_call = session.get(Call, call.call_id)
        assert owning_call is not None and owning_call.flagged_items == 1  # the fabricated $50 credit only
    # An action item's owner and due are checked again too.
    with unit_of_work(world.factory) as session:
        item = review_claim(session, agent, call.claim("action0"), ClaimAction.edit, ClaimChanges(due="by Friday"))
        assert (item.grounding_status, item.grounding_reason) == ("ungrounded", "unsupported_date")


def test_an_edit_the_transcript_does_not_support_is_undecided_until_approved_as_written(world: World) -> None:
    # An edit to "$900" over evidence of "$30" counted as decided: the call kept no flagged item, its note
    # stated the edit, and bulk approval ("every item verified") sent it downstream in an approved record.
    from app.pipeline.note import call_case_note
    from app.review import approve_verified_calls

    call = world.fresh_call("acme_a1_blue")
    supervisor = principal(world, "supervisor")
    with unit_of_work(world.factory) as session:  # every item verified: ready for review, nothing flagged
        session.execute(update(Claim).where(Claim.call_id == call.call_id).values(grounding_status="grounded"))
        stored = session.get(Call, call.call_id)
        assert stored is not None
        stored.state, stored.flagged_items = CallState.ready_for_review, 0
    with unit_of_work(world.factory) as session:
        edited = review_claim(session, supervisor, call.claim("summary0"), ClaimAction.edit,
                              ClaimChanges(text="The customer was promised a $900 credit"))
        assert (edited.grounding_status, edited.review_status.value) == ("ungrounded", "edited")
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None and stored.flagged_items == 1
        assert "$900" not in call_case_note(session, stored)
    with unit_of_work(world.factory) as session:
        bulk = approve_verified_calls(session, supervisor, [call.call_id])
        assert bulk.approved == [] and bulk.refused == {call.call_id: "unverified items pending"}
    with pytest.raises(ReviewConflictError, match="1 unverified item"), unit_of_work(world.factory) as session:
        decide_call(session, supervisor, call.call_id, CallDecision.approve)
    with unit_of_work(world.factory) as session:  # the reviewer vouches for the words as written
        review_claim(session, supervisor, call.claim("summary0"), ClaimAction.approve)
        assert decide_call(session, supervisor, call.call_id, CallDecision.approve).state is CallState.approved
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None and stored.flagged_items == 0
        assert "$900" in call_case_note(session, stored)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (ClaimChanges(), "an edit changes"),
        (ClaimChanges(text="   "), "text is empty"),
        (ClaimChanges(owner="manager"), "owner must be one of"),
        (ClaimChanges(due="x" * 201), "due is longer"),
    ],
)
def test_invalid_edits_are_refused_and_change_nothing(world: World, changes: ClaimChanges, problem: str) -> None:
    call = world.fresh_call("acme_a1_blue")
    with pytest.raises(ReviewInputError, match=problem), unit_of_work(world.factory) as session:
        review_claim(session, principal(world, "admin"), call.claim("action0"), ClaimAction.edit, changes)
    with world.factory() as session:
        claim = session.get(Claim, call.claim("action0"))
        assert claim is not None
        assert (claim.text, claim.review_status.value) == ("Send the customer a confirmation email", "pending")
        assert session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == call.call_id)).all() == []


def test_only_action_items_have_owner_and_due(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    with pytest.raises(ReviewInputError, match="only action items"), unit_of_work(world.factory) as session:
        review_claim(session, principal(world, "admin"), call.claim("summary0"), ClaimAction.edit,
                     ClaimChanges(due="tomorrow"))


def test_approving_a_call_needs_its_unverified_items_decided(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    assert call.grounded["summary1"] is False
    admin = principal(world, "admin")
    with pytest.raises(ReviewConflictError, match="1 unverified item"), unit_of_work(world.factory) as session:
        decide_call(session, admin, call.call_id, CallDecision.approve)
    with unit_of_work(world.factory) as session:
        review_claim(session, admin, call.claim("summary1"), ClaimAction.reject)
        decided = decide_call(session, admin, call.call_id, CallDecision.approve)
        assert decided.state is CallState.approved
    with world.factory() as session:
        actions = [e.action for e in call_events(session, admin, call.call_id)]
        assert actions == ["claim_rejected", "call_approved"]
        assert get_call(session, call.call_id).state is CallState.approved


def test_items_of_a_decided_call_are_locked(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    admin = principal(world, "admin")
    with unit_of_work(world.factory) as session:
        decide_call(session, admin, call.call_id, CallDecision.reject)
    with pytest.raises(ReviewConflictError, match="is rejected"), unit_of_work(world.factory) as session:
        review_claim(session, admin, call.claim("reason"), ClaimAction.approve)
    with world.factory() as session:
        actions = [e.action for e in call_events(session, admin, call.call_id)]
    assert actions == ["call_rejected"]  # the refused change left no trace but the decision


def test_supervisor_reopens_a_decided_call_and_its_items_can_change_again(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    admin, supervisor = principal(world, "admin"), principal(world, "supervisor")
    with unit_of_work(world.factory) as session:
        decide_call(session, admin, call.call_id, CallDecision.reject)
    with unit_of_work(world.factory) as session:
        reopened = decide_call(session, supervisor, call.call_id, CallDecision.reopen)
        # Back to the state its extraction implies: one item is unverified.
        assert reopened.state is CallState.needs_attention
    with unit_of_work(world.factory) as session:
        review_claim(session, supervisor, call.claim("reason"), ClaimAction.approve)
    with world.factory() as session:
        events = call_events(session, admin, call.call_id)
    assert [e.action for e in events] == ["call_rejected", "call_reopened", "claim_approved"]
    assert (events[1].actor_name, events[1].before, events[1].after) == (
        "supervisor", {"state": "rejected"}, {"state": "needs_attention"})


def test_reopened_call_with_every_item_verified_is_ready_for_review(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    admin = principal(world, "admin")
    with unit_of_work(world.factory) as session:
        review_claim(session, admin, call.claim("summary1"), ClaimAction.reject)
        decide_call(session, admin, call.call_id, CallDecision.approve)
    with unit_of_work(world.factory) as session:
        # The unverified item was decided, but it is still unverified: the extraction is what counts.
        assert decide_call(session, admin, call.call_id, CallDecision.reopen).state is CallState.needs_attention
        session.execute(update(Claim).where(Claim.call_id == call.call_id).values(grounding_status="grounded"))
        decide_call(session, admin, call.call_id, CallDecision.reject)
        assert decide_call(session, admin, call.call_id, CallDecision.reopen).state is CallState.ready_for_review


def test_only_a_decided_call_can_be_reopened(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    with pytest.raises(ReviewConflictError, match="only an approved or rejected"), unit_of_work(world.factory) as s:
        decide_call(s, principal(world, "admin"), call.call_id, CallDecision.reopen)
    with world.factory() as session:
        assert get_call(session, call.call_id).state is CallState.needs_attention
        assert call_events(session, principal(world, "admin"), call.call_id) == []


def test_agents_decide_but_do_not_reopen(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    agent = principal(world, "agent_a1")
    with unit_of_work(world.factory) as session:
        decide_call(session, agent, call.call_id, CallDecision.reject)
    with pytest.raises(AccessDeniedError, match="reopen"), unit_of_work(world.factory) as session:
        decide_call(session, agent, call.call_id, CallDecision.reopen)
    with world.factory() as session:
        assert get_call(session, call.call_id).state is CallState.rejected


def test_a_decided_call_is_not_flipped_without_reopening_it(world: World) -> None:
    # A supervisor on a page opened before a colleague's rejection pressed approve: "Call approved.", no word
    # of the rejection, and call.rejected then call.approved went downstream; an agent could undo a decision.
    call = world.fresh_call("acme_a1_blue")
    supervisor, admin, agent = principal(world, "supervisor"), principal(world, "admin"), principal(world, "agent_a1")
    with unit_of_work(world.factory) as session:
        review_claim(session, admin, call.claim("summary1"), ClaimAction.reject)
        decide_call(session, admin, call.call_id, CallDecision.reject)
    for who in (supervisor, agent):
        with pytest.raises(ReviewConflictError, match=r"was rejected meanwhile by admin at .* UTC"), \
                unit_of_work(world.factory) as session:
            decide_call(session, who, call.call_id, CallDecision.approve)
    with unit_of_work(world.factory) as session:  # the same decision again: already so
        assert decide_call(session, agent, call.call_id, CallDecision.reject).state is CallState.rejected
    with world.factory() as session:
        assert get_call(session, call.call_id).state is CallState.rejected
        assert [e.action for e in call_events(session, admin, call.call_id)] == ["claim_rejected", "call_rejected"]
        assert [e.type for e in session.scalars(select(OutboxEvent).where(
            OutboxEvent.call_id == call.call_id).order_by(OutboxEvent.id))] == ["call.rejected"]
    answer = world.client.post(f"/api/calls/{call.call_id}/review", json={"decision": "approve"},
                               headers=world.token("supervisor"))
    assert answer.status_code == 409 and "reopens it" in answer.json()["detail"]
    with unit_of_work(world.factory) as session:  # reopened, it is decided again, the other way
        decide_call(session, supervisor, call.call_id, CallDecision.reopen)
        assert decide_call(session, supervisor, call.call_id, CallDecision.approve).state is CallState.approved


def test_a_call_still_processing_cannot_be_decided(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    with unit_of_work(world.factory) as session:
        get_call(session, call.call_id).state = CallState.processing
    with pytest.raises(ReviewConflictError, match="is processing"), unit_of_work(world.factory) as session:
        decide_call(session, principal(world, "admin"), call.call_id, CallDecision.reject)


def test_items_of_a_superseded_run_cannot_be_reviewed(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    with unit_of_work(world.factory) as session:
        row = get_call(session, call.call_id)
        facts = RunFacts("newer-run", "test", "m", "extract-v1", row.transcript_hash, Usage(), None, None)
        add_run(session, row, facts, status=RunStatus.succeeded)
    with pytest.raises(ReviewConflictError, match="superseded"), unit_of_work(world.factory) as session:
        review_claim(session, principal(world, "admin"), call.claim("reason"), ClaimAction.approve)


def test_analyst_reads_but_cannot_decide(world: World) -> None:
    call = world.fresh_call("acme_a2_red")
    with pytest.raises(AccessDeniedError), unit_of_work(world.factory) as session:
        review_claim(session, principal(world, "analyst"), call.claim("reason"), ClaimAction.approve)


# ------------------------------------------------------------------------------ reviewer-added items


def test_added_item_is_verified_against_the_transcript(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    agent = principal(world, "agent_a1")
    item = NewItem(ClaimKind.action_item, "Refund the $30 late fee", "agent", "within 5 business days",
                   [SelectedQuote(2, "I will refund the $30 late fee"),
                    SelectedQuote(4, "You will see the refund within 5 business days")])
    with unit_of_work(world.factory) as session:
        claim_id = add_reviewer_claim(session, agent, call.call_id, item).claim.id
    with world.factory() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        assert (claim.origin, claim.grounding_status, claim.review_status.value) == ("reviewer", "grounded", "approved")
        assert claim.position == len(call.claims)  # after the model's items, in the current run
        owning_call = session.get(Call, call.call_id)
        assert owning_call is not None and claim.tenant_id == owning_call.tenant_id  # analysts' filter reads it
        texts = {u.index: u.text for u in session.scalars(select(Utterance).where(Utterance.call_id == call.call_id))}
        for ev, quote in zip(claim.evidence, item.selection, strict=True):
            assert ev.char_start is not None and ev.char_end is not None and ev.utterance_index is not None
            assert texts[ev.utterance_index][ev.char_start:ev.char_end] == quote.quote
        (event,) = call_events(session, agent, call.call_id)
    assert event.action == "claim_added"
    assert event.after is not None and event.after["evidence"][0]["utterance"] == 2


def test_added_item_whose_amount_is_not_in_the_selection_is_kept_unverified(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    item = NewItem(ClaimKind.action_item, "Refund the $50 late fee", "agent", None,
                   [SelectedQuote(2, "I will refund the $30 late fee")])
    with unit_of_work(world.factory) as session:
        claim = add_reviewer_claim(session, principal(world, "admin"), call.call_id, item).claim
        assert claim.grounding_status == "ungrounded"
        assert claim.grounding_reason == "unsupported_number"


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (NewItem(ClaimKind.action_item, "Call back", "agent", None, [SelectedQuote(2, "we will call you back")]),
         "not found in the transcript"),
        (NewItem(ClaimKind.action_item, "Call back", "agent", None, [SelectedQuote(99, "refund")]),
         "utterance 99 does not exist"),
        (NewItem(ClaimKind.action_item, "Call back", "agent", None, []), "select the transcript text"),
        (NewItem(ClaimKind.action_item, "Call back", "boss", None, [SelectedQuote(2, "refund")]),
         "owner must be one of"),
        (NewItem(ClaimKind.reason, "Late fee", None, None, [SelectedQuote(1, "late fee")]), "can add"),
    ],
)
def test_invalid_additions_store_nothing(world: World, item: NewItem, problem: str) -> None:
    call = world.fresh_call("acme_a1_blue")
    with pytest.raises(ReviewInputError, match=problem), unit_of_work(world.factory) as session:
        add_reviewer_claim(session, principal(world, "admin"), call.call_id, item)
    with world.factory() as session:
        count = len(session.scalars(select(Claim).where(Claim.call_id == call.call_id)).all())
    assert count == len(call.claims)


# ---------------------------------------------------------------------------------------- audit trail


def _one_event(world: World) -> int:
    call = world.fresh_call("acme_a1_blue")
    with unit_of_work(world.factory) as session:
        review_claim(session, principal(world, "admin"), call.claim("reason"), ClaimAction.approve)
    with world.factory() as session:
        event_id = session.scalar(select(ReviewEvent.id).where(ReviewEvent.call_id == call.call_id))
    assert event_id is not None
    return event_id


def test_the_orm_refuses_to_change_or_delete_an_event(world: World) -> None:
    event_id = _one_event(world)
    with unit_of_work(world.factory) as session:
        event = session.get(ReviewEvent, event_id)
        assert event is not None
        event.action = "claim_rejected"
        with pytest.raises(AppendOnlyError):
            session.flush()
        session.rollback()
    with pytest.raises(AppendOnlyError), unit_of_work(world.factory) as session:
        session.delete(session.get(ReviewEvent, event_id))
    with pytest.raises(AppendOnlyError), unit_of_work(world.factory) as session:
        session.execute(update(ReviewEvent).where(ReviewEvent.id == event_id).values(action="x"))
    with pytest.raises(AppendOnlyError), unit_of_work(world.factory) as session:
        session.execute(delete(ReviewEvent).where(ReviewEvent.id == event_id))
    with world.factory() as session:
        assert session.scalar(select(ReviewEvent.action).where(ReviewEvent.id == event_id)) == "claim_approved"


@pytest.mark.parametrize("statement", ["UPDATE review_events SET action = 'x' WHERE id = :id",
                                       "DELETE FROM review_events WHERE id = :id"])
def test_the_database_refuses_raw_sql_changes_to_events(world: World, statement: str) -> None:
    event_id = _one_event(world)
    engine = world.factory.kw["bind"]
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement), {"id": event_id})
    with world.factory() as session:
        assert session.scalar(select(ReviewEvent.action).where(ReviewEvent.id == event_id)) == "claim_approved"


def test_admin_reads_the_trail_of_a_deleted_call_and_nobody_else_does(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    world.client.post(f"/api/claims/{call.claim('reason')}/review", json={"action": "approve"},
                      headers=world.token("supervisor"))
    assert world.client.delete(f"/api/calls/{call.call_id}", headers=world.token("admin")).status_code == 204
    with world.factory() as session:
        assert session.get(Call, call.call_id) is None
    trail = world.client.get(f"/api/calls/{call.call_id}/events", headers=world.token("admin"))
    assert trail.status_code == 200
    assert [e["action"] for e in trail.json()] == ["claim_approved", "call_deleted"]
    # The decision's snapshots held the claim's text (masked with the transcript, which is gone): cleared, as a
    # retention purge clears them; who decided what, and when, stays.
    approved = trail.json()[0]
    assert (approved["before"], approved["after"], approved["actor"]) == (None, None, "supervisor")
    assert trail.json()[1]["before"]["external_id"].startswith("acme_a1_blue-")
    assert trail.json()[1]["after"] is None
    for user in ("supervisor", "analyst", "agent_a1", "globex_admin"):
        answer = world.client.get(f"/api/calls/{call.call_id}/events", headers=world.token(user))
        assert answer.status_code == 404, user


@pytest.mark.postgres
def test_a_decision_picked_as_a_deadlock_victim_is_run_again_within_the_request(postgres_url: str) -> None:
    """Another transaction takes the locks a decision needs in the other order (here: the audit table,
    then the call row). PostgreSQL aborts the request's transaction; the request runs its unit of work
    again and answers 200, with one decision recorded, not two, and no 500."""
    factory = make_session_factory(create_db_engine(postgres_url))
    token = seed_user(factory, tenant="acme", name="sup", role=UserRole.supervisor)
    document = extraction().model_copy(update={"summary": extraction().summary[:1]})  # every item verified
    call = seed_call(factory, tenant="acme", external_id="deadlock", agent_id="a1", team="blue", document=document)
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def deadlocks() -> int:
        with factory() as session:
            return int(session.scalar(text("SELECT deadlocks FROM pg_stat_database "
                                           "WHERE datname = current_database()")) or 0)

    def request_waits_for_the_audit_table() -> bool:
        with factory() as session:
            return bool(session.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'review_events'::regclass "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")))

    before = deadlocks()
    with (
        client_for(postgres_url) as client,
        ThreadPoolExecutor(max_workers=1) as pool,
        psycopg.connect(dsn) as other,
    ):
        # The request's deadlock check fires first (1 s): it is the victim, the other transaction goes on.
        other.execute("SET deadlock_timeout = '60s'")
        other.execute("LOCK TABLE review_events IN SHARE ROW EXCLUSIVE MODE")
        answer = pool.submit(client.post, f"/api/calls/{call.call_id}/review", json={"decision": "approve"},
                             headers=bearer(token))
        assert wait_until(request_waits_for_the_audit_table, 30)  # it holds the call row, waits for the table
        other.execute("SELECT id FROM calls WHERE id = %s FOR UPDATE", [call.call_id])  # closes the cycle
        other.commit()
        response = answer.result(timeout=60)

    assert response.status_code == 200, response.text
    assert response.json()["state"] == "approved"
    # At least once: the retry may take the call row again before the other transaction does (row locks
    # are not queued fairly) and be the victim a second time; what counts is one decision and a 200.
    assert deadlocks() >= before + 1
    with factory() as session:
        actions = session.scalars(select(ReviewEvent.action).where(ReviewEvent.call_id == call.call_id)).all()
        handed_off = session.scalars(select(OutboxEvent.type).where(OutboxEvent.call_id == call.call_id)).all()
    assert actions == ["call_approved"]
    assert [t for t in handed_off if t == "call.approved"] == ["call.approved"]


def test_an_item_decided_meanwhile_is_not_overwritten_unseen_and_a_repeat_records_nothing(world: World) -> None:
    # A reviewer's page from before a colleague's rejection approved the item ("Item approved.", before:
    # rejected); a repeated key press wrote one more claim_approved each time.
    call = world.fresh_call("acme_a1_blue")
    supervisor, admin = principal(world, "supervisor"), principal(world, "admin")
    pending = ReviewStatus.pending
    with unit_of_work(world.factory) as session:
        review_claim(session, admin, call.claim("reason"), ClaimAction.reject, expected=pending)
    with pytest.raises(ReviewConflictError, match=r"was rejected meanwhile by admin at .* UTC"), \
            unit_of_work(world.factory) as session:
        review_claim(session, supervisor, call.claim("reason"), ClaimAction.approve, expected=pending)
    for _ in range(3):
        with unit_of_work(world.factory) as session:
            review_claim(session, supervisor, call.claim("reason"), ClaimAction.reject)
    with world.factory() as session:
        claim = session.get(Claim, call.claim("reason"))
        assert claim is not None and claim.review_status is ReviewStatus.rejected
        assert [e.action for e in call_events(session, admin, call.call_id)] == ["claim_rejected"]
    # The API and the page send what they showed; the API's answer names the conflict.
    stale = world.client.post(f"/api/claims/{call.claim('reason')}/review",
                              json={"action": "approve", "expected_status": "pending"},
                              headers=world.token("supervisor"))
    assert stale.status_code == 409 and "rejected meanwhile" in stale.json()["detail"]
    browser = world.browser("supervisor")
    page = browser.get(f"/calls/{call.call_id}").text
    assert 'name="expected_status" value="rejected"' in page
    fresh = world.client.post(f"/api/claims/{call.claim('reason')}/review",
                              json={"action": "approve", "expected_status": "rejected"},
                              headers=world.token("supervisor"))
    assert fresh.status_code == 200, fresh.text


def test_json_routes_refuse_unknown_fields_and_other_media_types(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    headers = world.token("supervisor")
    for path, body in ((f"/api/claims/{call.claim('reason')}/review", {"action": "approve", "txt": "x"}),
                       (f"/api/calls/{call.call_id}/claims", {"kind": "action_item", "text": "Call back",
                                                              "owner": "agent", "due_date": "2026-12-10",
                                                              "evidence": [{"utterance": 0, "quote": "x"}]}),
                       (f"/api/calls/{call.call_id}/review", {"decision": "reject", "comment": "why not"})):
        answer = world.client.post(path, json=body, headers=headers)
        assert answer.status_code == 422, (path, answer.text)
        assert "Extra inputs are not permitted" in answer.text
    as_text = world.client.post(f"/api/calls/{call.call_id}/review", content=b'{"decision": "reject"}',
                                headers={**headers, "Content-Type": "text/plain"})
    assert as_text.status_code == 415 and "Content-Type: application/json" in as_text.json()["detail"]
    as_form = world.client.post("/api/webhooks", data={"url": "https://example.com/hook"},
                                headers=world.token("admin"))
    assert as_form.status_code == 415
    with world.factory() as session:
        assert get_call(session, call.call_id).state is CallState.needs_attention  # nothing was decided
    unlabelled = world.client.post(f"/api/calls/{call.call_id}/review", content=b'{"decision": "reject"}',
                                   headers=headers)
    assert unlabelled.status_code == 415 and "is missing" in unlabelled.text  # was 422 "a valid dictionary"
    spec = world.client.get("/openapi.json").json()["paths"]
    assert "415" in spec["/api/calls/{call_id}/review"]["post"]["responses"]
    assert "415" not in spec["/api/calls/{call_id}"]["get"]["responses"]


def test_the_same_item_added_again_is_that_item_not_a_second_one(world: World) -> None:
    # A retried POST /api/calls/{id}/claims (a timeout, a double submit) stored the item once per request: the
    # approved record then carried four identical tasks, and the CRM filed four.
    call = world.fresh_call("acme_a1_blue")
    body = {"kind": "action_item", "text": "Mail the refund check", "owner": "agent", "due": "today",
            "evidence": [{"utterance": 2, "quote": "I will refund the $30 late fee to your card"}]}
    headers = world.token("supervisor")
    answers = [world.client.post(f"/api/calls/{call.call_id}/claims", json=body, headers=headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 200, 200], [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    other = world.client.post(f"/api/calls/{call.call_id}/claims", json={**body, "due": "tomorrow"}, headers=headers)
    assert other.status_code == 201 and other.json()["id"] != answers[0].json()["id"]  # a different item is one
    with world.factory() as session:
        added = session.scalars(select(Claim.text).where(Claim.call_id == call.call_id, Claim.origin == "reviewer"))
        assert sorted(added) == ["Mail the refund check", "Mail the refund check"]
        assert [e.action for e in call_events(session, principal(world, "admin"), call.call_id)] == [
            "claim_added", "claim_added"]


def test_saving_the_derived_note_unchanged_keeps_it_derived(world: World) -> None:
    # Saving the note as shown froze it as the reviewer's words ("edited", note_edited): a rejected item then
    # stayed in the note that went downstream.
    from app.pipeline.note import call_case_note
    from app.review import edit_case_note

    call = world.fresh_call("acme_a1_blue")
    supervisor = principal(world, "supervisor")
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None
        shown = call_case_note(session, stored)
    assert "confirmation email" in shown
    with unit_of_work(world.factory) as session:
        assert edit_case_note(session, supervisor, call.call_id, shown).case_note is None
    with unit_of_work(world.factory) as session:
        review_claim(session, supervisor, call.claim("action0"), ClaimAction.reject)
    with world.factory() as session:
        stored = session.get(Call, call.call_id)
        assert stored is not None and "confirmation email" not in call_case_note(session, stored)
        assert "note_edited" not in [e.action for e in call_events(session, supervisor, call.call_id)]
    with unit_of_work(world.factory) as session:  # words of one's own are kept as written
        assert edit_case_note(session, supervisor, call.call_id, shown + " Customer was polite.").case_note


def test_a_retried_decision_that_says_what_it_saw_is_still_a_no_op(world: World) -> None:
    # The page sends expected_status: a double submit answered 409 "approved meanwhile by <the same user>".
    call = world.fresh_call("acme_a1_blue")
    body = {"action": "approve", "expected_status": "pending"}
    answers = [world.client.post(f"/api/claims/{call.claim('reason')}/review", json=body,
                                 headers=world.token("supervisor")) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [200, 200], answers[1].text
    with world.factory() as session:
        assert [e.action for e in call_events(session, principal(world, "admin"), call.call_id)] == ["claim_approved"]


def test_a_rejected_added_item_can_be_added_again(world: World) -> None:
    call = world.fresh_call("acme_a1_blue")
    body = {"kind": "action_item", "text": "Mail the refund check", "owner": "agent", "due": "today",
            "evidence": [{"utterance": 2, "quote": "I will refund the $30 late fee to your card"}]}
    headers = world.token("supervisor")
    first = world.client.post(f"/api/calls/{call.call_id}/claims", json=body, headers=headers)
    assert first.status_code == 201
    rejected = world.client.post(f"/api/claims/{first.json()['id']}/review", json={"action": "reject"},
                                 headers=headers)
    assert rejected.status_code == 200
    again = world.client.post(f"/api/calls/{call.call_id}/claims", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert again.json()["review_status"] == "approved"
