"""Names in a claim that are read by what they are, not only by how a sentence capitalizes them: a given name in
capitals ("JOHN will call back"), and a given name opening a claim before its verb ("Susan paid the balance")."""

from __future__ import annotations

import pytest

from app.grounding import Reason, verify_extraction
from app.grounding.align import PreparedTranscript
from app.grounding.claims import unsaid_name
from app.schemas.extraction import Extraction, Statement
from app.schemas.grounding import ClaimStatus
from app.schemas.transcript import Transcript
from tests.grounding.helpers import transcript
from tests.grounding.test_claims import ref


def _call() -> Transcript:
    return transcript(
        ("agent", "Thanks for calling, my name is Elizabeth. I will call you back tomorrow."),
        ("customer", "hi, this is patricia, I paid the balance and sent the form"),
        ("agent", "I updated the address and escalated it to billing"),
    )


def _name_check(text: str) -> tuple[ClaimStatus, str | None]:
    report = verify_extraction(_call(), Extraction(summary=[Statement(text=text, evidence=[
        *ref(0, "I will call you back tomorrow"), *ref(1, "I paid the balance and sent the form"),
        *ref(2, "I updated the address and escalated it to billing")])]))
    return report.claims[0].status, report.claims[0].reason


@pytest.mark.parametrize("text", [
    "JOHN will call the customer back.",
    "Escalated to MARIA in billing.",
    "The agent escalated it to MARIA.",  # short: not a title for its capitals
    "The customer paid the balance and JENNIFER updated the address.",
    "JOHN'S team updated the address.",
    "Patricia paid the balance, and the agent told MICHAEL.",
])
def test_a_given_name_in_capitals_the_call_never_says_is_unsupported(text: str) -> None:
    assert _name_check(text) == (ClaimStatus.ungrounded, Reason.unsupported_name)


@pytest.mark.parametrize("text", [
    "Susan paid the balance.",
    "Mark sent the form.",
    "Alex updated the address.",
    "Jennifer escalated it to billing.",
    "Michael will call the customer back tomorrow.",
    "The form was sent. Susan paid the balance.",  # opening a later sentence
])
def test_a_given_name_opening_a_claim_before_its_verb_the_call_never_says_is_unsupported(text: str) -> None:
    assert _name_check(text) == (ClaimStatus.ungrounded, Reason.unsupported_name)


@pytest.mark.parametrize(("text", "name"), [
    ("Susan pays the balance every month.", "susan"),  # a third person's present
    ("Susan hasn't paid the balance.", "susan"),  # an auxiliary
    ("Alex can update the address.", "alex"),  # a modal
    ("MARY PAID THE BALANCE.", "mary"),  # a claim in capitals throughout: its opening given name before a verb
])
def test_a_given_name_before_any_verb_of_its_own_is_read(text: str, name: str) -> None:
    assert unsaid_name(text, PreparedTranscript(_call().utterances)) == name


@pytest.mark.parametrize("text", [
    # Codes, acronyms and shouted words in capitals are no names.
    "The customer's SSN, ID and PIN were verified before the balance was paid.",
    "The customer paid the balance by ACH; the USB, TV and FAQ came up, with the ETA for UPS or DHL.",
    "IT and HR were told; VIP status OK.",
    "The customer on PLAN-X paid the balance for order ABC123.",
    "The customer paid the balance and WILL call back.",
    "The customer paid the BILL.",
    "The customer paid the balance for flights to MIA.",  # three capitals: a code (the airport), not Mia
    # A name said in another case is said.
    "PATRICIA paid the balance.",
    "The customer told ELIZABETH she paid the balance.",
    "Patricia told Elizabeth she paid the balance.",
    # Ordinary words opening a claim before a verb.
    "Billing sent the form.",
    "Payment posted today.",
    "Customer paid.",
    "Agent updated the address.",
    "Refund processed.",
    "Order shipped.",
    "Support called back.",
    "Nobody paid.",
    "Nobody called.",
    "Someone called back.",
    "Everyone agreed to the address.",
    # Given names that are everyday words, and a given name before no verb.
    "Bill increased after the balance was paid.",
    "Miles posted to the account.",
    "Will call the customer back tomorrow.",
    "Mark as resolved: the balance was paid.",
    "MARK AS RESOLVED.",  # in capitals throughout, a given name opening it before no verb
])
def test_codes_said_names_and_ordinary_opening_words_are_no_unsaid_names(text: str) -> None:
    assert unsaid_name(text, PreparedTranscript(_call().utterances)) is None


def test_a_name_in_capitals_said_in_small_letters_is_said_and_the_other_way_round() -> None:
    said_small = PreparedTranscript(transcript(("customer", "this is john, I paid the balance")).utterances)
    said_in_capitals = PreparedTranscript(transcript(("customer", "JOHN here, I paid the balance")).utterances)
    assert unsaid_name("JOHN paid the balance.", said_small) is None
    assert unsaid_name("John paid the balance.", said_in_capitals) is None
    assert unsaid_name("MARIA paid the balance.", said_small) == "maria"


def test_a_title_in_capitals_still_gives_a_given_name() -> None:
    prepared = PreparedTranscript(_call().utterances)
    assert unsaid_name("BALANCE PAID BY JOHN", prepared) == "john"
    assert unsaid_name("BALANCE PAID IN FULL", prepared) is None
