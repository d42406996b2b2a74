"""The attacker's probe of separators: digit groups joined by a Unicode dash, a soft hyphen, an invisible
format character, "_", "*", "~", "|" (and, in a card's or an SSN's shape only, ":", ";", "+") are one number;
times, ranges, versions, amounts and dates written with them stay as they were."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from app.pipeline.redact import RedactionMap, redact_text
from app.privacy import pii
from app.privacy.mask import MASK_CHAR, mask_text
from app.privacy.pii import PiiKind, detect

DASHES = {
    "hyphen-minus": "-",
    "hyphen": "\u2010",
    "non-breaking hyphen": "\u2011",
    "figure dash": "\u2012",
    "en dash": "\u2013",
    "em dash": "\u2014",
    "horizontal bar": "\u2015",
    "minus sign": "\u2212",
    "small hyphen-minus": "\ufe63",
    "fullwidth hyphen-minus": "\uff0d",
}
OTHER_SEPARATORS = {
    "soft hyphen": "\u00ad",
    "left-to-right mark": "\u200e",
    "word joiner": "\u2060",
    "no-break space": "\u00a0",
    "narrow no-break space": "\u202f",
    "thin space": "\u2009",
    "underscore": "_",
    "asterisk": "*",
    "tilde": "~",
    "vertical line": "|",
    "fullwidth low line": "\uff3f",
}
# Joined only in a card's shape (Luhn) or, after an SSN's cue, an SSN's: as gaps they would join times.
CARD_SHAPE_SEPARATORS = {"colon": ":", "semicolon": ";", "plus": "+"}
EVERY_SEPARATOR = {**DASHES, **OTHER_SEPARATORS, **CARD_SHAPE_SEPARATORS}


def found(text: str, lead_in: str = "") -> list[tuple[PiiKind, str]]:
    return [(d.kind, text[d.start : d.end]) for d in detect(text, lead_in)]


def masked_as_the_hyphenated_number(text: str, hyphenated: str, separator: str) -> bool:
    """`mask_text(text)` is the mask of the same text written with "-", the separator kept in place: one
    character for one, so offsets into the stored text slice the masked one at the same places."""
    return mask_text(text) == mask_text(hyphenated).replace("-", separator)


@pytest.mark.parametrize("separator", EVERY_SEPARATOR.values(), ids=EVERY_SEPARATOR.keys())
def test_a_card_with_any_separator_is_found_and_masked_in_place(separator: str) -> None:
    card = separator.join(["4111", "1111", "1111", "1111"])
    for text in (f"my card is {card}", f"it's {card} thanks", card):
        assert found(text) == [(PiiKind.card, card)]
        assert masked_as_the_hyphenated_number(text, text.replace(separator, "-"), separator)
        assert mask_text(text).endswith(f"{MASK_CHAR * 4}{separator}1111" + text[text.index(card) + len(card):])
    redaction = RedactionMap()
    assert redact_text(f"my card is {card}", redaction) == "my card is [CARD_1]"
    assert redaction.restore_text("my card is [CARD_1]") == f"my card is {card}"


@pytest.mark.parametrize("separator", EVERY_SEPARATOR.values(), ids=EVERY_SEPARATOR.keys())
def test_an_ssn_with_any_separator_after_its_cue_is_found(separator: str) -> None:
    ssn = separator.join(["123", "45", "6789"])
    text = f"my SSN is {ssn}"
    assert found(text) == [(PiiKind.ssn, ssn)]
    masked = mask_text(text)
    assert len(masked) == len(text)
    assert masked == f"my SSN is {MASK_CHAR * 3}{separator}{MASK_CHAR * 2}{separator}6789"


@pytest.mark.parametrize("separator", [*DASHES.values(), "\u00ad", "\u00a0"], ids=[*DASHES, "soft hyphen", "nbsp"])
def test_an_ssn_shaped_number_with_a_dash_of_any_kind_is_one_without_a_cue(separator: str) -> None:
    ssn = separator.join(["123", "45", "6789"])
    assert found(f"ok {ssn}") == [(PiiKind.ssn, ssn)]


@pytest.mark.parametrize("separator", ["_", "*", "|", ":", ";", "+"])
def test_other_separators_make_no_ssn_without_its_cue(separator: str) -> None:
    # Uncued, only a 3-2-4 number written as SSNs are (spaces, dashes) is taken for one.
    assert found("ok " + separator.join(["123", "45", "6789"])) == []


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("I was born 03\u201304\u20131985", PiiKind.dob, "03\u201304\u20131985"),
    ("born 1985\u201303\u201304", PiiKind.dob, "1985\u201303\u201304"),
    ("my driver's license is D1234\u201356789\u201301234", PiiKind.id_document, "D1234\u201356789\u201301234"),
    ("it expires 04\u201427", PiiKind.expiry, "04\u201427"),
    ("call me at 555\u2013123\u20134567", PiiKind.phone, "555\u2013123\u20134567"),
    ("routing 021\u2011000\u2011021", PiiKind.account, "021\u2011000\u2011021"),
    ("my account number is 12\u2212345\u2212678", PiiKind.account, "12\u2212345\u2212678"),
    ("four one one one \u2013 one one one one \u2013 one one one one \u2013 one one one one",
     PiiKind.card, "four one one one \u2013 one one one one \u2013 one one one one \u2013 one one one one"),
])
def test_every_kind_written_with_dashes_is_found(text: str, kind: PiiKind, value: str) -> None:
    assert found(text) == [(kind, value)]


def test_each_dash_and_each_invisible_character_of_unicode_is_a_separator() -> None:
    """The dash and invisible-character classes are written out by hand: every dash punctuation (Pd) and
    every format character (Cf) this Python's Unicode database knows must be in them, and the minus signs."""
    gap = re.compile(rf"[{pii._INVISIBLE}{pii._DASHES}]")
    categories = ("Pd", "Cf")
    missing = [f"U+{ord(c):04X}" for c in map(chr, range(sys.maxunicode + 1))
               if unicodedata.category(c) in categories and gap.fullmatch(c) is None]
    assert missing == []
    for minus in "\u2212\u2796\u02d7":
        assert re.fullmatch(rf"[{pii._DASHES}]", minus)


