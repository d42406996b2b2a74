"""The attacker's probes of the privacy issue, and the kinds added with them: each must be found."""

from __future__ import annotations

import pytest

from app.privacy.pii import PiiKind, aba_valid, detect, detect_turns, iban_valid


def found(text: str, lead_in: str = "", *, names: bool = False) -> list[tuple[PiiKind, str]]:
    return [(d.kind, text[d.start : d.end]) for d in detect(text, lead_in, names=names)]


def test_a_card_split_across_two_turns_is_found_in_both() -> None:
    first, second = detect_turns(["it's 5500 0000", "0000 0004"])

    assert [(d.kind, d.start, d.end) for d in first] == [(PiiKind.card, 5, 14)]
    assert [(d.kind, d.start, d.end) for d in second] == [(PiiKind.card, 0, 9)]
    assert first[0].value == second[0].value == "5500000000000004"


def test_two_unrelated_short_numbers_in_consecutive_turns_stay() -> None:
    assert detect_turns(["the total is 1250", "ticket 48213 then"]) == [[], []]


@pytest.mark.parametrize(
    "spoken",
    [
        "4111 one one one one 1111 1111",  # digits mixed with words
        "four one double one, one one one one, one one one one, one one one one",  # double
        "four triple one, one one one one, one one one one, one one one one",  # triple
        "4111 1111 and then 1111 1111",  # a filler inside the number
        "4111 1111 uh 1111 1111",
        "4111\u00a01111\u00a01111\u00a01111",  # no-break space
        "4111/1111/1111/1111",
        "4111\u200b1111\u200b1111\u200b1111",  # zero-width space
        "4\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1\u200b1",
    ],
)
def test_card_numbers_in_every_form(spoken: str) -> None:
    assert found(f"my card is {spoken} thanks") == [(PiiKind.card, spoken)]


@pytest.mark.parametrize(
    "ssn",
    ["123 dash 45 dash 6789", "one two three dash four five dash six seven eight nine", "123-45-6789"],
)
def test_an_ssn_read_with_dash(ssn: str) -> None:
    assert found(f"my social is {ssn}") == [(PiiKind.ssn, ssn)]


@pytest.mark.parametrize(("said", "number"), [
    ("my tax id is 912-70-3456", "912-70-3456"),  # an ITIN: always 9xx
    ("my social is 987-65-4321.", "987-65-4321"),
    ("SSN 666-12-3456", "666-12-3456"),
    ("my SSN is 987654321", "987654321"),
    ("SSN 123-00-4567", "123-00-4567"),
])
def test_any_nine_digits_after_an_ssn_cue_are_an_ssn(said: str, number: str) -> None:
    # The number rules of issued SSNs excluded these even after "SSN" or "tax id": shown whole to every reader.
    assert found(said) == [(PiiKind.ssn, number)]


def test_an_uncued_number_is_an_ssn_only_when_it_could_be_one() -> None:
    assert found("order 912-70-3456 shipped") == []
    assert found("ok 123-45-6789") == [(PiiKind.ssn, "123-45-6789")]
    assert found("my ssn is 123-45-6789 and the routing number 021000021") == [
        (PiiKind.ssn, "123-45-6789"), (PiiKind.account, "021000021")]


@pytest.mark.parametrize(
    "email",
    [
        "jane dot roe at example dot com",
        "jane.roe at example.com",
        "j underscore smith at gmail dot com",
        "jane.roe@example.co.uk",
    ],
)
def test_spoken_and_written_emails(email: str) -> None:
    assert found(f"my email is {email} okay") == [(PiiKind.email, email)]


def test_looking_at_a_website_is_not_an_email() -> None:
    assert found("have a look at example dot com for the hours") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("the routing number is 021000021", "021000021"),
        ("my account number is 12345678901", "12345678901"),
        ("checking account 4400 1234 5678", "4400 1234 5678"),
        ("my IBAN is GB82 WEST 1234 5698 7654 32 thanks", "GB82 WEST 1234 5698 7654 32"),
        ("iban DE89370400440532013000", "DE89370400440532013000"),
    ],
)
def test_bank_accounts(text: str, value: str) -> None:
    assert found(text) == [(PiiKind.account, value)]


def test_checksums() -> None:
    assert aba_valid("021000021")
    assert not aba_valid("021000022")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765433")


