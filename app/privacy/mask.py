"""What a reviewer without the `view_pii` permission sees: identifiers masked, length kept.

Card numbers, SSNs and bank account numbers keep their last four digits ("•••• •••• •••• 1111");
dates of birth and CVVs are masked whole. Every masked character becomes one "•", and separators
stay, so a masked text has exactly the length of the original: evidence offsets (code points into
the stored utterance) slice the masked text at the same places, and highlighting still lines up.
Phone numbers, emails and addresses stay visible: reviewers call customers back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from app.privacy.pii import Detection, PiiKind, TurnScan, detect, detect_turns, has_written_digit, number_tokens

MASK_CHAR = "•"
MASKED_KINDS = frozenset({PiiKind.card, PiiKind.ssn, PiiKind.account, PiiKind.id_document, PiiKind.dob, PiiKind.cvv})
KEEP_LAST_DIGITS = {PiiKind.card: 4, PiiKind.ssn: 4, PiiKind.account: 4}


def mask_text(text: str, lead_in: str = "") -> str:
    """`text` with its masked kinds masked (`lead_in`: the previous turn, for cues); where detections
    overlap, what any of them masks is masked (a date of birth that also reads as a phone number)."""
    return apply_mask(text, detect(text, lead_in, resolve=False))


# An error stored on a call or a run is cut to this many characters (a provider's error body can be long).
MAX_ERROR_CHARS = 2_000


def stored_error(message: str) -> str:
    """An error message as it is stored on a call (`last_error`) or a run (`error`): masked as every text
    readers see is (a provider's error can echo the request, and with it a transcript's card number or SSN;
    the error reaches the `call.failed` record, the API, the call page and the analyst views), then cut to
    `MAX_ERROR_CHARS`. Only what is kept is masked (with a margin, so a number cut at the edge is whole
    while masked): detection grows faster than the text, and an error can be megabytes long."""
    return mask_text(message[:MAX_ERROR_CHARS + _ERROR_MASK_MARGIN])[:MAX_ERROR_CHARS]


# Longer than any number the detectors mask (a card, an IBAN, an account read out digit by digit).
_ERROR_MASK_MARGIN = 200


def nothing_to_mask(text: str) -> bool:
    """True when `text` holds nothing `mask_text` would mask, told without running the detectors: every
    masked kind is found in a number (a card, SSN, account or CVV is a run of digits or digit words, an
    IBAN has digits, a date of birth is a date written with digits), so a text with neither a digit nor a
    digit word has none, and `mask_text` returns it unchanged. Most claim texts are such texts."""
    return not has_written_digit(text) and next(number_tokens(text), None) is None


def mask_turns(texts: Sequence[str]) -> list[str]:
    """Each turn masked, reading the turns together (cues and card numbers across turns); where detections
    overlap, what any of them masks is masked."""
    return [apply_mask(text, found) for text, found in zip(texts, detect_turns(texts, resolve=False), strict=True)]


def apply_mask(text: str, detections: Sequence[Detection]) -> str:
    masked = [d for d in detections if d.kind in MASKED_KINDS]
    if not masked:
        return text
    chars = list(text)
    for detection in masked:
        keep = _kept_positions(text, detection, KEEP_LAST_DIGITS.get(detection.kind, 0))
        for position in range(detection.start, detection.end):
            if chars[position].isalnum() and position not in keep:
                chars[position] = MASK_CHAR
    return "".join(chars)


def _kept_positions(text: str, detection: Detection, digits: int) -> set[int]:
    """Positions of the characters that say the last `digits` digits ("1111", or "one one one one")."""
    if digits == 0 or not detection.ends_value:
        # A part of a number read over several turns that does not end it keeps nothing, even when its digits
        # equal the last ones ("4111 / 1111 / 1111 / 1111": the middle "1111"s showed).
        return set()
    segment = text[detection.start : detection.end]
    tokens = list(number_tokens(segment))
    if not detection.value.endswith("".join(value for _, _, value in tokens)):
        return set()  # the first half of a number read across two turns: its end is not the number's end
    kept: set[int] = set()
    remaining = digits
    for start, end, value in reversed(tokens):
        if remaining <= 0:
            break
        if len(value) > remaining and end - start == len(value):  # a written group: keep its tail only
            kept.update(range(detection.start + end - remaining, detection.start + end))
            remaining = 0
            break
        kept.update(range(detection.start + start, detection.start + end))
        remaining -= len(value)
    return kept


def mask_utterances(originals: Mapping[int, str]) -> dict[int, str]:
    """A call's utterances by index, masked together (`mask_turns`: cues and numbers across turns)."""
    return dict(zip(originals, mask_turns(list(originals.values())), strict=True))


