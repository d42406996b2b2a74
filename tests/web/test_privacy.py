"""What reviewers see: card numbers, SSNs and accounts masked for every role by default, on pages,
in the API and in the analyst views; a view_pii user unmasks on request, and each time is audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.grounding import verify_extraction
from app.models import Call, CallState, Claim, Evidence, ReviewEvent, RunStatus, Tenant, User, UserRole
from app.models import Utterance as UtteranceRow
from app.pipeline.calls import get_call, set_state
from app.pipeline.persist import RunFacts, add_claims, add_run, idempotency_key
from app.pipeline.queries import call_detail
from app.pipeline.store import store_transcript
from app.privacy.reads import mask_call_detail
from app.review import edit_case_note
from app.schemas.api import ClaimOut
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement
from app.schemas.transcript import Role, Transcript, Utterance
from app.schemas.usage import Usage
from app.users import Principal, create_user, principal_of, set_view_pii
from app.web.view import EVENT_LABELS, build_call_page
from tests.support.services import migrated_pg_database, migrated_sqlite_database
from tests.web.conftest import csrf_from, sign_in
from tests.web.world import bearer, client_for

CARD, SSN = "4111 1111 1111 1111", "123-45-6789"
MASKED_CARD, MASKED_SSN = "•••• •••• •••• 1111", "•••-••-6789"
LINES = [
    (Role.agent, "Can I have the card number for the refund?"),
    (Role.customer, f"Sure, it's {CARD} and my social is {SSN}."),
    (Role.agent, "Thanks, I will refund the $30 to the card ending 1111 today."),
]
QUOTE = f"it's {CARD} and my social is {SSN}"


@dataclass
class Setup:
    factory: sessionmaker[Session]
    client: TestClient
    call_id: str
    tokens: dict[str, str]


def _seed(factory: sessionmaker[Session]) -> tuple[str, dict[str, str]]:
    extraction = Extraction(
        summary=[
            Statement(
                text=f"Customer gave card {CARD} for the refund", evidence=[EvidenceRef(utterance=1, quote=QUOTE)]
            ),
        ]
    )
    call_id = _seed_call(factory, "pii-call", extraction)
    with unit_of_work(factory) as session:
        tokens = {
            name: create_user(session, tenant="acme", name=name, role=role).token
            for name, role in (
                ("agent", UserRole.supervisor),  # sees every call of the tenant
                ("analyst", UserRole.analyst),
                ("admin", UserRole.admin),
                ("auditor", UserRole.supervisor),
            )
        }
        set_view_pii(session, "acme", "auditor", allowed=True)
        return call_id, tokens


def _seed_call(
    factory: sessionmaker[Session], external_id: str, extraction: Extraction, transcript: Transcript | None = None
) -> str:
    """A processed call of `transcript` (default: LINES) with `extraction` as its verified run."""
    transcript = transcript or Transcript(
        utterances=[Utterance(index=i, speaker=r.value, role=r, text=t) for i, (r, t) in enumerate(LINES)],
        source_format="native",
    )
    with unit_of_work(factory) as session:
        stored = store_transcript(session, transcript, tenant="acme", external_id=external_id)
        call = get_call(session, stored.call_id)
        facts = RunFacts(
            key=idempotency_key(call.id, call.transcript_hash, "extract-v1", "test", "hand"),
            provider="test",
            model="hand",
            prompt_version="extract-v1",
            transcript_hash=call.transcript_hash,
            usage=Usage(),
            queue_wait_ms=None,
            verify_ms=None,
        )
        run = add_run(session, call, facts, status=RunStatus.succeeded)
        add_claims(session, run, verify_extraction(transcript, extraction))
        set_state(call, CallState.ready_for_review)
        return stored.call_id


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    def build(url: str) -> Iterator[Setup]:
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        call_id, tokens = _seed(factory)
        with client_for(url) as client:
            yield Setup(factory, client, call_id, tokens)
        engine.dispose()

    if request.param == "sqlite":
        directory: Path = tmp_path_factory.mktemp("privacy")
        yield from build(migrated_sqlite_database(str(directory / "privacy.db")))
        return
    with migrated_pg_database() as url:
        yield from build(url)


def unmask_events(setup: Setup) -> list[ReviewEvent]:
    with setup.factory() as session:
        return list(session.scalars(select(ReviewEvent).where(ReviewEvent.action == "pii_unmasked")).all())


@pytest.mark.parametrize("user", ["agent", "analyst", "admin", "auditor"])
def test_the_api_masks_for_every_role_by_default(setup: Setup, user: str) -> None:
    response = setup.client.get(f"/api/calls/{setup.call_id}", headers=bearer(setup.tokens[user]))

    assert response.status_code == 200
    body = response.text
    assert CARD not in body and SSN not in body and "4111" not in body
    detail = response.json()
    utterance = detail["utterances"][1]["text"]
    assert utterance == f"Sure, it's {MASKED_CARD} and my social is {MASKED_SSN}."
    assert len(utterance) == len(LINES[1][1])
    (claim,) = detail["claims"]
    assert claim["text"] == f"Customer gave card {MASKED_CARD} for the refund"
    (evidence,) = claim["evidence"]
    # The offsets still slice the (masked) utterance to the (masked) quote: highlighting works.
    assert utterance[evidence["char_start"] : evidence["char_end"]] == evidence["quote"]
    assert evidence["quote"] == f"it's {MASKED_CARD} and my social is {MASKED_SSN}"


def test_unmasking_needs_view_pii_and_is_audited(setup: Setup) -> None:
    before = len(unmask_events(setup))
    refused = setup.client.get(f"/api/calls/{setup.call_id}?unmask=true", headers=bearer(setup.tokens["admin"]))
    assert refused.status_code == 403
    assert len(unmask_events(setup)) == before  # a refusal records nothing

    allowed = setup.client.get(f"/api/calls/{setup.call_id}?unmask=true", headers=bearer(setup.tokens["auditor"]))

    assert allowed.status_code == 200
    assert allowed.json()["utterances"][1]["text"] == LINES[1][1]
    events = unmask_events(setup)
    assert len(events) == before + 1
    assert events[-1].actor_name == "auditor"
    assert events[-1].call_id == setup.call_id
    assert events[-1].after == {"where": "api"}  # content-free
    trail = setup.client.get(f"/api/calls/{setup.call_id}/events", headers=bearer(setup.tokens["admin"])).json()
    assert "pii_unmasked" in [event["action"] for event in trail]


def test_the_call_page_masks_and_unmasks_on_request(setup: Setup) -> None:
    with TestClient(setup.client.app) as agent, TestClient(setup.client.app) as auditor:
        sign_in(agent, setup.tokens["agent"])
        sign_in(auditor, setup.tokens["auditor"])

        page = agent.get(f"/calls/{setup.call_id}")
        assert page.status_code == 200
        assert MASKED_CARD in page.text and CARD not in page.text and SSN not in page.text
        assert "Show personal data" not in page.text
        assert unmask(agent, setup.call_id).status_code == 403

        before = len(unmask_events(setup))
        masked_page = auditor.get(f"/calls/{setup.call_id}")
        assert CARD not in masked_page.text and "Show personal data" in masked_page.text
        assert len(unmask_events(setup)) == before
        shown = unmask(auditor, setup.call_id)
        assert shown.status_code == 200
        assert CARD in shown.text and SSN in shown.text
        assert len(unmask_events(setup)) == before + 1
        assert unmask_events(setup)[-1].after == {"where": "page"}
        # Only with the session's CSRF token: a link or a form on another site neither shows nor audits.
        assert auditor.post(f"/calls/{setup.call_id}/unmask", data={"csrf_token": "forged"}).status_code == 403
        assert CARD not in auditor.get(f"/calls/{setup.call_id}?pii=show").text  # the old link unmasks nothing
        assert len(unmask_events(setup)) == before + 1


def unmask(client: TestClient, call_id: str) -> Any:
    """The call page's "Show personal data" form, posted with the session's CSRF token."""
    token = csrf_from(client.get(f"/calls/{call_id}").text)
    return client.post(f"/calls/{call_id}/unmask", data={"csrf_token": token})


def test_highlighting_covers_the_masked_text(setup: Setup) -> None:
    with setup.factory() as session:
        principal = _principal(session, "agent")
        page = build_call_page(session, principal, setup.call_id)

    utterance = page.utterances[1]
    assert (
        "".join(segment.text for segment in utterance.segments)
        == f"Sure, it's {MASKED_CARD} and my social is {MASKED_SSN}."
    )
    cited = "".join(segment.text for segment in utterance.segments if segment.claim_ids)
    assert cited == f"it's {MASKED_CARD} and my social is {MASKED_SSN}"


def test_the_analyst_views_show_masked_text(setup: Setup) -> None:
    with setup.factory() as session:
        claim_texts = session.execute(text("SELECT text FROM analytics_claims")).scalars().all()
        quotes = session.execute(text("SELECT quote FROM analytics_evidence")).scalars().all()
        stored = session.scalars(select(Evidence.quote)).all()

    assert f"Customer gave card {MASKED_CARD} for the refund" in claim_texts
    assert f"it's {MASKED_CARD} and my social is {MASKED_SSN}" in quotes
    assert not any(CARD in value or SSN in value for value in [*claim_texts, *quotes])
    assert QUOTE in stored  # the table itself keeps the original for verification and view_pii users


def test_a_selection_made_on_the_masked_transcript_is_stored_as_said(setup: Setup) -> None:
    response = setup.client.post(
        f"/api/calls/{setup.call_id}/claims",
        headers=bearer(setup.tokens["agent"]),
        json={
            "kind": "summary",
            "text": "The customer gave an SSN",
            "evidence": [{"utterance": 1, "quote": f"my social is {MASKED_SSN}"}],
        },
    )

    assert response.status_code == 201, response.text
    assert response.json()["evidence"][0]["quote"] == f"my social is {MASKED_SSN}"  # the response is masked too
    with setup.factory() as session:
        quotes = session.scalars(select(Evidence.quote).where(Evidence.claim_id == response.json()["id"])).all()
    assert quotes == [f"my social is {SSN}"]


def _set_stored_masks(setup: Setup, call_id: str, value: str | None) -> None:
    """Overwrite the call's stored masked copies (claim texts, evidence quotes) with `value`."""
    with unit_of_work(setup.factory) as session:
        claim_ids = select(Claim.id).where(Claim.call_id == call_id)
        session.execute(update(Claim).where(Claim.call_id == call_id).values(text_masked=value))
        session.execute(update(Evidence).where(Evidence.claim_id.in_(claim_ids)).values(quote_masked=value))


