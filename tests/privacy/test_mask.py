"""Reviewer masking: last four kept, lengths kept, the rest of the call untouched."""

from __future__ import annotations

import pytest

from app.privacy.mask import CallMasks, mask_text, mask_turns
from app.privacy.reads import unmask_selection
from app.schemas.transcript import Role


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my card is 4111 1111 1111 1111 ok", "my card is •••• •••• •••• 1111 ok"),
        ("amex 3782 822463 10005", "amex •••• •••••• •0005"),
        ("ssn 123-45-6789", "ssn •••-••-6789"),
        ("account number 12345678901", "account number •••••••8901"),
        ("routing 021000021", "routing •••••0021"),
        ("date of birth March 4th, 1985", "date of birth ••••• •••, ••••"),
        ("the security code is 123", "the security code is •••"),
        (
            "card four one one one one one one one one one one one one one one one",
            "card •••• ••• ••• ••• ••• ••• ••• ••• ••• ••• ••• ••• one one one one",
        ),
    ],
)
def test_masked_kinds_keep_last_four_and_length(text: str, expected: str) -> None:
    masked = mask_text(text)
    assert masked == expected
    assert len(masked) == len(text)


@pytest.mark.parametrize(
    "text",
    ["call me at 555-123-4567", "email jane@example.com", "I was charged $30 on March 3rd, 2025", "order 123456789"],
)
def test_phones_emails_and_call_content_stay(text: str) -> None:
    assert mask_text(text) == text


def test_a_card_across_two_turns_shows_only_its_last_four() -> None:
    assert mask_turns(["it is 5500 0000", "0000 0004"]) == ["it is •••• ••••", "•••• 0004"]


def test_a_selection_on_masked_text_maps_back_to_the_stored_text() -> None:
    original = "ssn 123-45-6789 please"
    masked = mask_text(original)

    assert unmask_selection("•••-••-6789 please", original, masked) == "123-45-6789 please"
    assert unmask_selection("please", original, masked) == "please"


def test_an_ssn_ending_a_turn_before_a_card_is_masked_whole() -> None:
    # The SSN's last four and the next turn's card digits also read as one card across the turns; that
    # reading must never take the SSN's own masking away (it showed "123-45-••••", and the claim text,
    # masked on its own, "•••-••-6789": the whole SSN between the two).
    turns = mask_turns(["my SSN is 123-45-6789.", "the card 4111 1111 1111 1111."])
    assert turns[0].startswith("my SSN is •••-••-")
    assert "123" not in turns[0] and "45" not in turns[0]
    assert turns[1] == "the card •••• •••• •••• 1111."


@pytest.mark.parametrize("text", [
    "My phone is 555-123-4567 and I was born 03/04/1985.",  # the date also reads as a phone number
    "my SSN is 123-45-6789 and my card 4111 1111 1111 1111",
    "account 12345678, routing 021000021, born on 1985-03-04",
])
def test_a_text_masked_on_its_own_hides_what_the_call_page_hides(text: str) -> None:
    # Stored copies (claim texts, quotes, notes) are masked on their own; utterances on the page together.
    # Where detections overlap, both mask the union: never fewer digits in a stored copy than on the page.
    alone, together = mask_text(text), mask_turns([text])[0]
    assert alone == together
    assert "1985" not in alone


def test_a_text_about_the_call_hides_what_the_calls_masking_hid_with_another_turns_help() -> None:
    masks = CallMasks({
        0: "For security, can you confirm your date of birth?",
        1: "I want to say 03/04/1985.",
        2: "And the card is 5500 0000",
        3: "0000 0004.",
        4: "The balance is $5500 and room 403.",
    })
    assert masks.utterances[1] == "I want to say ••/••/••••."
    # Masked on its own, the date has no cue and the half card is too short to be a card.
    assert mask_text("They want to say 03/04/1985.") == "They want to say 03/04/1985."
    assert masks.text("They want to say 03/04/1985.") == "They want to say ••/••/••••."
    assert masks.text("Card 5500 0000 0000 0004 was blocked") == "Card •••• •••• •••• 0004 was blocked"
    # Only the values themselves, as whole numbers: an amount or a room number that shares digits stays.
    assert masks.text("The balance of $5500 and room 403 were discussed") == (
        "The balance of $5500 and room 403 were discussed")
    assert masks.text("Nothing to mask here") == "Nothing to mask here"
    # Without such values it is `mask_text`.
    assert CallMasks({0: "Hello"}).text("card 4111 1111 1111 1111") == mask_text("card 4111 1111 1111 1111")


def test_a_stored_error_is_masked_and_cut_and_only_what_is_kept_is_read() -> None:
    from app.privacy.mask import MAX_ERROR_CHARS, stored_error

    card = "4111 1111 1111 1111"
    # A card straddling the cut is masked whole before the cut; the megabyte after it is never scanned.
    message = "refused: " + "x" * (MAX_ERROR_CHARS - 20) + f" card {card} " + "y" * 1_000_000
    stored = stored_error(message)
    assert len(stored) == MAX_ERROR_CHARS and stored.startswith("refused: ")
    assert "4111 1111" not in stored and "••••" in stored
    assert stored_error(f"echo: {card}") == "echo: •••• •••• •••• 1111"


# A card read across two turns, an SSN ending a turn before it, a date of birth answered a turn after its
# cue: every cross-turn case of the detectors.
CROSS_TURN = [
    (Role.agent, "Can you confirm your date of birth?"),
    (Role.customer, "It's 03/04/1985. My social is 123-45-6789"),
    (Role.customer, "and the card is 5500 0000"),
    (Role.customer, "0000 0004 thanks"),
]


def test_masking_with_the_redactions_scan_is_masking_with_its_own() -> None:
    from app.pipeline.redact import redact_transcript
    from tests.support.transcripts import make_transcript

    transcript = make_transcript(CROSS_TURN)
    _view, redaction = redact_transcript(transcript)
    assert redaction.scan is not None
    texts = {u.index: u.text for u in transcript.utterances}
    shared, own = CallMasks(texts, scan=redaction.scan), CallMasks(texts)
    assert shared.utterances == own.utterances
    assert "123-45" not in shared.utterances[1] and "5500" not in shared.utterances[2]
    for claim in ("DOB 03/04/1985, SSN 123-45-6789", "card 5500 0000 0000 0004"):
        assert shared.text(claim) == own.text(claim) != claim
    # A scan of other texts, or with names detected, is not taken for these.
    other = redact_transcript(make_transcript(CROSS_TURN[:3]))[1].scan
    named = redact_transcript(transcript, names=True)[1].scan
    assert other is not None and named is not None
    assert not other.scanned(list(texts.values()), names=False)
    assert not named.scanned(list(texts.values()), names=False)
    assert CallMasks(texts, scan=other).utterances == own.utterances