def masked_copy(stored: str | None, original: str) -> str:
    """A text's stored masked copy (`claims.text_masked`, `evidence.quote_masked`), or the original masked
    now where a row holds none (the columns are nullable)."""
    return stored if stored is not None else mask_text(original)


def masked_span(
    quote: str, utterance: int | None, start: int | None, end: int | None,
    originals: Mapping[int, str], masked: Mapping[int, str],
) -> str | None:
    """A quote that is exactly its utterance's span, shown as the same span of the masked utterance (masked
    with the whole call: cues and numbers across turns), so the quote and the highlighted transcript
    agree; None for any other quote."""
    if utterance is None or start is None or end is None:
        return None
    original, shown = originals.get(utterance), masked.get(utterance)
    if original is None or shown is None or original[start:end] != quote:
        return None
    return shown[start:end]


def _shape(value: str) -> str:
    """A pattern of every text written like `value`: each digit any digit, each letter any letter, the rest
    as it is ("03/04/1985": two digits, a slash, two digits, a slash, four digits)."""
    return "".join(r"\d" if character.isdigit() else r"[^\W\d_]" if character.isalpha() else re.escape(character)
                   for character in value)


class CallMasks:
    """Masked copies of one call's quotes, as every reader sees them. A quote that is its utterance's span
    is that span of the call's masked utterances (`mask_turns`, run once, on the first quote that may hold
    something to mask): masked on its own, "It's 03/04/1985." after "Can you confirm your date of birth?"
    would keep the date, which the call page masks."""

    def __init__(self, utterances: Mapping[int, str], *, scan: TurnScan | None = None) -> None:
        self._originals = utterances
        # The detectors' pass over these utterances, when the pipeline has made it for redaction already.
        self._scan = scan
        self._masked: dict[int, str] | None = None
        self._values: list[tuple[re.Pattern[str], str]] | None = None
        self._shapes: list[tuple[re.Pattern[str], str]] | None = None

    @property
    def utterances(self) -> dict[int, str]:
        """The call's utterances masked together, by index (computed once)."""
        if self._masked is None:
            self._mask()
        assert self._masked is not None
        return self._masked

    def _mask(self) -> None:
        texts = list(self._originals.values())
        scan = self._scan if self._scan is not None and self._scan.scanned(texts, names=False) else None
        found = scan.unresolved() if scan is not None else detect_turns(texts, resolve=False)
        masked = [apply_mask(text, detections) for text, detections in zip(texts, found, strict=True)]
        self._masked = dict(zip(self._originals, masked, strict=True))
        # What the call's masking hides, as written and as shown: "03/04/1985" masked after "can you
        # confirm your date of birth?", "5500 0000" the first half of a card read across two turns.
        values: dict[str, str] = {}
        for text, shown, detections in zip(texts, masked, found, strict=True):
            for detection in detections:
                written = text[detection.start : detection.end].strip()
                if detection.kind in MASKED_KINDS and written and has_written_digit(written):
                    start = text.index(written, detection.start)
                    values.setdefault(written, shown[start : start + len(written)])
        hidden = [(written, shown) for written, shown in sorted(values.items(), key=lambda item: -len(item[0]))
                  if shown != written]
        self._values = [(re.compile(rf"(?<!\w){re.escape(written)}(?!\w)"), shown) for written, shown in hidden]
        self._shapes = [(re.compile(rf"(?<!\w){_shape(written)}(?!\w)"), shown) for written, shown in hidden]

    def text(self, text: str, *, by_shape: bool = False) -> str:
        """A text written about the call (a claim, a due phrase, a case note) masked as the call's transcript
        is: on its own (`mask_text`), and wherever it repeats a value the transcript's masking hid with the
        help of another turn ("they want to say 03/04/1985" of a date of birth asked for the turn before).

        `by_shape`, for a text written by someone who may not see those values (a reviewer without
        `view_pii`): every value written like a hidden one is masked, equal or not ("03/04/1984" as much as
        "03/04/1985"): masked only when equal, the stored text (and the check of an edit) told the writer
        whether a guess was the hidden value, one request per guess."""
        if nothing_to_mask(text):
            return text
        masked = mask_text(text)
        if self._values is None:
            self._mask()
        assert self._values is not None
        assert self._shapes is not None
        patterns = self._shapes if by_shape else self._values
        if not patterns:
            return masked
        chars = list(masked)
        for pattern, shown in patterns:
            for match in pattern.finditer(text):
                for offset, character in enumerate(shown):
                    if character == MASK_CHAR:
                        chars[match.start() + offset] = MASK_CHAR
        return "".join(chars)

    def quote(self, quote: str, utterance: int | None, start: int | None, end: int | None) -> str:
        if nothing_to_mask(quote):
            return quote
        span = masked_span(quote, utterance, start, end, self._originals, self.utterances)
        return span if span is not None else mask_text(quote)