def test_reads_take_the_stored_masked_copies_and_show_what_deriving_them_showed(setup: Setup) -> None:
    """Claim texts and the quotes that are not a slice of their utterance are masked on their own: the
    copies stored with the rows are what the API and the page show, identical to masking on every read."""
    call_id = _seed_call(setup.factory, "pii-stored-masks", Extraction(summary=[
        Statement(text=f"Customer gave card {CARD} for the refund", evidence=[EvidenceRef(utterance=1, quote=QUOTE)]),
        # Cited in other words (case): grounded at the utterance's span, but not equal to its slice.
        Statement(text=f"Customer's social is {SSN}", evidence=[EvidenceRef(utterance=1, quote=QUOTE.upper())]),
        # Not in the transcript: no span at all.
        Statement(text="Customer also gave card 5500 0000 0000 0004",
                  evidence=[EvidenceRef(utterance=1, quote="my other card is 5500 0000 0000 0004")]),
    ]))
    headers = bearer(setup.tokens["agent"])

    def reads() -> tuple[dict[str, Any], list[ClaimOut]]:
        api = setup.client.get(f"/api/calls/{call_id}", headers=headers)
        assert api.status_code == 200
        with setup.factory() as session:
            page = build_call_page(session, _principal(session, "agent"), call_id)
        return api.json(), [item.claim for section in page.sections for item in section.items]

    with setup.factory() as session:
        # What every read showed before the copies were read: each text masked by the detector.
        derived = mask_call_detail(call_detail(session, get_call(session, call_id))).model_dump(mode="json")
        utterance = LINES[1][1]
        evidence = session.scalars(select(Evidence).join(Claim).where(Claim.call_id == call_id)).all()
    assert any(ev.char_start is not None and utterance[ev.char_start : ev.char_end] != ev.quote for ev in evidence)
    assert any(ev.char_start is None for ev in evidence)

    api, page_claims = reads()
    assert api == derived
    assert not any(value in json.dumps(api) for value in (CARD, SSN, "5500 0000"))
    assert sorted(page_claims, key=lambda c: c.id) == [ClaimOut.model_validate(c) for c in derived["claims"]]

    # Rows without copies (the columns are nullable) are masked on read, the same way.
    _set_stored_masks(setup, call_id, None)
    assert reads() == (api, page_claims)

    # The copies are what is read: a (made-up) stored copy shows where a text is masked on its own.
    _set_stored_masks(setup, call_id, "stored copy")
    api_copy, page_copy = reads()
    assert {c["text"] for c in api_copy["claims"]} == {"stored copy"}
    quotes = [ev["quote"] for c in api_copy["claims"] for ev in c["evidence"]]
    assert quotes.count("stored copy") == 2  # the two quotes that are not their utterance's slice
    assert [c.text for c in page_copy] == ["stored copy"] * 3


