"""A turn with many detections: overlaps are resolved by a sweep, not by comparing each detection with every
kept one, and each number's document cue is not looked for in the whole turn again.

`resolve_overlaps` keeps, in rank order (kind priority, then the longer, then the earlier; equal ranks in
input order), every detection that overlaps none kept before it. The pairwise algorithm it replaced is kept
here (`_pairwise_resolve_overlaps`) and compared with it on generated detections: overlapping, nested, equal,
empty and reversed spans of every kind, with the same span given different values. A turn of 250,000
characters holding 10,000 numbers (pasted card numbers, passports after their cue, phone numbers) took up to
19 s; here it is only resolved (the time is not asserted): all its numbers found, none overlapping.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from app.privacy import pii
from app.privacy.pii import Detection, PiiKind, detect_turns, resolve_overlaps

TURN_CHARS = 250_000
NUMBERS = 10_000


def _pairwise_resolve_overlaps(detections: Iterable[Detection]) -> list[Detection]:
    """`resolve_overlaps` as it was: every candidate compared with every detection kept before it."""
    candidates = list(detections)
    if len(candidates) < 2:
        return candidates
    ranked = sorted(candidates, key=lambda d: (pii.PRIORITY.index(d.kind), -(d.end - d.start), d.start))
    kept: list[Detection] = []
    for candidate in ranked:
        if not any(candidate.overlaps(other) for other in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda d: d.start)


@st.composite
def _detection(draw: st.DrawFn, positions: int) -> Detection:
    start = draw(st.integers(0, positions))
    # Mostly ordinary spans; some empty or reversed (end before start), which no detector makes but the
    # function accepts.
    length = draw(st.integers(1, 12) | st.integers(-3, 0))
    return Detection(
        draw(st.sampled_from(list(PiiKind))),
        start,
        start + length,
        draw(st.sampled_from(["a", "b"])),  # equal spans and kinds, different values: input order decides
        draw(st.booleans()),
    )


DETECTIONS = st.integers(1, 60).flatmap(lambda positions: st.lists(_detection(positions), max_size=40))


@settings(max_examples=1000, deadline=None)
@given(detections=DETECTIONS)
def test_resolve_overlaps_is_the_pairwise_resolution(detections: list[Detection]) -> None:
    assert resolve_overlaps(detections) == _pairwise_resolve_overlaps(detections)
    assert resolve_overlaps(iter(detections)) == _pairwise_resolve_overlaps(detections)  # any iterable


@settings(max_examples=200, deadline=None)
@given(detections=DETECTIONS, copies=st.integers(2, 4))
def test_repeated_detections_keep_the_first_in_input_order(detections: list[Detection], copies: int) -> None:
    # Each span given again with the other value: which of two equal-ranked detections stays is input order.
    repeated = [
        Detection(d.kind, d.start, d.end, f"{d.value}{copy}", d.ends_value)
        for copy in range(copies)
        for d in detections
    ]
    assert resolve_overlaps(repeated) == _pairwise_resolve_overlaps(repeated)


def test_ten_thousand_nested_and_chained_detections() -> None:
    rng = random.Random(15)
    detections = []
    for _ in range(NUMBERS):
        start = rng.randrange(TURN_CHARS)
        detections.append(Detection(rng.choice(list(PiiKind)), start, start + rng.randrange(1, 5000), "v"))
    assert resolve_overlaps(detections) == _pairwise_resolve_overlaps(detections)


def _assert_none_overlap_and_all_kept(found: list[Detection], every: list[Detection]) -> None:
    """No two of `every` overlap, so the pairwise resolution keeps them all, in order of start (comparing
    with it directly would take the pairwise time)."""
    by_start = sorted(every, key=lambda d: d.start)
    assert all(before.end <= after.start for before, after in pairwise(by_start))
    assert found == by_start


def _luhn_completed(digits: str) -> str:
    for check in "0123456789":
        if pii.luhn_valid(digits + check):
            return digits + check
    raise AssertionError("one check digit completes every number")


def _turn(pieces: list[str]) -> str:
    text = ", ".join(pieces)
    assert len(text) <= TURN_CHARS
    return text + " " * (TURN_CHARS - len(text))


def test_a_turn_of_ten_thousand_card_numbers() -> None:
    rng = random.Random(16)
    cards = [_luhn_completed("4" + "".join(rng.choices("0123456789", k=14))) for _ in range(NUMBERS)]
    text = _turn([f"visa {card}" for card in cards])
    [found] = detect_turns([text])
    assert [(d.kind, d.value) for d in found] == [(PiiKind.card, card) for card in cards]
    [every] = detect_turns([text], resolve=False)
    _assert_none_overlap_and_all_kept(found, every)


def test_a_turn_of_ten_thousand_passports_and_phones() -> None:
    rng = random.Random(17)
    pieces = []
    for i in range(NUMBERS):
        if i % 2:
            pieces.append(f"passport {rng.randrange(10**8, 10**9)}")
        else:
            pieces.append(f"call 415 555 {rng.randrange(1000, 10_000)}")
    text = _turn(pieces)
    [found] = detect_turns([text])
    assert len(found) == NUMBERS
    assert {d.kind for d in found} == {PiiKind.id_document, PiiKind.phone}
    [every] = detect_turns([text], resolve=False)
    _assert_none_overlap_and_all_kept(found, every)


def test_a_turn_of_ten_thousand_numbers_without_a_document_cue() -> None:
    # Every 6-16 digit number asks whether a document is named before it: the turn is searched once for that.
    rng = random.Random(18)
    text = _turn([f"call me at 415-555-{rng.randrange(1000, 10_000)}" for _ in range(NUMBERS)])
    [found] = detect_turns([text])
    assert len(found) == NUMBERS
    assert {d.kind for d in found} == {PiiKind.phone}
