"""One long written number: many cards written with spaces only between them ("4111 1111 1111 1111 4111 1111
1111 1111 ...") read as a single number. `_classify` took the longest card out of it and classified what was
left on either side by calling itself on a copy of each side, searched again for a card: quadratic time, and a
RecursionError from about 990 cards, so the whole transcript failed instead of being masked.

It now keeps the pieces on a stack of its own and finds every card run of the number once (`_CardRuns`). The
recursive algorithm is kept here (`_recursive_classify`, with `_card_run` as it was) and compared with it on
generated numbers small enough for it: valid and invalid cards of every length written in groups, whole or
digit by digit, short and long groups, cues of every kind before them and between them. And 5,000 cards in one
number are all found and masked (the time is not asserted).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from app.privacy import pii
from app.privacy.mask import mask_turns
from app.privacy.pii import Detection, PiiKind, detect_turns

CARDS = 5_000
VISA = "4111 1111 1111 1111"


def _recursive_card_run(number: pii._Number) -> tuple[int, int] | None:
    """`_card_run` as it was (without `accept`)."""
    if len(number.digits) < pii.CARD_MIN_DIGITS:
        return None
    best: tuple[int, int] | None = None
    best_length = 0
    tokens = number.tokens
    for first in range(len(tokens)):
        length = 0
        for last in range(first, len(tokens)):
            length += len(tokens[last].digits)
            if length > pii.CARD_MAX_DIGITS:
                break
            if length >= pii.CARD_MIN_DIGITS and length > best_length and pii._card_grouping(tokens[first : last + 1]):
                digits = "".join(t.digits for t in tokens[first : last + 1])
                if pii.luhn_valid(digits):
                    best, best_length = (first, last), length
    return best


def _recursive_classify(source: pii._Text, number: pii._Number) -> Iterator[Detection]:
    """`_classify` as it was: each side of the card classified by calling itself on a copy."""
    card = _recursive_card_run(number)
    if card is not None:
        first, last = card
        part = number.part(first, last)
        yield pii._span(source.text, PiiKind.card, part, part.digits)
        if first > 0:
            yield from _recursive_classify(source, number.part(0, first - 1))
        if last < len(number.tokens) - 1:
            yield from _recursive_classify(source, number.part(last + 1, len(number.tokens) - 1))
        return
    for piece in pii._sentences(number):
        yield from pii._classify_rest(source, piece)


_SPOKEN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _luhn_completed(body: str) -> str:
    """`body` and the check digit that makes it pass Luhn."""
    for check in "0123456789":
        if pii.luhn_valid(body + check):
            return body + check
    raise AssertionError(body)


def _grouped(digits: str, sizes: list[int], separator: str) -> str:
    groups, at = [], 0
    for size in sizes:
        if at < len(digits):
            groups.append(digits[at : at + size])
            at += size
    if at < len(digits):
        groups.append(digits[at:])
    return separator.join(groups)


@st.composite
def _card(draw: st.DrawFn) -> str:
    """A card number, valid or one digit off, written in 4s, as Amex (4-6-5), whole, in odd groups or spoken."""
    length = draw(st.integers(pii.CARD_CUED_MIN_DIGITS, pii.CARD_MAX_DIGITS + 1))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    digits = _luhn_completed(body)
    if draw(st.booleans()):
        digits = digits[:-1] + str((int(digits[-1]) + draw(st.integers(1, 9))) % 10)  # fails Luhn
    separator = draw(st.sampled_from([" ", " ", "-", "  ", ". ", " uh "]))
    layout = draw(st.sampled_from(["fours", "amex", "whole", "odd", "spoken"]))
    if layout == "fours":
        return _grouped(digits, [4] * 5, separator)
    if layout == "amex":
        return _grouped(digits, [4, 6, 5], separator)
    if layout == "whole":
        return digits
    if layout == "odd":
        sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=6))
        return _grouped(digits, sizes, separator)
    return " ".join(_SPOKEN[int(d)] for d in digits)


_GROUP = st.one_of(
    _card(),
    _card(),
    st.just(VISA),
    st.just("5500 0000 0000 0004"),
    st.text("0123456789", min_size=1, max_size=9),  # a short or long group of its own
    st.lists(st.sampled_from(_SPOKEN), min_size=1, max_size=4).map(" ".join),
)
_BETWEEN = st.sampled_from([" ", " ", " ", "  ", "-", ". ", ", ", ", and ", " then ", " / ", "; ", ". So "])
_CUE = st.sampled_from([
    "", "", "my card is ", "visa ", "card number ", "my ssn is ", "social ", "account ", "routing number ",
    "checking account ", "call me at ", "phone ", "passport number ", "the cvv is ", "order ", "$", "+",
    "(", "ticket ", "date of birth ", "member id ", "my card account number ",
])


@st.composite
def _text(draw: st.DrawFn) -> str:
    parts = [draw(_CUE)]
    for i in range(draw(st.integers(1, 10))):
        if i:
            parts.append(draw(_BETWEEN))
            if draw(st.integers(0, 5)) == 0:
                parts.append(draw(_CUE))
        parts.append(draw(_GROUP))
    parts.append(draw(st.sampled_from(["", " thanks", " dollars", ")", " ok", ".", " days"])))
    return "".join(parts)


@settings(max_examples=1500, deadline=None)
@given(text=_text(), lead_in=st.sampled_from(["", "what's your card number?", "and your passport?", "ssn?"]))
def test_classify_finds_what_the_recursive_classification_found(text: str, lead_in: str) -> None:
    source = pii._Text(text, lead_in)
    for number in pii._numbers(text):
        assert list(pii._classify(source, number)) == list(_recursive_classify(source, number))


@settings(max_examples=300, deadline=None)
@given(text=_text())
def test_card_runs_of_every_range_are_the_recursive_search(text: str) -> None:
    for number in pii._numbers(text):
        if len(number.tokens) > 40 or len(number.digits) < pii.CARD_MIN_DIGITS:
            continue
        runs = pii._CardRuns(number.tokens)
        for first in range(len(number.tokens)):
            for last in range(first, len(number.tokens)):
                expected = _recursive_card_run(number.part(first, last))
                shifted = None if expected is None else (expected[0] + first, expected[1] + first)
                assert runs.longest(first, last) == shifted


def test_detect_turns_matches_the_recursion_on_hundreds_of_cards() -> None:
    """As many cards as the recursion could take (it failed from about 990): the same detections."""
    text = "my card is " + " ".join([VISA, "5500 0000 0000 0004", "1234", "3782 822463 10005"] * 100) + " thanks"
    source = pii._Text(text)
    (number,) = pii._numbers(text)
    assert list(pii._classify(source, number)) == list(_recursive_classify(source, number))


def test_five_thousand_cards_in_one_number_are_all_found_and_masked() -> None:
    text = "my card is " + " ".join([VISA] * CARDS) + " thanks"
    (detections,) = detect_turns([text])
    assert len(detections) == CARDS
    assert all(d.kind is PiiKind.card and d.value == VISA.replace(" ", "") for d in detections)
    assert [d.start for d in detections] == [len("my card is ") + i * (len(VISA) + 1) for i in range(CARDS)]
    (masked,) = mask_turns([text])
    assert masked == "my card is " + " ".join(["•••• •••• •••• 1111"] * CARDS) + " thanks"


def test_five_thousand_mixed_cards_and_groups_in_one_number() -> None:
    """Cards of several kinds with short groups and failing cards between them, on both sides of each."""
    block = [VISA, "12", "5500 0000 0000 0004", "4111 1111 1111 1112", "3782 822463 10005", "7"]
    text = " ".join(block * (CARDS // 3))
    (detections,) = detect_turns([text])
    cards = [d.value for d in detections if d.kind is PiiKind.card]
    assert cards == ["4111111111111111", "5500000000000004", "378282246310005"] * (CARDS // 3)
    assert all(d.kind is PiiKind.card for d in detections)


def test_cards_spoken_digit_by_digit_in_one_number() -> None:
    """Cards read out digit by digit, one after the other (every digit a token, runs of 13 to 19 digits at
    every start): the same detections as the recursion for 100, and 2,000 found without failing."""
    spoken = " ".join(_SPOKEN[int(d)] for d in "4111111111111111")
    text = "card " + " ".join([spoken] * 100)
    source = pii._Text(text)
    (number,) = pii._numbers(text)
    assert list(pii._classify(source, number)) == list(_recursive_classify(source, number))

    text = "card " + " ".join([spoken] * 2_000)
    (detections,) = detect_turns([text])
    assert sum(d.kind is PiiKind.card for d in detections) > 1_000
    assert all(a.end <= b.start for a, b in pairwise(detections))