def _principal(session: Session, name: str) -> Principal:
    user, slug = session.execute(
        select(User, Tenant.slug).join(Tenant, Tenant.id == User.tenant_id).where(User.name == name)
    ).one()
    return principal_of(user, slug)


def test_saving_the_masked_text_unchanged_keeps_the_stored_text(setup: Setup) -> None:
    headers = bearer(setup.tokens["agent"])
    claim = setup.client.get(f"/api/calls/{setup.call_id}", headers=headers).json()["claims"][0]
    assert MASKED_CARD in claim["text"]

    response = setup.client.post(
        f"/api/claims/{claim['id']}/review", headers=headers, json={"action": "edit", "text": claim["text"]}
    )

    assert response.status_code == 200, response.text
    with setup.factory() as session:
        stored, status = session.execute(
            select(Claim.text, Claim.grounding_status).where(Claim.id == claim["id"])).one()
    assert stored == f"Customer gave card {CARD} for the refund"  # not overwritten by the bullets
    # Checked again as the editor sees it, masked text on masked evidence: still verified.
    assert status == response.json()["status"] == "grounded"


def test_digits_typed_where_the_editor_sees_them_masked_are_never_verified(setup: Setup) -> None:
    # "4999 0566 …" typed over a masked card whose real digits differ was stored as verified: readers with
    # view_pii then saw the invented number as fact. The right digits get the same verdict: no guess is told.
    verdicts = []
    for card in ("4999 1111 1111 1111", CARD):
        call_id = _seed_call(setup.factory, f"typed-{card[:4]}", Extraction(summary=[Statement(
            text=f"Customer gave card {CARD} for the refund", evidence=[EvidenceRef(utterance=1, quote=QUOTE)])]))
        claim = setup.client.get(f"/api/calls/{call_id}", headers=bearer(setup.tokens["agent"])).json()["claims"][0]
        edited = setup.client.post(f"/api/claims/{claim['id']}/review", headers=bearer(setup.tokens["agent"]),
                                   json={"action": "edit", "text": f"Customer gave card {card} for a refund"})
        assert edited.status_code == 200, edited.text
        verdicts.append((edited.json()["status"], edited.json()["reason"]))
    assert verdicts == [("ungrounded", "unsupported_number")] * 2
    # Nor by an edit that leaves the text as shown (the masked text sent back, an owner or due change):
    # checked on the masked text, the typed digits were hidden and the item came back "verified".
    shown = next(c for c in setup.client.get(f"/api/calls/{call_id}", headers=bearer(setup.tokens["agent"]))
                 .json()["claims"] if c["id"] == claim["id"])
    assert "•" in shown["text"]
    resent = setup.client.post(f"/api/claims/{claim['id']}/review", headers=bearer(setup.tokens["agent"]),
                               json={"action": "edit", "text": shown["text"]})
    assert resent.status_code == 200, resent.text
    assert (resent.json()["status"], resent.json()["reason"]) == ("ungrounded", "unsupported_number")
    # A reviewer who may see the digits is checked on them, as before.
    call_id = _seed_call(setup.factory, "typed-auditor", Extraction(summary=[Statement(
        text=f"Customer gave card {CARD} for the refund", evidence=[EvidenceRef(utterance=1, quote=QUOTE)])]))
    claim = setup.client.get(f"/api/calls/{call_id}", headers=bearer(setup.tokens["auditor"])).json()["claims"][0]
    edited = setup.client.post(f"/api/claims/{claim['id']}/review", headers=bearer(setup.tokens["auditor"]),
                               json={"action": "edit", "text": f"Customer gave card {CARD} for a refund"})
    assert edited.json()["status"] == "grounded"