@pytest.mark.parametrize("text", [
    "we open 10:30 to 11:45 and close at 18:00",
    "between 10:30 and 11:45 on my account",
    "the call was at 09:15:30",
    "Call me between 9:00\u201317:00",
    "the time is 12:30; then 14:45",
    "score was 3:2, ratio 16:9, John 3:16",
    "pages 10\u201315 and 20\u201425",
    "from 1990\u20132000 I had the account",
    "open 9\u20135 Monday\u2013Friday",
    "it was 15\u201320% off",
    "temperature \u22125 to \u221210",
    "version 1.0.65 \u2013 2.1.3",
    "It costs $1,250.00 \u2013 $1,500.00",
    "the appointment is on 2024\u201303\u201315",
    "10~15 minutes, about ~1500 dollars",
    "IMG_20240315_123456.jpg",
    "ref: 2023:1104:77",
    "1+800+555+1234",
    "2 + 2 + 4 + 8",
    "order 1234*5678*9012",
    "the case number 2023\u20131104\u201377",
    "SKU 123\u201345\u20136789 in stock",
    "invoice INV\u20132024\u2013000123",
    "4111:1111:1111:1112",  # a card's shape that fails Luhn
])
def test_times_ranges_versions_amounts_and_content_numbers_stay(text: str) -> None:
    assert found(text) == []
    assert mask_text(text) == text



def test_a_long_turn_of_number_groups_takes_time_linear_in_its_length(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each number searched the whole text before it for a currency sign: "123:45:..." of 140k characters took
    # over ten seconds in one turn. Counted in text read, not timed: the search reads a window next to each.
    import app.privacy.pii as pii

    reads: list[int] = []
    real = pii._CURRENCY_BEFORE

    class Counting:
        def search(self, text: str) -> object:
            reads.append(len(text))
            return real.search(text)

    monkeypatch.setattr(pii, "_CURRENCY_BEFORE", Counting())
    pii.detect("123:45:" * 2000)
    assert reads and max(reads) <= pii._NEXT_TO_CHARS