def test_an_iban_with_a_lookalike_letter_is_read_or_refused_never_a_crash() -> None:
    """Case-insensitive matching takes the Kelvin sign for K, the long s for S and the dotless i for I: the
    first two are read as those letters (their compatibility forms), the third is no IBAN letter."""
    iban = "GB88WEKT12345698765432"
    assert iban_valid(iban)
    kelvin = detect("my iban is " + iban.replace("K", "\u212a"))
    assert [(d.kind, d.start, d.end) for d in kelvin] == [(PiiKind.account, 11, 11 + len(iban))]
    assert iban_valid("GB82WE\u017fT12345698765432")  # GB82WEST..., the long s for the S
    assert not iban_valid("GB88WE\u0131T12345698765432")
    assert detect("my iban is " + iban.replace("K", "\u0131")) == []



def test_a_routing_shaped_number_without_its_cue_stays() -> None:
    assert found("order 021000021 shipped") == []


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("the security code is 123", PiiKind.cvv, "123"),
        ("CVV four five six", PiiKind.cvv, "four five six"),
        ("it expires 04/27", PiiKind.expiry, "04/27"),
        ("expiration date oh four twenty seven", PiiKind.expiry, "oh four twenty seven"),
        ("my address is 123 Main Street, Springfield", PiiKind.address, "123 Main Street"),
        ("I live at 42 oak avenue", PiiKind.address, "42 oak avenue"),
    ],
)
def test_cued_card_details_and_addresses(text: str, kind: PiiKind, value: str) -> None:
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call me at (555) 123-4567", "(555) 123-4567"),
        ("my mobile is +44 7700 900123", "+44 7700 900123"),
        ("reach me on 0049 89 123456", "0049 89 123456"),
        (
            "my cell is five five five, two three four, double five six seven",
            "five five five, two three four, double five six seven",
        ),
        ("it's 1-800-555-0199", "1-800-555-0199"),
        ("call one eight hundred five five five one two one two", "one eight hundred five five five one two one two"),
    ],
)
def test_phones_in_spoken_and_international_forms(text: str, value: str) -> None:
    assert found(text) == [(PiiKind.phone, value)]


@pytest.mark.parametrize(
    "text",
    [
        "case number 2023-1104-77",
        "the part number is 12-345-678",
        "I'm on version 1.0.65.320 of the app",
        "the total comes to $1,250.00",
        "we'll call you at 3:45 pm",
        "order 9876543210 was delivered",
        "the year 1999 was a long time ago",
        "it costs two hundred dollars",
        "@136790 thanks for reaching out",
        "oh no, that's not right",
        "the appointment is on 04/22/2026",
    ],
)
def test_near_misses_stay(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("my social is 123.45.6789", PiiKind.ssn, "123.45.6789"),
    ("SSN: 123.45.6789", PiiKind.ssn, "123.45.6789"),
    ("the CVV is 7.3.7", PiiKind.cvv, "7.3.7"),
])
def test_dotted_groups_a_cue_names_are_not_a_software_version(text: str, kind: PiiKind, value: str) -> None:
    assert found(text) == [(kind, value)]


def test_names_only_when_asked_and_only_after_a_cue() -> None:
    text = "hi, my name is Jane Roe and this is great"

    assert found(text) == []
    assert found(text, names=True) == [(PiiKind.name, "Jane Roe")]
    assert found("this is Tom from billing", names=True) == [(PiiKind.name, "Tom")]
    assert found("this is really slow", names=True) == []


def test_several_cards_in_one_breath_are_each_found() -> None:
    text = "4111 1111 1111 1111, 5500 0000 0000 0004 and 4111/1111/1111/1111"

    assert [(kind, value) for kind, value in found(text)] == [
        (PiiKind.card, "4111 1111 1111 1111"),
        (PiiKind.card, "5500 0000 0000 0004"),
        (PiiKind.card, "4111/1111/1111/1111"),
    ]


def test_a_card_read_over_four_turns_with_acknowledgements_between() -> None:
    turns = ["card 5500", "mhm", "0000", "go on", "0000 0004 thanks"]

    found_per_turn = [[t[d.start : d.end] for d in ds] for t, ds in zip(turns, detect_turns(turns), strict=True)]

    assert found_per_turn == [["5500"], [], ["0000"], [], ["0000 0004"]]


def test_a_chain_stops_at_a_turn_that_says_more_than_its_number() -> None:
    turns = ["it is 4111", "I will wait for the next part please", "1111 1111 1111"]

    assert detect_turns(turns) == [[], [], []]


def test_a_card_read_with_full_stops_between_its_groups() -> None:
    text = "The number is four one one one. One one one one. One one one one. One one one one."

    assert found(text) == [(PiiKind.card, text[14:-1])]


def test_full_stops_still_end_other_numbers() -> None:
    assert found("we close at 9. 555 234 5678 is our number") == [(PiiKind.phone, "555 234 5678")]