def test_store_redacted_keeps_only_the_redacted_transcript_of_a_handed_over_call(setup: Setup) -> None:
    url = str(setup.factory.kw["bind"].url.render_as_string(hide_password=False))
    handed: list[str] = []
    transcript = (
        "[00:01] Agent: Can I have the card number?\n"
        f"[00:05] Customer: Sure, it's {CARD} and my social is {SSN}.\n"
        "[00:11] Agent: I will refund the $30 fee today.\n"
    ).encode()

    with client_for(url, enqueue=lambda ids: handed.extend(ids) or len(ids), store_redacted=True) as client:
        response = client.post(
            "/api/calls",
            params={"external_id": "redacted-at-rest"},
            content=transcript,
            headers=bearer(setup.tokens["admin"]),
        )

    assert response.status_code in {200, 201, 202}, response.text
    call_id = response.json()["call_id"]
    assert handed == [call_id]
    with setup.factory() as session:
        texts = session.scalars(
            select(UtteranceRow.text).where(UtteranceRow.call_id == call_id).order_by(UtteranceRow.index)
        ).all()
    assert texts[1] == "Sure, it's [CARD_1] and my social is [SSN_1]."
    assert not any(CARD in t or SSN in t or "4111" in t for t in texts)


def test_the_permission_shows_in_me_and_in_the_user_list(setup: Setup) -> None:
    assert setup.client.get("/api/me", headers=bearer(setup.tokens["auditor"])).json()["can_view_pii"] is True
    assert setup.client.get("/api/me", headers=bearer(setup.tokens["agent"])).json()["can_view_pii"] is False
    users = setup.client.get("/api/users", headers=bearer(setup.tokens["admin"])).json()
    assert {u["name"]: u["view_pii"] for u in users} == {
        "agent": False,
        "analyst": False,
        "admin": False,
        "auditor": True,
    }


