"""The shortcuts in `app.privacy.pii` find exactly what the full searches find: turns without a written
digit skip the IBAN, date and street searches; numbers of a length no kind has skip classification, numbers
shorter than a card the search for one, and numbers too short or too long for a phone its cue search; a text
without an email's "@domain.tld" (or spoken "at domain dot tld") skips the email patterns; an ASCII text
without any word of a cue skips that cue's search; a text without two letters before two digits skips the
IBAN pattern; digit tokens are read from a lower-cased copy made by `str.lower` or by bytes; numbers with
nothing to trim are not copied; overlaps are not ranked for fewer than two detections.

The full searches are kept here as they were before the shortcuts (`_full_*`), built from the module's own
patterns and helpers, and compared with `detect_turns` on generated turns (numbers written and spoken, in
every length, next to every kind of cue, with Unicode digits, emails, IBANs, dates and street addresses) and
on every turn of the shared real transcripts and of the PII benchmark's labeled sets.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.privacy import pii
from app.privacy.pii import Detection, PiiKind
from bench.datasets import read_harper_valley, read_tweetsumm
from tests.support.data import require_shared_data

PII_BENCH = Path(__file__).resolve().parents[2] / "bench" / "pii"
_FULL_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _full_detect(source: pii._Text, numbers: Sequence[pii._Number], *, names: bool) -> Iterator[Detection]:
    text = source.text
    yield from _full_emails(text)
    ibans = list(_full_ibans(text))
    yield from ibans
    for number in numbers:
        if not any(number.start < iban.end and iban.start < number.end for iban in ibans):
            yield from _full_classify(source, number)
    yield from pii._odd_separator_numbers(source)
    yield from _full_dates_of_birth(source)
    yield from _full_id_documents(source)
    yield from _full_expiry_dates(source)
    yield from _full_addresses(source)
    if names:
        yield from pii._names(text)


def _full_ibans(text: str) -> Iterator[Detection]:
    for match in pii._IBAN.finditer(text):
        surface = match.group(0)
        length = pii.IBAN_LENGTHS.get(surface[:2].upper())
        positions = [i for i, c in enumerate(surface) if c != " "]
        compact = surface.replace(" ", "").upper()
        if length is None or len(compact) < length:
            continue
        candidate = compact[:length]
        if sum(c.isalpha() for c in candidate[4:]) <= pii.IBAN_MAX_LETTERS and pii.iban_valid(candidate):
            end = match.start() + positions[length - 1] + 1
            yield Detection(PiiKind.account, match.start(), end, candidate)


def _full_emails(text: str) -> Iterator[Detection]:
    if "@" in text:
        for match in pii._EMAIL.finditer(text):
            yield Detection(PiiKind.email, match.start(), match.end(), match.group(0).casefold())
    if "@" not in text and re.search(r"\sat\s", text, re.IGNORECASE) is None:
        return
    for match in pii._SPOKEN_EMAIL.finditer(text):
        local = re.split(r"\s", match.group(0), maxsplit=1)[0]
        if local.casefold() in pii._EMAIL_NOT_LOCAL:
            continue
        yield Detection(PiiKind.email, match.start(), match.end(), pii._spoken_email_value(match.group(0)))


def _full_dates_of_birth(source: pii._Text) -> Iterator[Detection]:
    if pii._DOB_CUE.search(source.text) is None and pii._DOB_CUE.search(source.lead_in) is None:
        return
    for match in pii._DATE.finditer(source.text):
        if source.has_cue(match.start(), pii._DOB_CUE):
            yield Detection(PiiKind.dob, match.start(), match.end(), match.group(0).casefold())


def _full_id_cued(source: pii._Text, start: int) -> bool:
    text = source.text
    last = None
    for match in pii._ID_CUE.finditer(text, max(0, start - pii.CONTEXT_WINDOW_CHARS), start):
        last = match
    if last is not None:
        return pii._ID_FILLER.fullmatch(text, last.end(), start) is not None
    if pii._ID_FILLER.fullmatch(text, 0, start) is None or pii._MONEY_QUESTION.search(source.lead_in):
        return False
    last_in_lead = None
    for match in pii._ID_CUE.finditer(source.lead_in):
        last_in_lead = match
    return last_in_lead is not None and pii._ID_FILLER.fullmatch(source.lead_in, last_in_lead.end()) is not None


def _full_id_documents(source: pii._Text) -> Iterator[Detection]:
    for match in pii._ID_WRITTEN.finditer(source.text):
        value = "".join(character for character in match.group() if character.isalnum()).upper()
        digits = sum(character.isdigit() for character in value)
        if (pii.ID_WRITTEN_CHARS[0] <= len(value) <= pii.ID_WRITTEN_CHARS[1] and digits >= pii.ID_WRITTEN_MIN_DIGITS
                and digits < len(value) and not pii._ORDINAL_GROUP.search(match.group())
                and _full_id_cued(source, match.start())):
            yield Detection(PiiKind.id_document, match.start(), match.end(), value)


def _full_expiry_dates(source: pii._Text) -> Iterator[Detection]:
    text = source.text
    for cue in pii._EXPIRY_CUE.finditer(text):
        match = pii._EXPIRY_VALUE.match(text, cue.end())
        if match is not None:
            yield Detection(PiiKind.expiry, match.start("value"), match.end("value"), match.group("value").casefold())


def _full_addresses(source: pii._Text) -> Iterator[Detection]:
    if pii._ADDRESS_CUE.search(source.text) is None and pii._ADDRESS_CUE.search(source.lead_in) is None:
        return
    for match in pii._STREET.finditer(source.text):
        if source.has_cue(match.start(), pii._ADDRESS_CUE, 40):
            surface = match.group(0).rstrip(".")
            yield Detection(PiiKind.address, match.start(), match.start() + len(surface), surface.casefold())


def _full_resolve_overlaps(detections: Iterable[Detection]) -> list[Detection]:
    ranked = sorted(detections, key=lambda d: (pii.PRIORITY.index(d.kind), -(d.end - d.start), d.start))
    kept: list[Detection] = []
    for candidate in ranked:
        if not any(candidate.overlaps(other) for other in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda d: d.start)


def _full_tokens(text: str) -> Iterator[pii._Token]:
    for match in pii._NUMBER_TOKEN.finditer(text.translate(_FULL_ASCII_LOWER)):
        if match.group("digits") is not None:
            digits, spoken = match.group("digits"), False
        else:
            digits, spoken = pii.SPOKEN_DIGITS[match.group("word")] + ("00" if match.group("hundred") else ""), True
        multiplier = match.group("mult")
        if multiplier:
            if len(digits) != 1:
                yield pii._Token(match.start("digits" if not spoken else "word"), match.end(), digits, spoken)
                continue
            digits *= 2 if multiplier == "double" else 3
        yield pii._Token(match.start(), match.end(), digits, spoken)


def _full_numbers(text: str) -> tuple[pii._Number, ...]:
    numbers: list[pii._Number] = []
    tokens: list[pii._Token] = []
    gaps: list[str] = []
    for token in _full_tokens(text):
        if tokens:
            gap = text[tokens[-1].end : token.start]
            if len(gap) <= pii.MAX_GAP_CHARS and pii._GAP.fullmatch(gap):
                tokens.append(token)
                gaps.append(gap)
                continue
            numbers.append(pii._Number(tuple(tokens), tuple(gaps)))
            tokens, gaps = [], []
        tokens.append(token)
    if tokens:
        numbers.append(pii._Number(tuple(tokens), tuple(gaps)))
    return tuple(_full_trim_interjections(text, number) for number in numbers)


def _full_trim_interjections(text: str, number: pii._Number) -> pii._Number:
    first, last = 0, len(number.tokens) - 1

    def interjection(i: int, neighbour: int) -> bool:
        token = number.tokens[i]
        return text[token.start : token.end].lower() == "oh" and not number.tokens[neighbour].spoken

    while first < last and interjection(first, first + 1):
        first += 1
    while last > first and interjection(last, last - 1):
        last -= 1
    return number.part(first, last)


def _full_classify(source: pii._Text, number: pii._Number) -> Iterator[Detection]:
    card = pii._card_run(number)
    if card is not None:
        first, last = card
        part = number.part(first, last)
        yield pii._span(source.text, PiiKind.card, part, part.digits)
        if first > 0:
            yield from _full_classify(source, number.part(0, first - 1))
        if last < len(number.tokens) - 1:
            yield from _full_classify(source, number.part(last + 1, len(number.tokens) - 1))
        return
    for piece in pii._sentences(number):
        yield from _full_classify_rest(source, piece)


def _full_classify_rest(source: pii._Text, number: pii._Number) -> Iterator[Detection]:
    text = source.text
    digits = number.digits
    count = len(digits)
    start = pii._extended_start(text, number.start)
    before, after = text[:start], text[number.end :]
    if pii._CURRENCY_BEFORE.search(before) or pii._UNIT_AFTER.match(after) or before.endswith(("@", "#")):
        return
    content = source.cue_distance(start, pii._CONTENT_CUE, pii.CONTENT_CUE_WINDOW_CHARS)

    def cued(cue: pii.re.Pattern[str]) -> bool:
        distance = source.cue_distance(start, cue)
        return distance is not None and (content is None or distance < content)

    # Dotted groups are a version unless a cue names them ("my social is 123.45.6789", "the CVV is 7.3.7").
    if pii._version_like(number) and not (
        cued(pii._SSN_CUE) or _full_id_cued(source, start) or source.has_cue(start, pii._CVV_CUE, 30)
    ):
        return

    if count == pii.SSN_DIGITS and (
        (pii._plausible_ssn(digits) and ((pii._ssn_shaped(number) and content is None) or cued(pii._SSN_CUE)))
        or pii._nearer(source, start, pii._SSN_CUE, pii._ROUTING_CUE)
    ):
        yield pii._span(text, PiiKind.ssn, number, digits, start)
    elif count == pii.ROUTING_DIGITS and pii.aba_valid(digits) and cued(pii._ROUTING_CUE):
        yield pii._span(text, PiiKind.account, number, digits, start)
    elif (pii.ID_MIN_DIGITS <= count <= pii.ID_MAX_DIGITS and _full_id_cued(source, start)
          and not pii._date_like(text, number)):
        yield pii._span(text, PiiKind.id_document, number, digits, start)
    elif pii.CVV_DIGITS[0] <= count <= pii.CVV_DIGITS[1] and source.has_cue(start, pii._CVV_CUE, 30):
        yield pii._span(text, PiiKind.cvv, number, digits, start)
    elif pii.CARD_CUED_MIN_DIGITS <= count <= pii.CARD_MAX_DIGITS and cued(pii._CARD_CUE) and not cued(
        pii._ACCOUNT_CUE
    ):
        yield pii._span(text, PiiKind.card, number, digits, start)
    elif pii.ACCOUNT_MIN_DIGITS <= count <= pii.ACCOUNT_MAX_DIGITS and pii._nearer(
        source, start, pii._ACCOUNT_CUE, pii._PHONE_CUE
    ):
        yield pii._span(text, PiiKind.account, number, digits, start)
    elif pii._is_phone(text, start, digits, cued(pii._PHONE_CUE) or pii._spoken_long(number), content is not None):
        yield pii._span(text, PiiKind.phone, number, digits[-pii.NANP_DIGITS :], start)
    elif pii.ACCOUNT_MIN_DIGITS <= count <= pii.ACCOUNT_MAX_DIGITS and (
        cued(pii._ACCOUNT_CUE) or cued(pii._ROUTING_CUE)
    ):
        yield pii._span(text, PiiKind.account, number, digits, start)


def _full_detect_turns(texts: Sequence[str], *, names: bool) -> list[list[Detection]]:
    numbers = [_full_numbers(text) for text in texts]
    found = [
        list(_full_detect(pii._text_of_turn(texts, i), numbers[i], names=names))
        for i, text in enumerate(texts)
    ]
    own = [_full_resolve_overlaps(detections) for detections in found]
    for turn, detection in pii._cross_turn_cards(texts, numbers):
        # A turn's own SSN keeps its digits from a card read across turns (the rule of `detect_turns`).
        if not any(kept.kind is PiiKind.ssn and kept.start <= detection.start and detection.end <= kept.end
                   for kept in own[turn]):
            found[turn].append(detection)
    return [_full_resolve_overlaps(detections) for detections in found]


CUES = ["card", "visa", "account", "checking", "routing", "social security", "ssn", "phone", "call me at",
        "my number", "cvv", "security code", "expires", "exp", "born", "date of birth", "address", "I live at",
        "ship to", "order", "ticket", "case", "zip", "$", "#", "@", "at", "dot", "iban", "dollars", "percent",
        "my name is", "this is", "passport", "driver's license", "ID card", "national insurance", "nino"]
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero", "oh", "double",
         "triple", "hundred", "uh", "and then", "dash", "slash", "okay", "so", "Main", "Street", "St.", "Ave",
         "March", "Jan.", "the", "of", "14th", "thank you", "Jane", "Roe", "jane.roe@example.com",
         "jane at example dot com",
         "GB82 WEST 1234 5698 7654 32",
         "C01X00T47", "AB", "D1234-56789", "X1", "9Z",
         "DE89370400440532013000", "1.0.65", "+44", "(555)", "-", ".", ",", "/",
         "\u00a0", "\u200b", "\n"]
# Digit runs of every length a kind has (and around), ASCII and other scripts' decimal digits.
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=20) | st.sampled_from(
    ["4111111111111111", "5500 0000 0000 0004", "123-45-6789", "021000021", "4111", "03/14/1985", "1985-03-14",
     "\u0663\u0664\u0665", "\uff11\uff12\uff13\uff14", "12/27", "742", "1234", "(415) 555-2671", "00442071838750"]
)
PIECE = st.sampled_from(CUES) | st.sampled_from(WORDS) | DIGITS | st.text(max_size=6)
TURN = st.lists(PIECE, max_size=14).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TURN, min_size=1, max_size=6), names=st.booleans())
def test_the_shortcuts_find_what_the_full_searches_find(texts: list[str], names: bool) -> None:
    assert pii.detect_turns(texts, names=names) == _full_detect_turns(texts, names=names)


def test_the_generated_turns_reach_every_kind() -> None:
    """The comparison above is worth something only if the full searches find each kind in such turns."""
    turns = [
        "it expires 12/27", "my card is 4111 1111 1111 1111", "social security 123-45-6789", "routing 021000021",
        "account 12345678", "call me at 415 555 2671", "cvv 742", "I was born March 14th, 1985",
        "I live at 742 Evergreen Terrace", "jane.roe@example.com", "iban GB82 WEST 1234 5698 7654 32",
        "my name is Jane Roe", "my passport number is C01X00T47",
    ]
    kinds = {detection.kind for found in _full_detect_turns(turns, names=True) for detection in found}
    assert kinds == set(PiiKind)
    assert pii.detect_turns(turns, names=True) == _full_detect_turns(turns, names=True)


def test_dates_and_streets_written_in_other_scripts_digits_are_still_searched() -> None:
    turns = ["I was born \u0661\u0664/\u0660\u0663/\u0661\u0669\u0668\u0665",  # Arabic-Indic digits
             "I live at \u0667\u0664\u0662 Evergreen Terrace"]
    found = pii.detect_turns(turns)
    assert [[detection.kind for detection in turn] for turn in found] == [[PiiKind.dob], [PiiKind.address]]
    assert found == _full_detect_turns(turns, names=False)


# Letters that Python's case-insensitive matching takes for ASCII ones ("ſ" for "s", the Kelvin sign for "k",
# dotted and dotless "i"), and other non-ASCII text: the word shortcuts must leave such texts to the patterns.
CASE_TRAPS = ["\u017f", "\u212a", "\u0130", "\u0131", "\u00e9", "\u2019", "\U0001f600", "\uff21", "\u00df"]
CUE_SPELLINGS = [
    "exp", "Exp.", "EXPIRES", "expiry", "expiration", "valid thru", "Valid Through", "valid until", "good thru",
    "GOOD THROUGH", "date of birth", "birth date", "Birthdate", "birthday", "DOB", "d.o.b.", "d.ob", "do.b",
    "born", "Born on", "address", "live", "Living", "lives", "ship", "shipped", "send", "sent", "mail",
    "deliver", "Delivered", "located", "reside", "moved", "at", "AT", "at sign", "@", "dot", "DOT", ".",
]
CUE_TEXT = st.lists(
    st.sampled_from(CUE_SPELLINGS) | st.sampled_from(CASE_TRAPS) | st.text(alphabet="exiprvaldgothbnsmkEXIPRS .",
                                                                         max_size=8),
    max_size=10,
).map(lambda pieces: "".join(f"{piece} " if i % 2 else piece for i, piece in enumerate(pieces)))
CUES_AND_WORDS = [
    (pii._DOB_CUE, pii._DOB_CUE_WORDS),
    (pii._EXPIRY_CUE, pii._EXPIRY_CUE_WORDS),
    (pii._ADDRESS_CUE, pii._ADDRESS_CUE_WORDS),
]


@settings(max_examples=500, deadline=None)
@given(text=CUE_TEXT)
def test_a_cue_found_by_its_words_is_a_cue_found_by_its_pattern(text: str) -> None:
    for cue, words in CUES_AND_WORDS:
        assert pii._cue_in(text, cue, words) == (cue.search(text) is not None)


@pytest.mark.parametrize(("cue", "words"), CUES_AND_WORDS, ids=["dob", "expiry", "address"])
def test_every_text_a_cue_pattern_matches_holds_one_of_its_words(cue: re.Pattern[str], words: tuple[str, ...]) -> None:
    """The word lists are kept by hand beside their patterns: texts generated from each pattern itself (any
    of its alternatives, any mix of case) catch a spelling the pattern gained and its list did not."""

    @settings(max_examples=400, deadline=None)
    @given(text=st.from_regex(cue))
    def holds_a_word(text: str) -> None:
        assert pii._cue_in(text, cue, words) == (cue.search(text) is not None)

    holds_a_word()


# Python's case-insensitive matching takes each of these for the ASCII letter (but `str.lower` does not).
LOOKALIKES = {"i": ["\u0130", "\u0131"], "s": ["\u017f"], "k": ["\u212a"]}


@pytest.mark.parametrize("spelling", CUE_SPELLINGS)
def test_every_spelling_of_a_cue_is_found(spelling: str) -> None:
    texts = [spelling, f"I {spelling} it", spelling.upper(), f"{spelling}\u017f"]
    texts += [spelling.replace(letter, other) for letter, others in LOOKALIKES.items() for other in others]
    for text in texts:
        for cue, words in CUES_AND_WORDS:
            assert pii._cue_in(text, cue, words) == (cue.search(text) is not None)


def test_a_lookalike_letter_is_left_to_the_pattern() -> None:
    """Why only ASCII text is judged by its words: "b\u0131rth" (dotless i) is a cue to the pattern."""
    assert pii._DOB_CUE.search("b\u0131rth date") is not None
    assert pii._cue_in("b\u0131rth date", pii._DOB_CUE, pii._DOB_CUE_WORDS)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=())) | CUE_TEXT)
def test_the_lower_cased_copy_lowers_a_to_z_only(text: str) -> None:
    """Also for text with lone surrogates (`blacklist_categories=()` lets them in)."""
    assert pii._ascii_lowered(text) == text.translate(_FULL_ASCII_LOWER)


@pytest.mark.parametrize("text", ["ONE \ud83d TWO", "Four\udc00", "\u0130ONE \u212a\u017f TWO", "ÉCHO \U0001f600 Nine"])
def test_the_lower_cased_copy_keeps_every_other_character(text: str) -> None:
    assert pii._ascii_lowered(text) == text.translate(_FULL_ASCII_LOWER)


EMAIL_PIECES = [
    "jane", "Jane.Roe", "j_roe", "at", "AT", "at sign", "@", "dot", "DOT", ".", "com", "Co", "io", "me", "example",
    "Example", "mail-box", "x@Y.co", "Jane@Gmail.COM", "gmail", "underscore", "plus", "@AppleSupport", "look",
    "\u017f", "\u212a",
]


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(st.sampled_from(EMAIL_PIECES) | st.text(alphabet="ab.@- \n", max_size=4), max_size=12),
       spaced=st.lists(st.booleans(), min_size=12, max_size=12))
def test_an_email_pattern_matches_only_where_its_domain_part_does(pieces: list[str], spaced: list[bool]) -> None:
    text = "".join(piece + (" " if space else "") for piece, space in zip(pieces, spaced, strict=False))
    if pii._EMAIL.search(text) is not None:
        assert pii._EMAIL_DOMAIN.search(text) is not None
    if pii._SPOKEN_EMAIL.search(text) is not None:
        assert pii._SPOKEN_EMAIL_DOMAIN.search(text) is not None
    assert list(pii._emails(text)) == list(_full_emails(text))


IBAN_PIECES = ["GB82 WEST 1234 5698 7654 32", "gb82west12345698765432", "DE89370400440532013000", "iban", "NL",
               "XK051212012345678906", "zz12 3456 7890 1234 5", "\u017f\u212a12", "AB", "1", "12", "123", "a1",
               "\u0661\u0662", "x"]


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(st.sampled_from(IBAN_PIECES) | st.text(alphabet="aZ19 ", max_size=5), max_size=8))
def test_an_iban_is_searched_for_only_where_one_can_begin(pieces: list[str]) -> None:
    text = "".join(pieces)
    if pii._IBAN.search(text) is not None:
        assert pii._IBAN_START.search(text) is not None
    assert list(pii._ibans(text)) == list(_full_ibans(text))


@pytest.mark.parametrize("text", [*IBAN_PIECES, "my iban is XK05 1212 0123 4567 8906 thanks"])
def test_each_iban_piece_is_searched_as_before(text: str) -> None:
    assert (pii._IBAN.search(text) is None) or (pii._IBAN_START.search(text) is not None)
    assert list(pii._ibans(text)) == list(_full_ibans(text))


def _real_calls() -> Iterator[list[str]]:
    """Every call of the shared real transcripts (Harper Valley's human and ASR texts, TweetSumm, ABCD's
    sample), as its turns' texts, and each labeled row of the PII benchmark (with its previous turn)."""
    harper_valley = require_shared_data("harper_valley_bank")
    for call in read_harper_valley(harper_valley):
        for source in ("human", "asr"):
            yield [text for segment in call.segments if (text := segment.text(source)).strip()]
    for record in read_tweetsumm(require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl")):
        yield [turn["text"] for turn in record["turns"]]
    for conversation in json.loads(require_shared_data("abcd", "abcd_sample.json").read_text(encoding="utf-8")):
        yield [str(said).strip() for speaker, said in conversation["original"] if speaker in ("agent", "customer")]
    for split in ("dev", "heldout"):
        for line in (PII_BENCH / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                yield [row["previous"], row["text"]] if "previous" in row else [row["text"]]


def test_every_real_turn_gets_what_the_full_searches_find() -> None:
    calls = list(_real_calls())
    found = 0
    for texts in calls:
        for names in (False, True):
            shortcut = pii.detect_turns(texts, names=names)
            assert shortcut == _full_detect_turns(texts, names=names), texts
            found += sum(len(turn) for turn in shortcut)
    # The comparison covers a good deal of personal data, not only turns without any.
    assert len(calls) > 1000
    assert found > 300
