"""The probe of a word and a colon before a card written with ":", ";" or "+" ("card:4111:1111:1111:1111"), and
of a document number written in dotted two-digit groups ("my passport number is 12.34.56.78"): both are found
and masked; times, ratios, scores, phone-like strings, amounts, versions and dates written the same way stay."""

from __future__ import annotations

import pytest

from app.pipeline.redact import RedactionMap, redact_text
from app.privacy.mask import MASK_CHAR, mask_text, mask_turns
from app.privacy.pii import PiiKind, detect, detect_turns

M = MASK_CHAR


def found(text: str, lead_in: str = "") -> list[tuple[PiiKind, str]]:
    return [(d.kind, text[d.start : d.end]) for d in detect(text, lead_in)]


# A ":" (or ";", "+") written after a word, not between digits, joins nothing: the card after it is whole.
@pytest.mark.parametrize(("text", "card", "masked"), [
    ("card:4111:1111:1111:1111", "4111:1111:1111:1111", f"card:{M * 4}:{M * 4}:{M * 4}:1111"),
    ("cc:4111+1111+1111+1111", "4111+1111+1111+1111", f"cc:{M * 4}+{M * 4}+{M * 4}+1111"),
    ("Card number: 4111;1111;1111;1111", "4111;1111;1111;1111", f"Card number: {M * 4};{M * 4};{M * 4};1111"),
    ("Card number:4111;1111;1111;1111", "4111;1111;1111;1111", f"Card number:{M * 4};{M * 4};{M * 4};1111"),
    ("VISA;4111;1111;1111;1111", "4111;1111;1111;1111", f"VISA;{M * 4};{M * 4};{M * 4};1111"),
    ("pan:+4111+1111+1111+1111", "4111+1111+1111+1111", f"pan:+{M * 4}+{M * 4}+{M * 4}+1111"),
    ("amex:3782:822463:10005", "3782:822463:10005", f"amex:{M * 4}:{M * 6}:{M}0005"),
    # After the card, a ":" or ";" that goes on to words ends it, as a space does.
    ("my card is 4111:1111:1111:1111; thanks", "4111:1111:1111:1111",
     f"my card is {M * 4}:{M * 4}:{M * 4}:1111; thanks"),
    ("card 4111+1111+1111+1111: that's the one", "4111+1111+1111+1111",
     f"card {M * 4}+{M * 4}+{M * 4}+1111: that's the one"),
    # No cue at all: a Luhn-valid card is one anywhere.
    ("number:5500:0000:0000:0004", "5500:0000:0000:0004", f"number:{M * 4}:{M * 4}:{M * 4}:0004"),
])
def test_a_card_after_a_word_and_a_colon_is_found_and_masked(text: str, card: str, masked: str) -> None:
    assert found(text) == [(PiiKind.card, card)]
    assert mask_text(text) == masked
    assert len(mask_text(text)) == len(text)
    redaction = RedactionMap()
    redacted = redact_text(text, redaction)
    assert redacted == text.replace(card, "[CARD_1]")
    assert redaction.restore_text(redacted) == text


# As a card read with spaces is ("Card number: 4111 1111 1111 1112"): next to a card cue, 12-19 digits in a
# card's groups are one even when the checksum fails (a digit misheard or mistyped).
@pytest.mark.parametrize(("text", "card"), [
    ("card:4111:1111:1111:1112", "4111:1111:1111:1112"),
    ("Card number: 4111;1111;1111;1112", "4111;1111;1111;1112"),
    ("my visa is 4111+1111+1111+1112", "4111+1111+1111+1112"),
    ("credit card: 4111:1111:1111", "4111:1111:1111"),
])
def test_a_cued_card_failing_luhn_is_found_as_one_written_with_spaces_is(text: str, card: str) -> None:
    assert found(text) == [(PiiKind.card, card)]
    assert found(text.replace(card, card.replace(card[4], " "))) == [(PiiKind.card, card.replace(card[4], " "))]
    assert mask_text(text).endswith(f"{M * 4}{card[4]}" + card[-4:])


