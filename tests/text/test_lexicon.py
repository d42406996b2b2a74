"""The one lexicon: the lists the text functions share, and the patterns built from them."""

from __future__ import annotations

import re

import pytest

from app.text.lexicon import MONTHS, SPOKEN_CARDINAL_PATTERN, alternation
from app.text.normalize import normalize


@pytest.mark.parametrize("said", ["twenty one", "twenty-one", "sixty", "seventeen", "ninety nine", "five"])
def test_spoken_cardinal_pattern_reads_every_number_below_a_hundred(said: str) -> None:
    assert re.fullmatch(SPOKEN_CARDINAL_PATTERN, said)


@pytest.mark.parametrize("said", ["hundred", "zero", "twenty zero", "first"])
def test_spoken_cardinal_pattern_refuses_what_is_not_a_cardinal_below_a_hundred(said: str) -> None:
    assert re.fullmatch(SPOKEN_CARDINAL_PATTERN, said) is None


def test_alternation_prefers_the_longest_word() -> None:
    assert re.match(alternation(MONTHS), "september").group() == "september"  # type: ignore[union-attr]
    assert re.match(alternation(MONTHS), "sept").group() == "sept"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("the second week", ("the", "2", "week")),
        ("the 2nd week", ("the", "2", "week")),
        ("one second please", ("one", "second", "please")),
        ("first of all", ("first", "of", "all")),
    ],
)
def test_an_ordinal_is_a_number_before_a_period_only(text: str, tokens: tuple[str, ...]) -> None:
    assert normalize(text).tokens == tokens
