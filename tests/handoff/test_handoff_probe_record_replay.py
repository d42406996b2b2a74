"""Findings of an integrator probe: a truncated call.approved lost who approved it and when; replaying an
unknown (or another tenant's) event id answered "0 replayed" as a success; registering an active endpoint's
URL again went unsaid, leaving a duplicate whose lost secret fails downstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.webhooks import webhooks_app
from app.config import Settings, get_settings
from app.db.session import unit_of_work
from app.errors import NotFoundError
from app.handoff.endpoints import WebhookInputError, add_endpoint, disable_endpoint, get_endpoint, replay_deliveries
from app.handoff.record import CallRecordV1, ReviewDecisionV1, bounded, json_size
from app.models import Claim, DeliveryStatus, UserRole, WebhookDelivery
from app.pipeline.calls import get_or_create_tenant
from app.review import CallDecision, ClaimAction, decide_call, review_claim
from tests.handoff.conftest import TENANT, events_of, make_principal, processed_call, register
from tests.web.world import BrokerQueue, bearer, client_for

runner = CliRunner()


@pytest.fixture
def api(db_url: str, allow_private: Settings) -> Iterator[TestClient]:
    with client_for(db_url, BrokerQueue.fresh(), webhook_allow_private=True) as client:
        yield client


@pytest.fixture
def cli_database(db_url: str, allow_private: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("POSTCALL_DATABASE_URL", db_url)
    monkeypatch.setenv("POSTCALL_SECRET_KEY", "probe-webhooks-test-key-" + "k" * 24)
    get_settings.cache_clear()
    return db_url


def _tenant_id(session: Session, slug: str = TENANT) -> int:
    return get_or_create_tenant(session, slug).id


def _approved_call(factory: sessionmaker[Session], external_id: str) -> str:
    """A processed call whose every item a supervisor approved, then the call: a call.approved event."""
    call_id = processed_call(factory, external_id)
    supervisor, _ = make_principal(factory, "rita", UserRole.supervisor)
    with unit_of_work(factory) as session:
        for claim_id in session.scalars(select(Claim.id).where(Claim.call_id == call_id)).all():
            review_claim(session, supervisor, claim_id, ClaimAction.approve)
        decide_call(session, supervisor, call_id, CallDecision.approve)
    return call_id


# --- 2. a truncated call.approved keeps the review decision ------------------------------------------------


def _review_of(record: CallRecordV1) -> tuple[str | None, str | None, datetime | None]:
    return record.review.decision, record.review.decided_by, record.review.decided_at


def test_every_truncation_stage_keeps_who_approved_the_call_and_when(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    call_id = _approved_call(session_factory, "probe-trunc-1")
    (approved,) = [e for e in events_of(session_factory, call_id) if e.type == "call.approved"]
    record = CallRecordV1.model_validate(approved.payload["data"])
    decision = _review_of(record)
    assert decision[0] == "approved" and decision[1] == "rita" and decision[2] is not None
    assert record.action_items and record.reason is not None and record.summary.note
    full = json_size(record.model_dump(mode="json"))
    seen_stages: set[tuple[bool, bool, bool, bool]] = set()
    for limit in range(200, full + 1, 50):
        cut = bounded(record, limit)
        assert cut.truncated
        assert _review_of(cut) == decision, limit  # in every stage, down to the last
        assert (cut.tenant, cut.call_id, cut.external_id, cut.state) == (record.tenant, call_id, "probe-trunc-1",
                                                                          "approved")
        stage = (any(ev.quote for s in cut.action_items for ev in s.evidence), bool(cut.action_items),
                 cut.reason is not None, bool(cut.review.decisions))
        seen_stages.add(stage)
    # Stage 3 drops the items and the decisions list but keeps the note, reason and outcome; stage 4 keeps
    # the identity, state, extraction and the decision.
    stage_three = bounded(record, _stage_three_size(record))
    assert not stage_three.action_items and stage_three.reason is not None and stage_three.summary.note
    assert stage_three.review.decisions == [] and _review_of(stage_three) == decision
    last = bounded(record, 1)
    assert last.reason is None and last.summary.note == "" and not last.action_items
    assert last.extraction == record.extraction and _review_of(last) == decision
    assert (False, False, False, False) in seen_stages and (False, False, True, False) in seen_stages


def _stage_three_size(record: CallRecordV1) -> int:
    """The size of the record with the third stage's cuts, which `bounded` then returns as is."""
    cut = record.model_copy(deep=True)
    cut.truncated = True
    for statement in [*cut.summary.statements, *cut.action_items, *(s for s in (cut.reason, cut.outcome) if s)]:
        statement.evidence = []
    cut.summary.statements, cut.action_items, cut.review.decisions = [], [], []
    return json_size(cut.model_dump(mode="json"))