def test_the_dashboards_reasons_are_masked(setup: Setup) -> None:
    extraction = Extraction(reason=Statement(text=f"Customer's card {CARD} was charged twice",
                                             evidence=[EvidenceRef(utterance=1, quote=QUOTE)]))
    _seed_call(setup.factory, "pii-reason", extraction)
    with TestClient(setup.client.app) as admin:
        sign_in(admin, setup.tokens["admin"])
        page = admin.get("/dashboard")
    assert page.status_code == 200
    assert f"card {MASKED_CARD} was charged twice" in page.text
    assert CARD not in page.text


def test_a_case_note_is_stored_masked_and_one_stored_before_is_shown_masked(setup: Setup) -> None:
    note = f"Refund to card {CARD}, social {SSN}."
    masked_note = f"Refund to card {MASKED_CARD}, social {MASKED_SSN}."
    call_id = _seed_call(setup.factory, "pii-note", Extraction(summary=[Statement(
        text="Agent asked for the card number", evidence=[EvidenceRef(utterance=0, quote=LINES[0][1])])]))
    with unit_of_work(setup.factory) as session:  # as a note written before notes were masked
        session.execute(update(Call).where(Call.id == call_id).values(case_note=note))
    with TestClient(setup.client.app) as agent, TestClient(setup.client.app) as auditor:
        sign_in(agent, setup.tokens["agent"])
        sign_in(auditor, setup.tokens["auditor"])
        assert masked_note in agent.get(f"/calls/{call_id}").text
        assert note not in agent.get(f"/calls/{call_id}").text
        assert note in unmask(auditor, call_id).text
    with unit_of_work(setup.factory) as session:
        edit_case_note(session, _principal(session, "agent"), call_id, f"New card {CARD} sent.")
    with setup.factory() as session:
        assert get_call(session, call_id).case_note == f"New card {MASKED_CARD} sent."
    trail = setup.client.get(f"/api/calls/{call_id}/events", headers=bearer(setup.tokens["admin"])).text
    assert "note_edited" in trail and MASKED_CARD in trail
    assert CARD not in trail and SSN not in trail  # the old note, in the event's `before`, is masked