def test_an_ssn_ending_a_turn_stays_an_ssn_before_a_card_in_the_next() -> None:
    first, second = detect_turns(["my SSN is 123-45-6789.", "the card 4111 1111 1111 1111."])
    assert [(d.kind, d.value) for d in first] == [(PiiKind.ssn, "123456789")]
    assert [d.kind for d in second] == [PiiKind.card]


@pytest.mark.parametrize(("text", "number"), [
    ("My passport number is C01X00T47 and it expires in May.", "C01X00T47"),
    ("my driver's license is D1234-56789-01234", "D1234-56789-01234"),
    ("Driving licence MORGA753116SM9IJ please", "MORGA753116SM9IJ"),
    ("National insurance number AB 12 34 56 C, yes", "AB 12 34 56 C"),
    ("I lost my ID card, the number was X1234567", "X1234567"),
    ("my passport is 123456789", "123456789"),
    ("passport number five four three two one zero nine eight seven", "five four three two one zero nine eight seven"),
    ("passport here, the number is 5 3 4 7 2 1 9 8 8", "5 3 4 7 2 1 9 8 8"),  # "the number" is no phone's here
    ("my driver's licence number is 1234567890123456", "1234567890123456"),
    # As recognizers write long numbers, and as people say them (the second review's misses).
    ("My passport number is 123,456,789.", "123,456,789"),
    ("my passport number is 12 2019 345", "12 2019 345"),
    ("my passport number is, let me check, 123456789", "123456789"),
    ("the passport number I have is 123456789", "123456789"),
    ("my passport's number is 123456789", "123456789"),
    ("And the passport number, that's 534721988", "534721988"),
])
def test_an_identity_documents_number_after_its_name_is_found(text: str, number: str) -> None:
    assert found(text) == [(PiiKind.id_document, number)]


def test_an_identity_documents_number_is_found_after_the_name_in_the_turn_before() -> None:
    assert found("sure, it's C01X00T47", lead_in="Can I have your passport number?") == [
        (PiiKind.id_document, "C01X00T47")]
    assert found("It is 534721988.", lead_in="What is the number on your passport?") == [
        (PiiKind.id_document, "534721988")]
    for answer in ("Yep. 534721988", "Sure thing, it's 534721988", "Okay, one moment. It's 534721988"):
        assert found(answer, lead_in="What's your passport number?") == [
            (PiiKind.id_document, answer[answer.index("5"):])]
    assert found("Of course, it's D1234-56789-01234", lead_in="What's your driver's license number?") == [
        (PiiKind.id_document, "D1234-56789-01234")]
    # A question about money: the answer is an amount.
    assert found("it is 1500000", lead_in="How much did you pay for the passport?") == []
    # The turn does not open with it: another number.
    assert found("my reservation number is 73821945", lead_in="Passport renewal?") == []
    assert found("I'll send the signed forms by March 3rd 2024.", lead_in="Your passport renewal is in progress.") == []


@pytest.mark.parametrize("text", [
    "I'd like to renew my passport, call me at 555 123 4567",  # a phone, nearer its own cue
    "the order number on the licence renewal is 88812345",  # call content
    "License plate ABC 1234 was towed",  # no document
    "my passport expires 03/04/2030",  # a date
    "Order number ABC12345 for my passport photos",
    "I need an ID number for the portal, it says 8812345",  # a bare "ID number": not a named document
    # Dates and amounts near a document (a review of the first version found them masked, and redacted for
    # the model, so a due date reached it as "March [ID_1]").
    "I applied for my passport on March 3rd 2024",
    "renewed my passport on 15 03 2024",
    "my passport number, hmm, no, the renewal date, 20240315",
    "My passport expires 03/2030",
    "green card holders pay 1,250.00 USD",
    "showed my ID card and paid 250000 pesos",
    "my ID card number is 150000 pesos",
    "my passport number is 1,500.00",
    "my passport number is 15032024",
    # Software licences are no identity documents.
    "My software license number is 4471-2290-1183",
    "The license number for Office is XQ47-8821-PL99",
])
def test_what_is_near_a_document_but_not_its_number_is_left(text: str) -> None:
    assert [kind for kind, _ in found(text) if kind is PiiKind.id_document] == []


def test_an_identity_documents_number_is_masked_whole_and_redacted() -> None:
    from app.pipeline.redact import RedactionMap, redact_text
    from app.privacy.mask import mask_text

    text = "my passport number is C01X00T47"
    assert mask_text(text) == "my passport number is •••••••••"
    redaction = RedactionMap()
    assert redact_text(text, redaction) == "my passport number is [ID_1]"
    assert redaction.restore_text("my passport number is [ID_1]") == text