def test_a_call_approved_event_over_the_size_limit_says_who_approved(
    session_factory: sessionmaker[Session], allow_private: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTCALL_WEBHOOK_MAX_PAYLOAD_BYTES", "700")
    get_settings.cache_clear()
    call_id = _approved_call(session_factory, "probe-trunc-2")
    (approved,) = [e for e in events_of(session_factory, call_id) if e.type == "call.approved"]
    data = approved.payload["data"]
    assert data["truncated"] is True and data["state"] == "approved"
    assert data["review"]["decision"] == "approved" and data["review"]["decided_by"] == "rita"
    assert data["review"]["decided_at"] is not None


def test_a_long_decisions_list_goes_before_the_decision() -> None:
    at = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
    record = CallRecordV1(tenant="acme", call_id="c" * 32, external_id="x", agent_id="A-7", team=None,
                          started_at=at, state="approved")
    record.review.decision, record.review.decided_by, record.review.decided_at = "approved", "rita", at
    record.review.decisions = [ReviewDecisionV1(action="claim_approved", actor="rita", at=at, claim_id=n)
                               for n in range(500)]
    cut = bounded(record, 2000)
    assert cut.truncated and cut.review.decisions == [] and _review_of(cut) == ("approved", "rita", at)


# --- 3. replaying an unknown or another tenant's event id is refused ---------------------------------------


def test_replaying_an_unknown_or_foreign_event_id_is_not_found(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    register(session_factory, "http://127.0.0.1:9/acme")
    register(session_factory, "http://127.0.0.1:9/globex", tenant="globex")
    processed_call(session_factory, "probe-replay-acme")
    globex_call = processed_call(session_factory, "probe-replay-globex", tenant="globex")
    (globex_event,) = events_of(session_factory, globex_call)
    with unit_of_work(session_factory) as session:
        acme = _tenant_id(session)
    for event_id in ("msg_doesnotexist", globex_event.event_id):
        with pytest.raises(NotFoundError, match="not found"), unit_of_work(session_factory) as session:
            replay_deliveries(session, get_settings(), acme, event_id=event_id)
    with unit_of_work(session_factory) as session:  # globex replays its own
        replayed = replay_deliveries(session, get_settings(), _tenant_id(session, "globex"),
                                     event_id=globex_event.event_id)
        assert len(replayed) == 1


def test_an_event_with_nothing_to_replay_says_why(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    quiet = processed_call(session_factory, "probe-replay-quiet")  # no endpoint yet: no delivery
    endpoint_id, _ = register(session_factory, "http://127.0.0.1:9/crm")
    sent = processed_call(session_factory, "probe-replay-sent")
    (quiet_event,), (sent_event,) = events_of(session_factory, quiet), events_of(session_factory, sent)
    with pytest.raises(WebhookInputError, match="no delivery"), unit_of_work(session_factory) as session:
        replay_deliveries(session, get_settings(), _tenant_id(session), event_id=quiet_event.event_id)
    # Pending (or succeeded) deliveries of an event are replayed, as asked: a 200 naming them.
    with unit_of_work(session_factory) as session:
        replayed = replay_deliveries(session, get_settings(), _tenant_id(session), event_id=sent_event.event_id)
        assert session.get(WebhookDelivery, replayed[0]).status is DeliveryStatus.pending
    with unit_of_work(session_factory) as session:
        disable_endpoint(session, get_endpoint(session, _tenant_id(session), endpoint_id), "probe")
    with pytest.raises(WebhookInputError, match=f"disabled endpoint.*{endpoint_id}.*enable"), \
            unit_of_work(session_factory) as session:
        replay_deliveries(session, get_settings(), _tenant_id(session), event_id=sent_event.event_id)


def test_the_api_answers_404_for_an_unknown_or_foreign_event(
    api: TestClient, session_factory: sessionmaker[Session]
) -> None:
    _, admin = make_principal(session_factory, "ada", UserRole.admin)
    register(session_factory, "http://127.0.0.1:9/globex", tenant="globex")
    (globex_event,) = events_of(session_factory, processed_call(session_factory, "probe-api-g", tenant="globex"))
    for event_id in ("msg_doesnotexist", globex_event.event_id):
        answer = api.post("/api/webhooks/deliveries/replay", json={"event_id": event_id}, headers=bearer(admin))
        assert answer.status_code == 404, answer.text
    register(session_factory, "http://127.0.0.1:9/acme")
    (own,) = events_of(session_factory, processed_call(session_factory, "probe-api-a"))
    answer = api.post("/api/webhooks/deliveries/replay", json={"event_id": own.event_id}, headers=bearer(admin))
    assert answer.status_code == 200 and len(answer.json()["replayed"]) == 1


def test_the_cli_refuses_an_unknown_event_id(session_factory: sessionmaker[Session], cli_database: str) -> None:
    register(session_factory, "http://127.0.0.1:9/crm")
    (event,) = events_of(session_factory, processed_call(session_factory, "probe-cli-replay"))
    unknown = runner.invoke(webhooks_app, ["replay", "--event", "msg_doesnotexist", "--tenant", TENANT])
    assert unknown.exit_code != 0
    assert "msg_doesnotexist" in unknown.output and "not found" in unknown.output
    assert "replaying 0" not in unknown.output
    known = runner.invoke(webhooks_app, ["replay", "--event", event.event_id, "--tenant", TENANT])
    assert known.exit_code == 0 and "replaying 1 deliveries" in known.output, known.output


# --- 4. registering an active endpoint's URL again warns ---------------------------------------------------


def test_registering_an_active_endpoints_url_again_warns_with_the_way_back(
    session_factory: sessionmaker[Session], allow_private: Settings
) -> None:
    first, _ = register(session_factory, "http://127.0.0.1:9/crm")
    register(session_factory, "http://127.0.0.1:9/crm", tenant="globex")  # another tenant's: not a duplicate
    with unit_of_work(session_factory) as session:
        other = add_endpoint(session, get_settings(), tenant_id=_tenant_id(session), url="http://127.0.0.1:9/other")
        assert other.warnings == ()
        # The same receiver written differently is still the same receiver.
        again = add_endpoint(session, get_settings(), tenant_id=_tenant_id(session), url="HTTP://127.0.0.1:9/crm")
        (warning,) = again.warnings
        assert f"active endpoint(s) {first}" in warning
        assert f"rotate-secret {first}" in warning and f"disable {again.endpoint.id}" in warning
        disable_endpoint(session, again.endpoint, "probe")
        disable_endpoint(session, get_endpoint(session, _tenant_id(session), first), "probe")
        # No active endpoint at that URL any more: nothing to warn about.
        assert add_endpoint(session, get_settings(), tenant_id=_tenant_id(session),
                            url="http://127.0.0.1:9/crm").warnings == ()


def test_the_cli_warns_about_a_second_endpoint_at_the_same_url(
    session_factory: sessionmaker[Session], cli_database: str
) -> None:
    with unit_of_work(session_factory) as session:
        get_or_create_tenant(session, TENANT)
    first = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", TENANT, "--json"])
    assert first.exit_code == 0, first.output
    first_id = json.loads(first.output[first.output.index("{"):])["id"]
    second = runner.invoke(webhooks_app, ["add", "http://127.0.0.1:9/crm", "--tenant", TENANT])
    assert second.exit_code == 0, second.output
    said = " ".join(second.output.split())
    assert f"active endpoint(s) {first_id}" in said and f"rotate-secret {first_id}" in said
