"""Personal data redaction for the LLM's view of a call.

Before a transcript leaves the process, card numbers, social security numbers, dates of birth,
email addresses and phone numbers are replaced by placeholders such as `[CARD_1]`. The same value
gets the same placeholder throughout the call, so the model can still say "the card ending ..."
consistently. The stored transcript is never changed: `RedactionMap.restore_extraction` puts the
original text back into evidence quotes (so they verify against the stored transcript) and leaves
claim texts with their placeholders (so a summary never repeats a card number).

Detection is deliberately conservative where a false positive would hide call content: bare
nine-digit numbers count as SSNs, and dates as dates of birth, only next to words that say so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.schemas.transcript import Transcript, Utterance


class PiiKind(StrEnum):
    card = "CARD"
    ssn = "SSN"
    dob = "DOB"
    email = "EMAIL"
    phone = "PHONE"


# Payment card numbers (ISO/IEC 7812) have 13 to 19 digits.
CARD_MIN_DIGITS = 13
CARD_MAX_DIGITS = 19
SSN_DIGITS = 9
# E.164 numbers have at most 15 digits; shorter than 7 is an extension or an amount, not a phone.
PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15
# How far before a number or date (in characters) a cue such as "social security" or "born" counts.
CONTEXT_WINDOW_CHARS = 60
# Agents ask, customers answer ("Can you confirm your date of birth?" / "Sure, it's March 4th,
# 1985."): a value early in a turn also sees this much of the end of the previous turn as context.
PREVIOUS_TURN_CONTEXT_CHARS = 120
# Spoken digit runs shorter than this are quantities ("two or three"), not identifiers.
SPOKEN_RUN_MIN_DIGITS = 7

# When two detections overlap, the kind listed first wins.
_PRIORITY = (PiiKind.email, PiiKind.card, PiiKind.ssn, PiiKind.dob, PiiKind.phone)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Runs of digit groups joined by single spaces, dashes or dots: "4111 1111 1111 1111", "4111.1111...".
_DIGIT_GROUPS = re.compile(r"(?<![\d-])\d+(?:[ .-]\d+)*(?![\d])")
_GROUP = re.compile(r"\d+")
_SSN_SHAPED = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
_BARE_NINE = re.compile(r"(?<![\d-])\d{9}(?![\d-])")
_SSN_CUE = re.compile(r"\b(?:social security|social|ssn|s\.s\.n\.?|tax id|taxpayer)\b", re.IGNORECASE)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = re.compile(
    r"\b(?:"
    r"\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})"  # 03/14/1985, 14.03.85
    r"|\d{4}-\d{1,2}-\d{1,2}"  # 1985-03-14
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"  # March 14th, 1985
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}"  # 14th of March 1985
    r")\b",
    re.IGNORECASE,
)
_DOB_CUE = re.compile(
    r"\b(?:date of birth|birth ?date|birthday|d\.?o\.?b\.?|born(?: on)?)\b", re.IGNORECASE
)
# A phone is a whole run of digit groups: never a slice of a longer one (a card failing Luhn).
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:"
    r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])?\d{3,4}[ .-]?\d{3,4}"  # grouped
    r"|\+?\d{10,15}"  # contiguous
    r")(?![ .-]?\d)(?!\w)"
)
_PHONE_CUE = re.compile(r"\b(?:phone|number|call|reach|cell|mobile|extension|ext)\b", re.IGNORECASE)
# A full number (area code included) is a phone wherever it appears; a shorter local one such
# as 555-0199 only next to a cue, since order and ticket numbers share that shape.
PHONE_CUE_FREE_MIN_DIGITS = 10
_SPOKEN_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_SPOKEN_DIGIT = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d)"
_SPOKEN_RUN = re.compile(
    rf"\b{_SPOKEN_DIGIT}(?:[\s,.-]+{_SPOKEN_DIGIT})+\b", re.IGNORECASE
)
StatementT = TypeVar("StatementT", bound=Statement)

_PLACEHOLDER = re.compile(r"\[(" + "|".join(kind.value for kind in PiiKind) + r")_(\d+)\]")


@dataclass(frozen=True)
class _Detection:
    kind: PiiKind
    start: int
    end: int
    value: str  # normalized identity: same value, same placeholder

    def overlaps(self, other: _Detection) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass
class RedactionMap:
    """Which placeholder stands for which original text, per utterance."""

    # (utterance index, placeholder) -> original surface texts, in order of appearance
    _surfaces: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    # placeholder -> first original surface anywhere in the call
    _first_surface: dict[str, str] = field(default_factory=dict)
    # (kind, normalized value) -> placeholder
    _placeholders: dict[tuple[PiiKind, str], str] = field(default_factory=dict)
    _next_number: dict[PiiKind, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._first_surface)

    @property
    def placeholders(self) -> dict[str, str]:
        """Each placeholder and the first original text it replaced."""
        return dict(self._first_surface)

    def counts(self) -> dict[str, int]:
        """How many distinct values of each kind were redacted (safe to log)."""
        totals: dict[str, int] = {}
        for kind, _ in self._placeholders:
            totals[kind.value] = totals.get(kind.value, 0) + 1
        return totals

    def restore_text(self, text: str, utterance: int | None = None) -> str:
        """`text` with every known placeholder replaced by its original.

        With `utterance`, the original as written in that utterance is preferred (the same card
        may be written "4111 1111 ..." in one line and "4111-1111-..." in another).
        """

        def original(match: re.Match[str]) -> str:
            placeholder = match.group(0)
            if utterance is not None:
                surfaces = self._surfaces.get((utterance, placeholder))
                if surfaces:
                    return surfaces[0]
            return self._first_surface.get(placeholder, placeholder)

        return _PLACEHOLDER.sub(original, text)

    def restore_extraction(self, extraction: Extraction) -> Extraction:
        """Originals back into evidence quotes; claim texts keep their placeholders."""
        if not self._first_surface:
            return extraction
        return extraction.model_copy(
            update={
                "summary": [self._restore_statement(s) for s in extraction.summary],
                "action_items": [self._restore_statement(a) for a in extraction.action_items],
                "reason": self._restore_statement(extraction.reason) if extraction.reason else None,
                "outcome": self._restore_statement(extraction.outcome) if extraction.outcome else None,
            }
        )

    def _restore_statement(self, statement: StatementT) -> StatementT:
        evidence = [
            EvidenceRef(utterance=ref.utterance, quote=self.restore_text(ref.quote, ref.utterance))
            for ref in statement.evidence
        ]
        return statement.model_copy(update={"evidence": evidence})

    def _placeholder_for(self, kind: PiiKind, value: str) -> str:
        key = (kind, value)
        placeholder = self._placeholders.get(key)
        if placeholder is None:
            number = self._next_number.get(kind, 0) + 1
            self._next_number[kind] = number
            placeholder = f"[{kind.value}_{number}]"
            self._placeholders[key] = placeholder
        return placeholder

    def _record(self, utterance: int, placeholder: str, surface: str) -> None:
        self._surfaces.setdefault((utterance, placeholder), []).append(surface)
        self._first_surface.setdefault(placeholder, surface)


def redact_transcript(transcript: Transcript) -> tuple[Transcript, RedactionMap]:
    """A copy of `transcript` with personal data replaced by placeholders, and the way back."""
    redaction = RedactionMap()
    utterances: list[Utterance] = []
    previous_text = ""
    for utterance in transcript.utterances:
        text = redact_text(utterance.text, redaction, utterance.index, lead_in=previous_text)
        previous_text = utterance.text
        utterances.append(utterance if text == utterance.text else utterance.model_copy(update={"text": text}))
    return transcript.model_copy(update={"utterances": utterances}), redaction


def redact_text(text: str, redaction: RedactionMap, utterance: int = 0, *, lead_in: str = "") -> str:
    """`text` with each detection replaced by its placeholder, recorded in `redaction`.

    `lead_in` is the previous turn, searched for cues ("date of birth?") by values early in `text`.
    """
    detections = _resolve_overlaps(_detect(_Text(text, lead_in[-PREVIOUS_TURN_CONTEXT_CHARS:])))
    if not detections:
        return text
    pieces: list[str] = []
    cursor = 0
    for detection in detections:
        surface = text[detection.start : detection.end]
        placeholder = redaction._placeholder_for(detection.kind, detection.value)
        redaction._record(utterance, placeholder, surface)
        pieces.extend((text[cursor : detection.start], placeholder))
        cursor = detection.end
    pieces.append(text[cursor:])
    return "".join(pieces)


# ---------------------------------------------------------------------------------------------
# Detectors


@dataclass(frozen=True)
class _Text:
    """An utterance's text and the tail of the turn before it (for cue words only)."""

    text: str
    lead_in: str

    def has_cue(self, start: int, cue: re.Pattern[str]) -> bool:
        """A cue word within `CONTEXT_WINDOW_CHARS` before `start`, or in the previous turn's end
        when `start` is that close to the beginning of this one."""
        if cue.search(self.text, max(0, start - CONTEXT_WINDOW_CHARS), start) is not None:
            return True
        return start <= CONTEXT_WINDOW_CHARS and cue.search(self.lead_in) is not None


