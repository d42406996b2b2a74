"""The probe of three gaps: "cc" as a card's cue (a card failing Luhn after it), account numbers written with
":", ";" or "+" between their groups, and dashed dates with a two-digit year after a document's cue. Each is
found as written with spaces (or, the date, with dots) is; "cc" inside words and the email's carbon copy,
times, ratios, sums and phone numbers, and document numbers in short dashed groups stay as they were."""

from __future__ import annotations

import pytest

from app.privacy.mask import MASK_CHAR, mask_text, mask_turns
from app.privacy.pii import PiiKind, detect, detect_turns

M = MASK_CHAR


def found(text: str, lead_in: str = "") -> list[tuple[PiiKind, str]]:
    return [(d.kind, text[d.start : d.end]) for d in detect(text, lead_in)]


# "cc" (credit card) is a card's cue as "card" is: a digit misheard or mistyped after it is still a card.
@pytest.mark.parametrize(("text", "card"), [
    ("cc: 4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("cc 4111-1111-1111-1112", "4111-1111-1111-1112"),
    ("cc:4111+1111+1111+1112", "4111+1111+1111+1112"),
    ("CC number is 4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("my CC Number: 4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("the cc on file is 4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("c.c. 4111 1111 1111 1112", "4111 1111 1111 1112"),
    ("C.C.: 4111;1111;1111;1112", "4111;1111;1111;1112"),
    ("cc 4111 1111 1111", "4111 1111 1111"),
])
def test_a_card_failing_luhn_after_cc_is_found_and_masked(text: str, card: str) -> None:
    assert found(text) == [(PiiKind.card, card)]
    assert found(text.replace("cc", "card").replace("CC", "card").replace("c.c.", "card").replace("C.C.", "card")
                 ) == [(PiiKind.card, card)]
    assert mask_text(text).endswith(card[-4:])
    assert card[:4] not in mask_text(text)


def test_cc_in_the_previous_turn_counts_for_a_card_failing_luhn() -> None:
    turns = ["What's the cc?", "4111 1111 1111 1112"]
    assert [(d.kind, turns[1][d.start : d.end]) for d in detect_turns(turns)[1]] == [
        (PiiKind.card, "4111 1111 1111 1112")]
    assert mask_turns(turns)[1] == f"{M * 4} {M * 4} {M * 4} 1112"


@pytest.mark.parametrize("text", [
    # "cc" inside a word is no cue.
    "accent 4111 1111 1111 1112", "success 4111 1111 1111 1112", "bcc 4111 1111 1111 1112",
    "occ 4111 1111 1111 1112", "250cc 4111 1111 1111 1112",
    # The email's carbon copy: "cc'd", "cc me", "cc him", "cc" and an address or a name.
    "cc'd 4111 1111 1111 1112", "I cc’d you, ref 4111 1111 1111 1112", "cc me on the email 4111 1111 1111 1112",
    "cc him, his number is 4111 1111 1111 1112", "cc her 4111 1111 1111 1112",
    "please cc us 4111 1111 1111 1112", "cc Jane 4111 1111 1111 1112", "Cc: John 4111 1111 1111 1112",
    "cc-ed 4111 1111 1111 1112",
    # A content cue nearer than "cc", as after "card".
    "cc, order 4111 1111 1111 1112",
    # Too few digits for a card, or an amount.
    "cc 4111 1111 111", "cc $4111 1111 1111 1112",
])
def test_cc_inside_words_and_the_emails_carbon_copy_are_no_card_cue(text: str) -> None:
    assert [kind for kind, _ in found(text) if kind is not PiiKind.email] == []
    assert mask_text(text) == text


def test_cc_and_an_email_address_finds_the_address_only() -> None:
    text = "cc: jane.roe@example.com 4111 1111 1111 1112"
    assert found(text) == [(PiiKind.email, "jane.roe@example.com")]


def test_cc_then_an_account_cue_is_the_accounts() -> None:
    assert found("cc account 4111 1111 1111 1112") == [(PiiKind.account, "4111 1111 1111 1112")]


# An account number written with ":", ";" or "+" between its groups, after an account's cue, is one as
# written with spaces.
@pytest.mark.parametrize(("text", "account"), [
    ("card account:4111:1111:1111:1112", "4111:1111:1111:1112"),
    ("account number: 1234;5678;9012", "1234;5678;9012"),
    ("acct 1234+5678+9012", "1234+5678+9012"),
    ("my checking account is 123:456:7890", "123:456:7890"),
    ("bank account: 12345;678;90", "12345;678;90"),
])
def test_an_account_number_with_odd_separators_is_found_and_masked(text: str, account: str) -> None:
    assert found(text) == [(PiiKind.account, account)]
    spaced = account.translate(str.maketrans(":;+", "   "))
    assert found(text.replace(account, spaced)) == [(PiiKind.account, spaced)]
    masked = mask_text(text)
    assert [character for character in masked if character.isdigit()] == [
        character for character in account if character.isdigit()][-4:]
    assert len(masked) == len(text)


def test_an_account_cue_in_the_previous_turn_counts_for_odd_separators() -> None:
    turns = ["And your account number?", "1234;5678;9012"]
    assert [(d.kind, turns[1][d.start : d.end]) for d in detect_turns(turns)[1]] == [
        (PiiKind.account, "1234;5678;9012")]
    assert mask_turns(turns)[1] == f"{M * 4};{M * 4};9012"


def test_a_luhn_valid_card_after_an_account_cue_stays_a_card() -> None:
    assert found("account:4111:1111:1111:1111") == [(PiiKind.card, "4111:1111:1111:1111")]


@pytest.mark.parametrize("text", [
    # No account cue: times, ratios, scores, sums, phone numbers.
    "time:10:30:45", "ratio 1920:1080:60", "sum:1234+5678", "total 1234+5678+9012", "1234;5678;9012",
    "tel:1+800+555+1234", "phone:+44+20+7946+0958",
    # An account cue, but a time (no group of three digits first), too few groups, a phone cue or a content
    # cue nearer, an amount.
    "account opened at 10:30:45", "account: 1234+5678", "account, call me at 555:123:4567",
    "account, order 1234;5678;9012", "account: $1234;5678;9012", "account 1234:5678:9012 dollars",
    "account:123+45",
])
def test_times_ratios_sums_and_phones_with_odd_separators_stay(text: str) -> None:
    assert found(text) == []
    assert mask_text(text) == text


# A dashed date with a two-digit year is a date, as the dotted and the slashed ones are, never a document's
# number.
@pytest.mark.parametrize("text", [
    "passport: 12-03-85", "passport: 03-12-85", "driver's licence: 03-12-85", "passport number is 31-12-99",
    "passport: 12–03–85", "passport: 12.03.85", "passport: 12/03/85", "national insurance: 1-12-85",
])
def test_a_dashed_short_date_after_a_document_cue_is_no_document_number(text: str) -> None:
    assert found(text) == []
    assert mask_text(text) == text


def test_a_dashed_short_date_answering_a_document_question_is_no_document_number() -> None:
    turns = ["When was your passport issued?", "12-03-85"]
    assert detect_turns(turns)[1] == []


@pytest.mark.parametrize(("text", "number"), [
    # Not a day and a month, or groups no short date has: document numbers.
    ("passport: 12-34-56", "12-34-56"), ("passport: 13-13-85", "13-13-85"), ("passport: 12-03-855", "12-03-855"),
    ("driver's licence 12-345-678", "12-345-678"), ("driver's licence D123-456-789", "D123-456-789"),
    ("passport: 12-34-56-78", "12-34-56-78"), ("passport: 12-03-85-11", "12-03-85-11"),
    ("driver's licence: 1234-56-78", "1234-56-78"),
])
def test_document_numbers_in_short_dashed_groups_are_still_found(text: str, number: str) -> None:
    assert found(text) == [(PiiKind.id_document, number)]
    assert mask_text(text).endswith("".join(M if character.isalnum() else character for character in number))
