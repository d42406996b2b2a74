"""The shortcuts in `app.privacy.pii` (turns without a written digit skip the IBAN, date and street searches;
numbers of a length no kind has skip classification) find exactly what the full searches find.

The full searches are kept here as they were before the shortcuts (`_full_*`), built from the module's own
patterns and helpers, and compared with `detect_turns` on generated turns: numbers written and spoken, in
every length, next to every kind of cue, with Unicode digits, emails, IBANs, dates and street addresses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.privacy import pii
from app.privacy.pii import Detection, PiiKind


def _full_detect(source: pii._Text, numbers: Sequence[pii._Number], *, names: bool) -> Iterator[Detection]:
    text = source.text
    yield from pii._emails(text)
    ibans = list(pii._ibans(text))
    yield from ibans
    for number in numbers:
        if not any(number.start < iban.end and iban.start < number.end for iban in ibans):
            yield from _full_classify(source, number)
    yield from pii._dates_of_birth(source)
    yield from pii._expiry_dates(source)
    yield from pii._addresses(source)
    if names:
        yield from pii._names(text)


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
    if pii._version_like(number):
        return

    def cued(cue: pii.re.Pattern[str]) -> bool:
        distance = source.cue_distance(start, cue)
        return distance is not None and (content is None or distance < content)

    if count == pii.SSN_DIGITS and pii._plausible_ssn(digits) and (
        (pii._ssn_shaped(number) and content is None) or cued(pii._SSN_CUE)
    ):
        yield pii._span(text, PiiKind.ssn, number, digits, start)
    elif count == pii.ROUTING_DIGITS and pii.aba_valid(digits) and cued(pii._ROUTING_CUE):
        yield pii._span(text, PiiKind.account, number, digits, start)
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
    numbers = [pii._numbers(text) for text in texts]
    found = [
        list(_full_detect(pii._Text(text, texts[i - 1][-pii.PREVIOUS_TURN_CONTEXT_CHARS :] if i else ""), numbers[i],
                          names=names))
        for i, text in enumerate(texts)
    ]
    for turn, detection in pii._cross_turn_cards(texts, numbers):
        found[turn].append(detection)
    return [pii.resolve_overlaps(detections) for detections in found]


CUES = ["card", "visa", "account", "checking", "routing", "social security", "ssn", "phone", "call me at",
        "my number", "cvv", "security code", "expires", "exp", "born", "date of birth", "address", "I live at",
        "ship to", "order", "ticket", "case", "zip", "$", "#", "@", "at", "dot", "iban", "dollars", "percent",
        "my name is", "this is"]
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero", "oh", "double",
         "triple", "hundred", "uh", "and then", "dash", "slash", "okay", "so", "Main", "Street", "St.", "Ave",
         "March", "Jan.", "the", "of", "14th", "thank you", "Jane", "Roe", "jane.roe@example.com",
         "jane at example dot com",
         "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "1.0.65", "+44", "(555)", "-", ".", ",", "/",
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
        "my name is Jane Roe",
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