def _detect(source: _Text) -> Iterator[_Detection]:
    text = source.text
    yield from _emails(text)
    yield from _cards(text)
    yield from _ssns(source)
    yield from _dates_of_birth(source)
    yield from _phones(source)
    yield from _spoken_numbers(source)


def _resolve_overlaps(detections: Iterable[_Detection]) -> list[_Detection]:
    """Keep higher-priority, then longer, detections; drop what overlaps a kept one."""
    ranked = sorted(detections, key=lambda d: (_PRIORITY.index(d.kind), -(d.end - d.start), d.start))
    kept: list[_Detection] = []
    for candidate in ranked:
        if not any(candidate.overlaps(other) for other in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda d: d.start)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _emails(text: str) -> Iterator[_Detection]:
    for match in _EMAIL.finditer(text):
        yield _Detection(PiiKind.email, match.start(), match.end(), match.group(0).casefold())


def _cards(text: str) -> Iterator[_Detection]:
    """Card numbers written with digits, contiguous or grouped by spaces or dashes.

    Inside a longer run of groups (a card followed by its expiry date, say) the longest run of
    whole groups with 13-19 digits that passes the Luhn check is the card.
    """
    for run in _DIGIT_GROUPS.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end(), g.group(0)) for g in _GROUP.finditer(run.group(0))]
        found = _longest_luhn_run(groups)
        if found is not None:
            start, end, digits = found
            yield _Detection(PiiKind.card, start, end, digits)


