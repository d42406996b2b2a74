"""Personal data redaction for the LLM's view of a call.

Before a transcript leaves the process, card numbers, social security numbers, bank accounts,
dates of birth, email addresses, phone numbers, CVVs, expiry dates and cued street addresses (and,
with POSTCALL_REDACT_NAMES, cued names) are replaced by placeholders such as `[CARD_1]`. What counts
as personal data, in which written and spoken forms, is decided in `app.privacy.pii`.

The same value gets the same placeholder throughout the call, so the model can still say "the card
ending ..." consistently. The stored transcript is never changed: `RedactionMap.restore_extraction`
puts the original text back into evidence quotes (so they verify against the stored transcript and
their offsets point into it) and leaves claim texts with their placeholders (so a summary never
repeats a card number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

from app.privacy.pii import Detection, PiiKind, TurnScan, detect, luhn_valid, scan_turns
from app.schemas.extraction import EvidenceRef, Extraction, Statement
from app.schemas.transcript import Transcript, Utterance

__all__ = ["PiiKind", "RedactionMap", "luhn_valid", "redact_text", "redact_transcript"]

StatementT = TypeVar("StatementT", bound=Statement)

_PLACEHOLDER = re.compile(r"\[(" + "|".join(kind.value for kind in PiiKind) + r")_(\d+)\]")


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
    # The detectors' pass over the transcript this map redacted (`redact_transcript`), for its masking.
    scan: TurnScan | None = None

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


def redact_transcript(transcript: Transcript, *, names: bool = False) -> tuple[Transcript, RedactionMap]:
    """A copy of `transcript` with personal data replaced by placeholders, and the way back.

    Turns are read together: a cue in one turn counts for the answer in the next, and a card number
    read out across two turns is found in both. The detectors' pass is kept (`RedactionMap.scan`): the
    masking of what is stored reads the same turns and takes it rather than scanning them again.
    """
    scan = scan_turns([u.text for u in transcript.utterances], names=names)
    redaction = RedactionMap(scan=scan)
    found = scan.resolved()
    utterances: list[Utterance] = []
    for utterance, detections in zip(transcript.utterances, found, strict=True):
        text = _apply(utterance.text, detections, redaction, utterance.index)
        utterances.append(utterance if text == utterance.text else utterance.model_copy(update={"text": text}))
    return transcript.model_copy(update={"utterances": utterances}), redaction


def redact_text(
    text: str, redaction: RedactionMap, utterance: int = 0, *, lead_in: str = "", names: bool = False
) -> str:
    """`text` with each detection replaced by its placeholder, recorded in `redaction`.

    `lead_in` is the previous turn, searched for cues ("date of birth?") by values early in `text`.
    """
    return _apply(text, detect(text, lead_in, names=names), redaction, utterance)


def _apply(text: str, detections: list[Detection], redaction: RedactionMap, utterance: int) -> str:
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