def _add_item(setup: Setup, user: str, text: str, quote: str) -> Any:
    return setup.client.post(f"/api/calls/{setup.call_id}/claims", headers=bearer(setup.tokens[user]),
                             json={"kind": "summary", "text": text, "evidence": [{"utterance": 1, "quote": quote}]})


def test_adding_an_item_tells_a_reviewer_nothing_about_masked_digits(setup: Setup) -> None:
    # Without view_pii a selection is checked against the masked transcript: typing the right digits and
    # the wrong ones get the same answer, so the masked SSN cannot be guessed a group at a time.
    right = _add_item(setup, "agent", "x", "my social is 123")
    wrong = _add_item(setup, "agent", "x", "my social is 999")
    assert right.status_code == wrong.status_code == 422
    assert right.json()["detail"] == wrong.json()["detail"]
    # Nor through the item's own numbers: both claims rest on the masked span, and neither is verified by it.
    statuses = [
        _add_item(setup, "agent", f"The customer's SSN is {number}", f"my social is {MASKED_SSN}").json()["status"]
        for number in (SSN, "987-65-6789")
    ]
    assert statuses[0] == statuses[1]
    # A view_pii reviewer selects on the unmasked transcript as before.
    assert _add_item(setup, "auditor", "The customer gave their SSN", f"my social is {SSN}").status_code == 201


def test_a_due_phrase_is_stored_masked(setup: Setup) -> None:
    # The phrase reaches the analyst views and the record's due_phrase as stored: a number typed into it
    # (or written by a model) must not be the one unmasked text there.
    extraction = Extraction(action_items=[ActionItem(
        text="Agent will refund the card", owner=Owner.agent, due=f"after checking card {CARD}",
        evidence=[EvidenceRef(utterance=2, quote=LINES[2][1])])])
    call_id = _seed_call(setup.factory, "pii-due", extraction)
    headers = bearer(setup.tokens["admin"])
    (item,) = [c for c in setup.client.get(f"/api/calls/{call_id}", headers=headers).json()["claims"]
               if c["kind"] == "action_item"]
    assert item["due"] == f"after checking card {MASKED_CARD}"  # as the pipeline stored it
    edited = setup.client.post(f"/api/claims/{item['id']}/review", headers=headers,
                               json={"action": "edit", "due": f"once SSN {SSN} is confirmed"})
    assert edited.status_code == 200, edited.text
    with setup.factory() as session:
        stored = session.scalars(select(Claim.due).where(Claim.call_id == call_id, Claim.kind == "action_item")).one()
        shown = session.execute(text("SELECT due FROM analytics_claims WHERE claim_id = :id"),
                                {"id": item["id"]}).scalar_one()
    assert stored == shown == f"once SSN {MASKED_SSN} is confirmed"


def test_texts_about_the_call_are_masked_as_its_transcript_is(setup: Setup) -> None:
    # The date is a date of birth only by the turn before; the card is read in two halves. Masked on their
    # own, a note, an edited item and the audit trail kept what the transcript hides; and a speaker label
    # (with the ingest warning that quotes it) was shown as stored.
    label = f"Caller {CARD}"
    lines = [("Agent", "For security, can you confirm your date of birth?"), (label, "I want to say 03/04/1985."),
             ("Agent", "And the card number?"), (label, "5500 0000"), (label, "0000 0004.")]
    transcript = Transcript(utterances=[Utterance(index=i, speaker=speaker, role=Role.unknown, text=said)
                                        for i, (speaker, said) in enumerate(lines)],
                            source_format="native", warnings=[f"speaker label '{label}' has no role"])
    call_id = _seed_call(setup.factory, "pii-turns", Extraction(summary=[Statement(
        text="The customer gave the date of birth 03/04/1985",
        evidence=[EvidenceRef(utterance=1, quote="I want to say 03/04/1985.")])]), transcript)
    headers = bearer(setup.tokens["agent"])
    detail = setup.client.get(f"/api/calls/{call_id}", headers=headers).json()
    (claim,) = detail["claims"]
    assert claim["text"] == "The customer gave the date of birth ••/••/••••"
    assert {u["speaker"] for u in detail["utterances"][1::2]} == {f"Caller {MASKED_CARD}"}
    assert CARD not in json.dumps(detail["warnings"]) and detail["warnings"]

    edited = setup.client.post(f"/api/claims/{claim['id']}/review", headers=headers, json={
        "action": "edit", "text": "Born 03/04/1985; card 5500 0000 0000 0004 to be replaced"})
    assert edited.status_code == 200, edited.text
    with unit_of_work(setup.factory) as session:
        edit_case_note(session, _principal(session, "agent"), call_id, "DOB 03/04/1985 confirmed.")
    with setup.factory() as session:
        stored = session.scalars(select(Claim.text_masked).where(Claim.id == claim["id"])).one()
        # Typed by a reviewer without view_pii: masked by the hidden values' shape (here the card's last four
        # too: both halves are written alike), so the mask tells nothing of what was typed.
        assert stored == "Born ••/••/••••; card •••• •••• •••• •••• to be replaced"
        assert get_call(session, call_id).case_note == "DOB ••/••/•••• confirmed."
    trail = setup.client.get(f"/api/calls/{call_id}/events", headers=bearer(setup.tokens["admin"])).text
    with TestClient(setup.client.app) as browser:
        sign_in(browser, setup.tokens["agent"])
        page = browser.get(f"/calls/{call_id}").text
    for shown in (trail, page):
        assert "1985" not in shown and "5500" not in shown and CARD not in shown
    assert "Born ••/••/••••" in trail and "Born ••/••/••••" in page