def _longest_luhn_run(groups: list[tuple[int, int, str]]) -> tuple[int, int, str] | None:
    best: tuple[int, int, str] | None = None
    for first in range(len(groups)):
        digits = ""
        for last in range(first, len(groups)):
            digits += groups[last][2]
            if len(digits) > CARD_MAX_DIGITS:
                break
            if len(digits) >= CARD_MIN_DIGITS and luhn_valid(digits) and (best is None or len(digits) > len(best[2])):
                best = (groups[first][0], groups[last][1], digits)
    return best


def _plausible_ssn(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def _ssns(source: _Text) -> Iterator[_Detection]:
    text = source.text
    for match in _SSN_SHAPED.finditer(text):
        digits = "".join(match.groups())
        if _plausible_ssn(digits):
            yield _Detection(PiiKind.ssn, match.start(), match.end(), digits)
    for match in _BARE_NINE.finditer(text):
        if _plausible_ssn(match.group(0)) and source.has_cue(match.start(), _SSN_CUE):
            yield _Detection(PiiKind.ssn, match.start(), match.end(), match.group(0))


def _dates_of_birth(source: _Text) -> Iterator[_Detection]:
    for match in _DATE.finditer(source.text):
        if source.has_cue(match.start(), _DOB_CUE):
            yield _Detection(PiiKind.dob, match.start(), match.end(), match.group(0).casefold())


def _phones(source: _Text) -> Iterator[_Detection]:
    for match in _PHONE.finditer(source.text):
        surface = match.group(0)
        digits = re.sub(r"\D", "", surface)
        if not PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS:
            continue
        if len(digits) < PHONE_CUE_FREE_MIN_DIGITS and not source.has_cue(match.start(), _PHONE_CUE):
            continue
        yield _Detection(PiiKind.phone, match.start(), match.end(), digits[-10:])


def _spoken_numbers(source: _Text) -> Iterator[_Detection]:
    """Digits read out as words: "four one one one, one one one one ..." (cards, SSNs, phones)."""
    for match in _SPOKEN_RUN.finditer(source.text):
        tokens = re.findall(_SPOKEN_DIGIT, match.group(0), re.IGNORECASE)
        digits = "".join(_SPOKEN_DIGIT_WORDS.get(token.lower(), token) for token in tokens)
        if len(digits) < SPOKEN_RUN_MIN_DIGITS or all(token.isdigit() for token in tokens):
            continue  # numbers written with digits are the other detectors' job
        if CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS and luhn_valid(digits):
            kind = PiiKind.card
        elif len(digits) == SSN_DIGITS and source.has_cue(match.start(), _SSN_CUE):
            kind = PiiKind.ssn
        elif PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS:
            kind = PiiKind.phone
            digits = digits[-10:]
        else:
            continue
        yield _Detection(kind, match.start(), match.end(), digits)
