"""The attacker's probe of cues two turns back: "Can you confirm your date of birth?" / "Sure." / "March 4th,
1985." A question's cue reaches the answer over one turn that only acknowledges, never over a turn that says
something, nor over two turns."""

from __future__ import annotations

import pytest

from app.pipeline.redact import redact_transcript
from app.privacy.mask import mask_turns
from app.privacy.pii import PiiKind, acknowledgement, detect_turns, lead_in_of
from app.schemas.transcript import Transcript, Utterance


def kinds_in_last_turn(turns: list[str]) -> list[tuple[PiiKind, str]]:
    last = turns[-1]
    return [(d.kind, last[d.start : d.end]) for d in detect_turns(turns)[-1]]


@pytest.mark.parametrize(("turns", "kind", "value"), [
    (["Can you confirm your date of birth?", "Sure.", "March 4th, 1985."], PiiKind.dob, "March 4th, 1985"),
    (["What's your date of birth?", "Mm-hmm, one moment.", "It is 03/04/1985."], PiiKind.dob, "03/04/1985"),
    (["What's the account number?", "Sure.", "12345678."], PiiKind.account, "12345678"),
    (["And the account number?", "Yeah, let me check.", "It's 4400 1234 5678"], PiiKind.account, "4400 1234 5678"),
    (["What is your passport number?", "Sure, one second.", "534721988"], PiiKind.id_document, "534721988"),
    (["Could you read me your social?", "Okay.", "123 45 6789"], PiiKind.ssn, "123 45 6789"),
    (["What's the security code on the back?", "Hold on.", "It's 737"], PiiKind.cvv, "737"),
])
def test_a_questions_cue_reaches_over_one_acknowledgement(turns: list[str], kind: PiiKind, value: str) -> None:
    assert kinds_in_last_turn(turns) == [(kind, value)]


def test_the_date_of_birth_two_turns_after_the_question_is_masked_and_redacted() -> None:
    turns = ["Can you confirm your date of birth?", "Sure.", "March 4th, 1985."]
    assert mask_turns(turns)[-1] == "••••• •••, ••••."
    transcript = Transcript(utterances=[Utterance(index=i, speaker="S", text=t) for i, t in enumerate(turns)])
    redacted, _ = redact_transcript(transcript)
    assert redacted.utterances[-1].text == "[DOB_1]."


@pytest.mark.parametrize("turns", [
    # Two acknowledgements: the cue reaches no further than one.
    ["Can you confirm your date of birth?", "Sure.", "Okay.", "March 4th, 1985."],
    # A turn that says something of its own is an answer, not an acknowledgement.
    ["Can you confirm your date of birth?", "Why do you need that?", "March 4th, 1985."],
    ["Can you confirm your date of birth?", "No.", "The appointment is 04/22/2026."],
    ["What's the account number?", "I don't have it here.", "12345678."],
    # A content cue nearer than the question's still wins.
    ["What's the account number?", "Sure.", "My order number is 12345678."],
])
def test_the_cue_does_not_reach_further(turns: list[str]) -> None:
    assert [kind for kind, _ in kinds_in_last_turn(turns) if kind is not PiiKind.phone] == []


@pytest.mark.parametrize("text", ["Sure.", "Mm-hmm, go ahead.", "Okay, one moment.", "yes", "Uh-huh, got it.",
                                  "Sure thing, let me check", "OK"])
def test_acknowledgements(text: str) -> None:
    assert acknowledgement(text)


@pytest.mark.parametrize("text", ["No.", "Why?", "I don't have it", "Sure, it's 1234", "", "Yesterday.",
                                  "Okay, okay, okay, okay, okay, okay, okay, okay, okay."])
def test_what_is_no_acknowledgement(text: str) -> None:
    assert not acknowledgement(text)


def test_the_lead_in_is_the_turn_before_or_the_question_over_an_acknowledgement() -> None:
    turns = ["What's your date of birth?", "Sure.", "03/04/1985", "thanks"]
    assert lead_in_of(turns, 0) == ""
    assert lead_in_of(turns, 1) == "What's your date of birth?"
    assert lead_in_of(turns, 2) == "What's your date of birth?"
    assert lead_in_of(turns, 3) == "03/04/1985"


@pytest.mark.parametrize("later", [
    "Thanks. Your replacement card ships on March 14th, 2026.",
    "The refund will post on March 4th, 2025",
])
def test_the_asker_speaking_again_after_an_acknowledgement_is_not_answering(later: str) -> None:
    # The reach over "Okay." masked a shipping date as a date of birth: the asker went on speaking.
    turns = ["Can you confirm the date of birth on the account?", "Okay.", later]
    assert mask_turns(turns) == turns
    assert mask_turns(["Can you confirm your date of birth?", "Sure.", "Yes, sure, it's March 4th, 1985."])[2] == (
        "Yes, sure, it's ••••• •••, ••••.")
