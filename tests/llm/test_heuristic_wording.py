"""The offline extractor writes like a person: third person, no "said" wrappers, facts joined, each once."""

from __future__ import annotations

from app.grounding import verify_extraction
from app.llm.heuristic import extract_heuristic
from app.pipeline.dedup import dropped_restatements
from app.schemas.transcript import Role
from tests.support.transcripts import make_transcript

LOST_CARD = [
    (Role.agent, "Thank you for calling Northfield Bank, how can I help you today?"),
    (Role.customer, "Hi, I'm calling because I lost my debit card yesterday."),
    (Role.agent, "I'm looking at the account now and I don't see anything unusual after that."),
    (Role.agent, "I've blocked the card, so nobody can use it from now on."),
    (Role.customer, "Okay, thank you."),
    (Role.agent, "A courier will deliver the new card within 5 business days."),
    (Role.customer, "Great."),
    (Role.agent, "Is there anything else I can help you with?"),
    (Role.customer, "No, that's all."),
]


def test_statements_are_third_person_joined_and_unquoted() -> None:
    transcript = make_transcript(LOST_CARD)
    extraction = extract_heuristic(transcript)
    assert extraction.reason is not None
    assert extraction.reason.text == "The customer called because they lost their debit card yesterday."
    texts = [s.text for s in extraction.summary]
    assert texts[0] == (
        "The customer called because they lost their debit card yesterday; the agent is looking at the account "
        "now and doesn't see anything unusual after that."
    )
    for text in [*texts, extraction.reason.text, *(i.text for i in extraction.action_items)]:
        assert '"' not in text and " said " not in text
    # The outcome says who acts next instead of repeating the courier's item.
    assert extraction.outcome is not None
    assert extraction.outcome.text == "Pending follow-up by a courier"
    assert [i.text for i in extraction.action_items] == [
        "A courier will deliver the new card within 5 business days."
    ]
    # Each summary statement joins facts from two or more utterances; none repeats a field on its own.
    assert all(len({e.utterance for e in s.evidence}) >= 2 for s in extraction.summary)
    assert dropped_restatements(extraction) == []
    # And all of it is grounded: the rewriting never drops or adds a number or a negation.
    assert verify_extraction(transcript, extraction).all_grounded
