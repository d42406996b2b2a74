"""The demo's safeguard call: the real openai provider, a local scripted server, an invented amount."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import unit_of_work
from app.llm.prompt import PromptTemplate
from app.models import CallState, Claim
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
    assert [c.text for c in flagged] == ["The agent offered a $250 goodwill credit for the trouble."]
    assert flagged[0].grounding_reason == "unsupported_number"
    assert {c.kind for c in claims if c.grounding_status == "grounded"} == {"reason", "outcome"}
    # Run twice (a second `make demo` on the same database): the stored result stands, nothing is duplicated.
    again = run_safeguard_call(session_factory, settings, prompt, samples_dir / "bank_lost_card.json", "default")
    assert again.call_id == outcome.call_id and again.skipped
