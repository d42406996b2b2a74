"""The attacker's probe of cards read across turns: the agent reading a group back between the customer's
groups ("4111 1111" / "4111 1111, okay, and?" / "1111 1111"), and longer acknowledgements between groups
("Mm-hmm, go ahead."). The card is found in every turn that holds its digits, read-backs included; numbers
in nearby turns that are not the card's stay."""

from __future__ import annotations

import pytest

from app.privacy.mask import mask_turns
from app.privacy.pii import PiiKind, detect_turns


def card_spans(turns: list[str]) -> list[list[str]]:
    """Each turn's card detections, as the text they cover (every detection, as masking takes them)."""
    found = detect_turns(turns, resolve=False)
    return [sorted({text[d.start : d.end] for d in detections if d.kind is PiiKind.card})
            for text, detections in zip(turns, found, strict=True)]


def test_a_group_read_back_by_the_agent_does_not_end_the_card() -> None:
    turns = ["4111 1111", "4111 1111, okay, and?", "1111 1111"]

    assert card_spans(turns) == [["4111 1111"], ["4111 1111"], ["1111 1111"]]
    assert {d.value for turn in detect_turns(turns) for d in turn} == {"4111111111111111"}
    assert mask_turns(turns) == ["•••• ••••", "•••• ••••, okay, and?", "•••• 1111"]


@pytest.mark.parametrize("turns", [
    ["5500 0000", "Got it, 5500 0000. And the next four?", "0000 0004"],  # "four": no part of a card's length
    ["my card is 5500 0000", "5500 0000?", "yes", "0000 0004"],
    ["five five zero zero, zero zero zero zero", "five five zero zero zero zero zero zero, okay, and?", "0000 0004"],
    ["5500", "5500", "0000", "5500 0000, yes", "0000", "okay", "0004"],  # a read-back of all the groups so far
    ["5500 0000", "mm-hmm", "5500 0000, go on", "0000 0004"],
])
def test_read_backs_of_every_kind_are_masked_with_the_card(turns: list[str]) -> None:
    masked = mask_turns(turns)

    for original, shown in zip(turns, masked, strict=True):
        digits_shown = [c for c in shown if c.isdigit()]
        # Only the card's last four digits may show, in the turn that reads them.
        assert digits_shown in ([], list("0004")), (original, shown)
    assert "0004" in masked[-1]


def test_groups_repeating_each_other_are_still_read_as_the_next_group() -> None:
    """4111 1111 1111 1111: a group equal to the one before is the next one here, not a read-back."""
    turns = ["4111", "yes", "1111", "yes", "1111", "yes", "1111"]

    found = detect_turns(turns, resolve=False)

    assert card_spans(turns) == [["4111"], [], ["1111"], [], ["1111"], [], ["1111"]]
    # Only the last group ends the card: masking may keep the last four digits there only.
    assert [d.ends_value for turn in found for d in turn] == [False, False, False, True]


def test_groups_equal_to_the_last_one_are_masked_whole() -> None:
    assert mask_turns(["4111", "yes", "1111", "yes", "1111", "yes", "1111"]) == [
        "••••", "yes", "••••", "yes", "••••", "yes", "1111"]


def test_longer_acknowledgements_between_groups_do_not_end_the_card() -> None:
    turns = ["5500", "Mm-hmm, go ahead.", "0000", "Okay, one moment.", "0000", "Yes, got it, next.", "0004"]

    assert card_spans(turns) == [["5500"], [], ["0000"], [], ["0000"], [], ["0004"]]
    assert mask_turns(turns) == ["••••", "Mm-hmm, go ahead.", "••••", "Okay, one moment.", "••••",
                                 "Yes, got it, next.", "0004"]


@pytest.mark.parametrize("turns", [
    # A number after the card in a turn of its own: the zip code is no part and no read-back.
    ["4111 1111", "4111 1111, okay, and?", "1111 1111", "and my zip is 94105", "94105, okay"],
    ["the total is 1250", "1250, okay", "ticket 48213 then"],
    ["my order is 5500 0000", "5500 0000, okay", "and it cost 1250"],
])
def test_numbers_near_a_read_back_that_are_not_the_cards_stay(turns: list[str]) -> None:
    shown = mask_turns(turns)
    card_turns = {i for i, spans in enumerate(card_spans(turns)) if spans}
    for i, (original, masked) in enumerate(zip(turns, shown, strict=True)):
        if i not in card_turns:
            assert masked == original


def test_a_long_turn_that_repeats_a_group_is_no_read_back() -> None:
    """A turn that says much besides the group ends the chain, as any turn that says more than its number."""
    turns = ["4111 1111", "Okay so I have 4111 1111 written down here on my notepad for now", "1111 1111"]

    assert card_spans(turns) == [[], [], []]
