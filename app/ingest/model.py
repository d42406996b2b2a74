"""The intermediate shapes between a parser and the canonical `Transcript`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.schemas.transcript import CallMetadata, Role, Transcript

Grouping = Literal["keep", "turns", "words"]
# The unit of a format's numeric time fields.
TimeUnit = Literal["seconds", "milliseconds"]


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
    # The metadata fields a free-text header filled (`{"external_id": "Call ID"}`: field -> the key as
    # written), which a caller's explicit value overrides (`ParsedTranscript.prefer_explicit`).
    from_header: dict[str, str] = field(default_factory=dict)
    # Authored utterances (native JSON) with no text are an error; vendor fragments with no text
    # (silence, music, redacted words) are dropped with a warning.
    reject_empty: bool = False


@dataclass(slots=True)
class ParsedTranscript:
    """The result of ingesting one file."""

    transcript: Transcript
    detected_format: str
    warnings: list[str]
    # The metadata fields read from a plain-text header (field -> key as written): less authoritative than a
    # format's own fields, so an explicit value given by the caller (API query, CLI option) wins over them.
    from_header: dict[str, str] = field(default_factory=dict)

    def prefer_explicit(self, name: str, value: str, *, given_as: str) -> bool:
        """Give metadata field `name` the caller's explicit `value` when the transcript has none, the same, or
        one read from a plain-text header (then with a warning naming the header value overridden). False,
        changing nothing, when the format's own field holds another value: the caller must say which wins."""
        current = getattr(self.transcript.metadata, name)
        if current is not None and current.strip() == value.strip():
            return True
        if current is not None and name not in self.from_header:
            return False
        if current is not None:
            self.warnings.append(f"the header's {self.from_header[name]} {current!r} was overridden by "
                                 f"{given_as} {value!r}")
            del self.from_header[name]
        metadata = self.transcript.metadata.model_copy(update={name: value})
        self.transcript = self.transcript.model_copy(update={"metadata": metadata, "warnings": list(self.warnings)})
        return True
