"""POSTCALL_STORE_REDACTED: only the redacted transcript is stored; extraction, verification and
review work on it unchanged."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import CallState, Claim, Evidence
from app.models import Utterance as UtteranceRow
from app.pipeline.run import process_call
from app.pipeline.store import StoreStatus, store_transcript
from app.schemas.transcript import Role
from tests.support.transcripts import make_transcript

LINES = [
    (Role.agent, "Thank you for calling, how can I help?"),
    (Role.customer, "I was charged a $30 late fee on my card 4111 1111 1111 1111 although I paid on time."),
    (Role.agent, "Can I have your social to verify?"),
    (Role.customer, "Sure, it's 123-45-6789, and my email is jane.roe@example.com."),
    (Role.agent, "Thanks. I will refund the $30 late fee today and email you a confirmation."),
]


def _store(factory: sessionmaker[Session]) -> tuple[str, StoreStatus]:
    with unit_of_work(factory) as session:
        stored = store_transcript(session, make_transcript(LINES), tenant="acme", external_id="r1", redact=True)
        return stored.call_id, stored.status


def test_only_the_redacted_transcript_is_stored_and_processing_works_on_it(
    session_factory: sessionmaker[Session],
) -> None:
    call_id, status = _store(session_factory)
    assert status is StoreStatus.created
    assert _store(session_factory)[1] is StoreStatus.unchanged  # the same call again is recognised

    settings = get_settings()
    outcome = process_call(
        session_factory,
        call_id,
        HeuristicProvider(),
        PromptTemplate.load(settings.prompts_dir, settings.prompt_version),
    )

    assert outcome.state in {CallState.ready_for_review, CallState.needs_attention}
    assert outcome.claims > 0
    with session_factory() as session:
        texts = {u.index: u.text for u in session.scalars(select(UtteranceRow).where(UtteranceRow.call_id == call_id))}
        claims = session.scalars(select(Claim).where(Claim.call_id == call_id)).all()
        evidence = session.scalars(select(Evidence).join(Claim).where(Claim.call_id == call_id)).all()
    assert texts[1] == "I was charged a $30 late fee on my card [CARD_1] although I paid on time."
    assert texts[3] == "Sure, it's [SSN_1], and my email is [EMAIL_1]."
    stored_everything = " ".join([*texts.values(), *(c.text for c in claims), *(e.quote for e in evidence)])
    for secret in ("4111", "123-45-6789", "jane.roe"):
        assert secret not in stored_everything
    grounded = [e for e in evidence if e.char_start is not None and e.utterance_index is not None]
    assert grounded
    for ev in grounded:
        assert ev.char_end is not None
        assert texts[ev.utterance_index][ev.char_start : ev.char_end]  # offsets slice the stored text
        if ev.status == "exact":
            assert texts[ev.utterance_index][ev.char_start : ev.char_end] == ev.quote
    assert any(c.kind == "action_item" and c.grounding_status == "grounded" for c in claims)
