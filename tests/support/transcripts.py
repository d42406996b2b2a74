"""Small transcripts built in code, for tests that need a call but not a vendor format."""

from __future__ import annotations

from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance

CARD_CALL_LINES: list[tuple[Role, str]] = [
    (Role.agent, "Thank you for calling Northwind Bank, this is Dana. How can I help you today?"),
    (Role.customer, "Hi, I lost my debit card yesterday and I need a replacement."),
    (Role.agent, "I'm sorry to hear that. Can you confirm your date of birth for verification?"),
    (Role.customer, "Sure, it's March 4th, 1985."),
    (Role.agent, "Thank you. I have blocked the lost card so nobody can use it."),
    (Role.agent, "I will send you a new debit card within 5 business days."),
    (Role.customer, "Great. Do I need to do anything else?"),
    (Role.agent, "Please call us back if you see any transactions you don't recognize."),
    (Role.customer, "Okay, I will check my statement tonight."),
    (Role.agent, "You're all set. Is there anything else I can help with?"),
    (Role.customer, "No, that's all, thanks."),
]


def make_transcript(
    lines: list[tuple[Role, str]] | None = None, *, external_id: str | None = "card-001", agent_id: str = "A-7"
) -> Transcript:
    lines = lines or CARD_CALL_LINES
    return Transcript(
        metadata=CallMetadata(external_id=external_id, agent_id=agent_id, language="en"),
        utterances=[
            Utterance(
                index=i, speaker=role.value.title(), role=role, start=float(i * 4), end=float(i * 4 + 3), text=text
            )
            for i, (role, text) in enumerate(lines)
        ],
        source_format="native",
    )