def test_an_unreadable_selection_on_the_add_form_is_a_message_not_an_error(setup: Setup) -> None:
    with TestClient(setup.client.app) as browser:
        sign_in(browser, setup.tokens["agent"])
        token = csrf_from(browser.get(f"/calls/{setup.call_id}").text)
        for selection in ("[" * 100_000, '{"utterance": 1}', '[{"utterance": "x", "quote": "a"}]'):
            response = browser.post(f"/calls/{setup.call_id}/claims", data={
                "csrf_token": token, "text": "Refund", "kind": "summary", "selection": selection})
            assert response.status_code < 500, selection[:40]
            assert "could not be read" in browser.get(f"/calls/{setup.call_id}").text or \
                "could not be read" in response.text


def test_a_reviewer_without_view_pii_learns_nothing_from_how_their_text_is_masked(setup: Setup) -> None:
    # The date of birth is hidden only by the turn before's question. Masked by equality with it, an edit
    # showed "03/04/1984" as typed and "03/04/1985" as bullets: one request per guess told the date.
    lines = [("Agent", "For security, can you confirm your date of birth?"), ("Caller", "I want to say 03/04/1985."),
             ("Agent", "Thanks, I will refund the fee.")]
    transcript = Transcript(utterances=[Utterance(index=i, speaker=speaker, role=Role.unknown, text=said)
                                        for i, (speaker, said) in enumerate(lines)], source_format="native")
    refund = Statement(text="The agent will refund the fee",
                       evidence=[EvidenceRef(utterance=2, quote="I will refund the fee")])
    call_id = _seed_call(setup.factory, "pii-oracle", Extraction(summary=[refund]), transcript)
    headers = bearer(setup.tokens["agent"])
    (claim,) = setup.client.get(f"/api/calls/{call_id}", headers=headers).json()["claims"]
    answers = []
    for guess in ("03/04/1984", "03/04/1985", "04/03/1985"):
        edited = setup.client.post(f"/api/claims/{claim['id']}/review", headers=headers,
                                   json={"action": "edit", "text": f"Customer mentioned {guess} and the fee refund"})
        assert edited.status_code == 200, edited.text
        answers.append((edited.json()["text"], edited.json()["status"]))
    assert len(set(answers)) == 1 and answers[0][0] == "Customer mentioned ••/••/•••• and the fee refund"
    trail = setup.client.get(f"/api/calls/{call_id}/events", headers=headers).text
    assert "1984" not in trail and "1985" not in trail


