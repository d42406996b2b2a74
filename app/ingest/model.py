"""The intermediate shapes between a parser and the canonical `Transcript`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.schemas.transcript import CallMetadata, Role, Transcript

Grouping = Literal["keep", "turns", "words"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of speech exactly as a source gives it: a word, a cue, a vendor segment, a line.

    `location` names it in the source (`results.utterances[3]`, `line 12`) for error messages;
    `start_field`/`end_field` name its time fields there, when it has any.
    """

    location: str
    text: str
    speaker: str | None = None
    role: Role | None = None
    role_confidence: float | None = None
    start: float | None = None
    end: float | None = None
    start_field: str | None = None
    end_field: str | None = None

    def time_location(self, field_name: str | None) -> str:
        return f"{self.location}.{field_name}" if field_name else self.location


@dataclass(slots=True)
class SourceCall:
    """What a parser extracts from one file, before validation, grouping and role assignment."""

    segments: list[Segment]
    metadata: CallMetadata = field(default_factory=CallMetadata)
    vendor_hints: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # How segments become utterances:
    #   "keep"  - one utterance per segment (vendor utterances/segments, native JSON, text lines);
    #   "turns" - consecutive segments of the same named speaker merge into one turn (subtitle cues);
    #   "words" - word fragments join into turns, also split at long pauses.
    grouping: Grouping = "keep"
    # Authored utterances (native JSON) with no text are an error; vendor fragments with no text
    # (silence, music, redacted words) are dropped with a warning.
    reject_empty: bool = False


@dataclass(slots=True)
class ParsedTranscript:
    """The result of ingesting one file."""

    transcript: Transcript
    detected_format: str
    warnings: list[str]
