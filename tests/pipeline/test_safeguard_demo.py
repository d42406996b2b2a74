"""The demo's safeguard call: the real openai provider, a local scripted server, an invented amount."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import unit_of_work
from app.llm.prompt import PromptTemplate
from app.models import Call, CallState, Claim
from app.pipeline.note import call_case_note
from app.pipeline.safeguard_demo import run_safeguard_call


def test_the_invented_amount_is_flagged_and_the_rest_verified(
    session_factory: sessionmaker[Session], samples_dir: Path
) -> None:
    settings = get_settings()
    prompt = PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
    outcome = run_safeguard_call(session_factory, settings, prompt, samples_dir / "bank_lost_card.json", "default")
    assert outcome.state is CallState.needs_attention
    assert outcome.ungrounded == 1
    with unit_of_work(session_factory) as session:
        claims = session.scalars(select(Claim).where(Claim.run_id == outcome.run_id)).all()
    flagged = [c for c in claims if c.grounding_status == "ungrounded"]
    assert [c.text for c in flagged] == ["The customer was charged a $25 fee for the replacement card."]
    assert flagged[0].grounding_reason == "unsupported_number"
    # Everything else the scripted model said is verified: reason, outcome, a finding, two action items.
    assert sorted(c.kind for c in claims if c.grounding_status == "grounded") == [
        "action_item", "action_item", "outcome", "reason", "summary"]
    # The derived case note states only what is verified: the invented fee is not in it.
    with unit_of_work(session_factory) as session:
        call = session.get(Call, outcome.call_id)
        assert call is not None
        note = call_case_note(session, call)
    assert note.startswith("The customer lost their debit card.")
    assert "$25" not in note and "fee" not in note
    # Run twice (a second `make demo` on the same database): the stored result stands, nothing is duplicated.
    again = run_safeguard_call(session_factory, settings, prompt, samples_dir / "bank_lost_card.json", "default")
    assert again.call_id == outcome.call_id and again.skipped