def test_no_reader_gets_the_transcripts_content_hash_from_the_audit_trail(setup: Setup) -> None:
    # The hash of the unmasked transcript was in transcript_replaced and call_deleted events: a reader who saw
    # the masked text tried the SSN's five masked digits against it offline and had it in 0.16 s.
    lines = [(Role.customer, f"My social is {SSN}, and I moved."), (Role.agent, "Noted, thanks.")]
    first = Transcript(utterances=[Utterance(index=i, speaker=r.value, role=r, text=t)
                                   for i, (r, t) in enumerate(lines)], source_format="native")
    second = first.model_copy(update={"utterances": [*first.utterances[:1], Utterance(
        index=1, speaker="agent", role=Role.agent, text="Noted, thank you.")]})
    with unit_of_work(setup.factory) as session:
        call_id = store_transcript(session, first, tenant="acme", external_id="hash-call").call_id
    with unit_of_work(setup.factory) as session:
        store_transcript(session, second, tenant="acme", external_id="hash-call", replace=True)
    with unit_of_work(setup.factory) as session:
        call = session.get(Call, call_id)
        assert call is not None
        content_hash, tenant_id = call.transcript_hash, call.tenant_id
        # As versions before this one wrote it: the trail is append-only, so old rows keep theirs.
        session.add(ReviewEvent(tenant_id=tenant_id, call_id=call_id, actor_name="cli:ops",
                                action="transcript_replaced", before={"transcript_hash": content_hash,
                                                                       "state": "queued"},
                                after={"transcript_hash": content_hash}))
    with setup.factory() as session:
        stored = session.scalars(select(ReviewEvent).where(ReviewEvent.call_id == call_id)).all()
    assert [e.action for e in stored] == ["transcript_replaced", "transcript_replaced"]
    assert content_hash not in json.dumps([[e.before, e.after] for e in stored[:1]])  # not written any more

    answer = setup.client.get(f"/api/calls/{call_id}/events", headers=bearer(setup.tokens["agent"]))
    assert answer.status_code == 200
    assert len(answer.json()) == 2
    assert content_hash not in answer.text and "transcript_hash" not in answer.text
    with TestClient(setup.client.app) as browser:
        sign_in(browser, setup.tokens["agent"])
        page = browser.get(f"/calls/{call_id}")
    assert page.status_code == 200 and page.text.count(EVENT_LABELS.get("transcript_replaced",
                                                                         "Transcript replaced")) >= 2
    assert content_hash not in page.text


def test_a_resubmission_never_tells_a_reader_without_view_pii_which_guess_of_masked_digits_is_right(
    setup: Setup,
) -> None:
    # "unchanged" for the right SSN, 409 "different content" for a wrong one: a supervisor without view_pii
    # rebuilt the call from its masked page and had the SSN in 346 requests, nothing stored, nothing audited.
    def call_with(ssn: str) -> bytes:
        return json.dumps({"utterances": [
            {"speaker": "Agent", "text": "Can I have your social?"},
            {"speaker": "Customer", "text": f"Sure, it's {ssn}."},
        ]}).encode()

    params = {"external_id": "oracle-call"}
    first = setup.client.post("/api/calls", params=params, content=call_with("123-45-6789"),
                              headers={**bearer(setup.tokens["admin"]), "Content-Type": "application/json"})
    assert first.status_code == 202, first.text
    answers = {}
    for guess in ("123-45-6789", "987-65-6789", "555-55-6789"):
        answer = setup.client.post("/api/calls", params=params, content=call_with(guess),
                                   headers={**bearer(setup.tokens["agent"]), "Content-Type": "application/json"})
        answers[guess] = (answer.status_code, answer.json().get("status"))
    assert set(answers.values()) == {(200, "unchanged")}, answers  # the same answer, right guess or wrong
    # One who may read it unmasked is told the content differs, as before; the stored call never changed.
    auditor = setup.client.post("/api/calls", params=params, content=call_with("987-65-6789"),
                                headers={**bearer(setup.tokens["auditor"]), "Content-Type": "application/json"})
    assert auditor.status_code == 409 and "different content" in auditor.text
    masked_elsewhere = setup.client.post(
        "/api/calls", params=params, headers={**bearer(setup.tokens["agent"]), "Content-Type": "application/json"},
        content=call_with("123-45-6789").replace(b"Sure", b"Yes"))
    assert masked_elsewhere.status_code == 409  # a difference readers see is still one
    with setup.factory() as session:
        texts = session.scalars(select(UtteranceRow.text).join(Call, Call.id == UtteranceRow.call_id)
                                .where(Call.external_id == "oracle-call").order_by(UtteranceRow.index)).all()
    assert texts == ["Can I have your social?", "Sure, it's 123-45-6789."]