def test_the_card_cue_in_the_previous_turn_counts_for_a_card_failing_luhn() -> None:
    turns = ["What's the card number?", "it's:4111:1111:1111:1112"]
    assert [(d.kind, turns[1][d.start : d.end]) for d in detect_turns(turns)[1]] == [
        (PiiKind.card, "4111:1111:1111:1112")]
    assert mask_turns(turns)[1] == f"it's:{M * 4}:{M * 4}:{M * 4}:1112"


def test_an_ssn_after_its_cue_and_a_colon_is_found() -> None:
    assert found("SSN:123;45;6789") == [(PiiKind.ssn, "123;45;6789")]
    assert mask_text("ssn:123:45:6789") == f"ssn:{M * 3}:{M * 2}:6789"


@pytest.mark.parametrize("text", [
    # Times, ratios and scores after a word and a colon.
    "at:10:30", "time:10:30:45", "open:09:00-17:30", "score:3:2", "ratio:16:9", "John:3:16",
    "card: 10:30 to 11:45", "visa appointment at:10:30:45",
    # Content numbers and sums: no card's shape, or failing Luhn with no card cue, or a content cue nearer.
    "ref:2023:1104:77", "ref:4111:1111:1111:1112", "4111:1111:1111:1112", "id;4111;1111;1111;1112",
    "sum:1234+5678+9012+3456", "total:2+2+4+8", "card order:4111:1111:1111:1112",
    "card, invoice:4111:1111:1111:1112",
    # A card's cue with too few digits, or groups no card has.
    "card:1234+5678", "card:123:45:6789", "card:2023:1104:77", "card:12:34:56:78:90:12",
    "card:411111:1111111:111111",
    # Phone-like: the groups after a "+" that follows a digit go on from that digit.
    "tel:1+800+555+1234", "phone:+44+20+7946+0958", "card line:1+800+555+1234", "call:555:123:4567",
    # Amounts.
    "card: $1,250+300+45", "card: $4111:1111:1111:1112", "card:4111:1111:1111:1112 dollars",
])
def test_times_ratios_scores_phones_and_amounts_after_a_word_and_a_colon_stay(text: str) -> None:
    assert found(text) == []
    assert mask_text(text) == text


# An identity document's number written in dotted two-digit groups is not an amount's cents.
@pytest.mark.parametrize(("text", "number"), [
    ("my passport number is 12.34.56.78", "12.34.56.78"),
    ("passport: 53.12.88.40.7", "53.12.88.40.7"),
    ("passport: 53.12.88.40", "53.12.88.40"),
    ("My driver's licence is 12.34.56.78.90", "12.34.56.78.90"),
    ("national insurance number, it's 12.34.56.78", "12.34.56.78"),
    ("passport number is 123.456.78", "123.456.78"),
])
def test_a_cued_document_number_in_dotted_groups_is_found_and_masked(text: str, number: str) -> None:
    assert found(text) == [(PiiKind.id_document, number)]
    masked_number = "".join(M if character.isdigit() else character for character in number)
    assert mask_text(text) == text.replace(number, masked_number)


def test_a_dotted_document_number_answering_the_question_is_found() -> None:
    turns = ["What is your passport number?", "12.34.56.78"]
    assert [(d.kind, turns[1][d.start : d.end]) for d in detect_turns(turns)[1]] == [
        (PiiKind.id_document, "12.34.56.78")]
    assert mask_turns(turns)[1] == f"{M * 2}.{M * 2}.{M * 2}.{M * 2}"


@pytest.mark.parametrize("text", [
    # No identity cue: amounts, versions, quantities, and dotted groups that are nobody's document.
    "$12.50", "it was 12.34 dollars", "version 2.3.4", "1.5 GB", "the total was 1,234.56",
    "it read 12.34.56.78 on the meter", "build 12.34.56.78", "we paid 1,250.00 in March",
    # An identity cue, but an amount (one decimal point with cents), a date or a currency next to it.
    "passport: 1,250.00", "passport, it's 1250.50", "passport fee: $1,250.00", "the passport is 12.34.56.78 dollars",
    "passport: 12.03.85", "passport: 03.12.85", "passport: 12.03.1985", "passport 1985.03.12",
    # A content cue nearer than the document's.
    "passport, version 12.34.56.78",
])
def test_amounts_versions_and_dates_stay_without_an_identity_cue(text: str) -> None:
    assert [kind for kind, _ in found(text) if kind is not PiiKind.phone] == []
    assert mask_text(text) == text
