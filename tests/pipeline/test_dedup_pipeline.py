"""The restatement rule runs inside process_call for the `openai` provider too (local fake server)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, Settings
from app.db.session import unit_of_work
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.models import CallState, Claim
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from tests.pipeline.test_openai_pipeline import GOOD_ANSWER
from tests.support.fake_openai import (
    ANSWER_TIMEOUT,
    DEFAULT_MODEL,
    FakeOpenAIServer,
    extraction_reply,
    running_fake_openai,
)
from tests.support.transcripts import make_transcript


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with running_fake_openai(monkeypatch) as server:
        yield server


def test_restatements_are_not_stored(session_factory: sessionmaker[Session], fake_server: FakeOpenAIServer) -> None:
    answer: dict[str, Any] = copy.deepcopy(GOOD_ANSWER)
    # The model repeats its outcome and its action item in the summary.
    answer["summary"].append(copy.deepcopy(answer["outcome"]))
    answer["summary"].append({k: v for k, v in answer["action_items"][0].items() if k in ("text", "evidence")})
    fake_server.enqueue(extraction_reply(answer))
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, make_transcript(), tenant="acme", external_id="card-dup").call_id
    provider = OpenAIProvider(Settings(openai_model=DEFAULT_MODEL, openai_max_attempts=1,
                                       openai_timeout=ANSWER_TIMEOUT))
    outcome = process_call(session_factory, call_id, provider, PromptTemplate.load(PROJECT_ROOT / "prompts",
                                                                                   "extract-v1"))
    assert outcome.state is CallState.ready_for_review
    with unit_of_work(session_factory) as session:
        claims = session.scalars(select(Claim).where(Claim.call_id == call_id).order_by(Claim.position)).all()
        stored = [(c.kind, c.text) for c in claims]
    assert sorted(stored) == [
        ("action_item", "Send a new debit card within 5 business days."),
        ("outcome", "The lost card was blocked."),
        ("reason", "Lost debit card."),
        ("summary", "Customer confirmed their date of birth."),
        ("summary", "Customer lost their debit card and asked for a replacement."),
    ]
