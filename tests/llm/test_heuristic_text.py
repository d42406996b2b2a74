"""Text primitives and role resolution of the heuristic provider."""

from __future__ import annotations

import pytest

from app.grounding.claims import verify_extraction
from app.llm.heuristic_text import (
    clause_span,
    critical_tokens_preserved,
    find_due,
    split_sentences,
    third_person,
)
from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.schemas.transcript import Role, Transcript, Utterance


def _due(text: str) -> str | None:
    span = find_due(text)
    return None if span is None else text[span[0] : span[1]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'll send it within 5 business days.", "within 5 business days"),
        ("It takes 5-7 business days to show up.", "5-7 business days"),
        ("The refund arrives in 7 to 10 business days", "in 7 to 10 business days"),
        ("A technician will visit tomorrow between 8 and 12.", "tomorrow between 8 and 12"),
        ("Please email the photos by Friday.", "by Friday"),
        ("Submit the reading by March 3rd, please.", "by March 3rd"),
        ("We'll credit you by the end of the week.", "by the end of the week"),
        ("I'll call you back at 3 p.m. tomorrow", "at 3 p.m. tomorrow"),
        ("You'll hear from us in 24 hours.", "in 24 hours"),
        ("Our team will call you next week.", "next week"),
        ("within the next two to three weeks", "within the next two to three weeks"),
        ("I'll email you the form within the hour.", "within the hour"),
        ("I'll send the request this morning.", "this morning"),
        ("get the test done at least two days before the appointment", "at least two days before the appointment"),
        ("Please wait till 21/10/2017.", "till 21/10/2017"),
        ("activate it as soon as it arrives", "as soon as it arrives"),
        ("I'll do it by end of day", "by end of day"),
        ("We'll send you a text reminder the day before the appointment.", "the day before the appointment"),
    ],
)
def test_due_phrases_are_found_as_said(text: str, expected: str) -> None:
    assert _due(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I have 2 cats and a dog.",
        "Thread continues [2/2]",
        "My iPhone is on 11.1.2 and my watch is on 4.1.",
        "Thank you for calling, have a great day.",
        "Your balance is $128.",
    ],
)
def test_no_due_phrase_where_none_was_said(text: str) -> None:
    assert _due(text) is None


def test_sentences_keep_offsets_into_the_utterance() -> None:
    text = "@AcmeHelp Hi there. Dr. Patel sees you at 9:30 a.m. tomorrow! Is that OK? https://t.co/abc"
    sentences = split_sentences(4, text)

    assert [s.text for s in sentences] == [
        "Hi there.",
        "Dr. Patel sees you at 9:30 a.m. tomorrow!",
        "Is that OK?",
    ]
    for sentence in sentences:
        assert text[sentence.start : sentence.end] == sentence.text
        assert sentence.utterance == 4


def test_no_with_a_dot_ends_a_sentence_unless_a_number_follows() -> None:
    assert [s.text for s in split_sentences(0, "No. It was resolved.")] == ["No.", "It was resolved."]
    assert len(split_sentences(0, "Ask for No. 5 at the desk.")) == 1


def test_asr_run_on_is_split_at_stock_phrases() -> None:
    text = "a new check book has been sent to your home address is there anything else i can help you with"
    sentences = [s.text for s in split_sentences(0, text)]

    assert sentences == [
        "a new check book has been sent to your home address",
        "is there anything else i can help you with",
    ]


def test_noise_only_utterance_has_no_sentences() -> None:
    assert split_sentences(0, "[noise]") == []
    assert split_sentences(0, " <unk> ") == []


def test_clause_keeps_its_condition_and_leaves_other_promises_out() -> None:
    text = (
        "Just to recap: you'll email the photos by Friday, I'll email you the accident report form "
        "within the hour, and if the car can't be driven, an adjuster will call you within 2 business days."
    )
    (sentence,) = split_sentences(0, text)

    mine = text.index("I'll email")
    start, end = clause_span(sentence, mine)
    assert text[start:end] == "I'll email you the accident report form within the hour"

    adjuster = text.index("an adjuster")
    start, end = clause_span(sentence, adjuster)
    assert text[start:end] == "if the car can't be driven, an adjuster will call you within 2 business days."


@pytest.mark.parametrize(
    ("text", "speaker", "expected"),
    [
        (
            "I lost my card and you charged me twice",
            "customer",
            "they lost their card and the agent charged them twice",
        ),
        ("we've been billed for our old plan", "customer", "they've been billed for their old plan"),
        ("I'll send you a new card", "agent", "the agent will send the customer a new card"),
        ("I send your card today", "agent", "the agent sends the customer's card today"),
        ("we have cancelled your order", "agent", "the company has cancelled the customer's order"),
        ("you are all set", "agent", "the customer is all set"),
        ("i need to check my balance", "customer", "they need to check their balance"),
    ],
)
def test_third_person_rewriting(text: str, speaker: str, expected: str) -> None:
    assert third_person(text, speaker) == expected


def test_critical_tokens_cover_numbers_amounts_and_negations() -> None:
    assert not critical_tokens_preserved("They refund $45 in two days.", ["I won't refund $45 in three days"])
    assert critical_tokens_preserved("They refund $45 in 2 days.", ["I'll refund $45 in two days"])
    assert critical_tokens_preserved("They were charged $45.", ["I was charged $45 twice"])
    assert not critical_tokens_preserved("They were charged $54.", ["I was charged $45 twice"])
    assert not critical_tokens_preserved("The card was not blocked.", ["The card was blocked."])
    # Every negation is one value, as for the verifier: agreement may change the word, not the meaning.
    assert critical_tokens_preserved("The agent doesn't see anything unusual.", ["I don't see anything unusual"])


@pytest.mark.parametrize(
    ("claim", "evidence"),
    [
        ("The refund arrives in the first week.", "your refund arrives in the second week"),
        ("The payment is due on the 3rd day.", "the payment is due on the second day"),
    ],
)
def test_guard_and_verifier_agree_an_ordinal_period_is_critical(claim: str, evidence: str) -> None:
    # "the second week" names a date as much as "in 2 weeks" does: the guard refuses the rewrite, and
    # the verifier refuses the same claim resting on the same quote.
    assert not critical_tokens_preserved(claim, [evidence])
    transcript = Transcript(utterances=[Utterance(index=0, speaker="A", role=Role.agent, text=evidence)])
    statement = Statement(text=claim, evidence=[EvidenceRef(utterance=0, quote=evidence)])
    verdict = verify_extraction(transcript, Extraction(summary=[statement])).claims[0]
    assert verdict.reason == "unsupported_number"


def test_an_ordinal_outside_a_period_is_not_critical_for_either() -> None:
    assert critical_tokens_preserved("The agent asked for a moment.", ["one second please"])
    assert critical_tokens_preserved("The agent said first the card.", ["so first of all the card"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("we will refund it within twenty one days", "within twenty one days"),
        ("it should arrive in sixty days", "in sixty days"),
        ("expect it within forty-five days", "within forty-five days"),
        ("they'll call back in seventeen days", "in seventeen days"),
    ],
)
def test_due_finder_reads_every_spoken_number_below_a_hundred(text: str, expected: str) -> None:
    assert _due(text) == expected
