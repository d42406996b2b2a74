"""Postcall's own JSON transcript format (documented in docs/formats.md).

Strict on purpose: an unknown field is an error rather than silently ignored, because it is almost
always a typo (`"txt"`, `"speeker"`) that would otherwise lose data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from app.ingest.model import Segment, SourceCall
from app.ingest.source import SourceDocument, call_metadata, root_object
from app.ingest.vendor_json import field_path
from app.schemas.transcript import Role

FORMAT = "native"
DESCRIPTION = "Postcall native JSON: {external_id, agent_id, started_at, language, utterances: [...]}"

# A native file is recognised by these top-level keys and nothing vendor-specific (vendor formats
# are tried before this one).
_UTTERANCES_KEY = "utterances"


class NativeUtterance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int | None = Field(default=None, strict=True, ge=0)
    speaker: str | None = Field(default=None, strict=True, min_length=1, max_length=200)
    role: Role | None = None
    role_confidence: float | None = Field(default=None, strict=True, ge=0.0, le=1.0)
    start: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    end: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    text: str = Field(strict=True)


def _iso_8601(value: object) -> object:
    """An ISO 8601 string only (extended or basic form): lax parsing read `"20240501"` and `1700000000` as
    seconds since 1970 and stored a start in August 1970 or November 2023 without a word."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string, such as 2026-03-04T15:00:00Z")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time, such as 2026-03-04T15:00:00Z") from None


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]


class NativeCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str | None = Field(default=None, strict=True, min_length=1, max_length=200)
    agent_id: str | None = Field(default=None, strict=True, max_length=200)
    team: str | None = Field(default=None, strict=True, max_length=200)
    started_at: IsoDateTime | None = None
    language: str | None = Field(default=None, strict=True, max_length=20)
    utterances: list[NativeUtterance]


def _problem(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        allowed = (
            NativeUtterance.model_fields if len(error["loc"]) > 1 else NativeCall.model_fields
        )
        return f"unknown field; allowed fields are {', '.join(allowed)}"
    if error["type"] == "missing":
        return "required field is missing"
    return str(error["msg"])


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    return isinstance(value, dict) and _UTTERANCES_KEY in value


def parse(doc: SourceDocument) -> SourceCall:
    value = root_object(doc)
    utterances = value.get(_UTTERANCES_KEY)
    if doc.max_utterances is not None and isinstance(utterances, list) and len(utterances) > doc.max_utterances:
        # Refused before a model per utterance is built.
        raise doc.error(_UTTERANCES_KEY, f"{len(utterances):,} utterances; the limit is {doc.max_utterances:,} "
                        "per call (POSTCALL_MAX_UTTERANCES_PER_CALL)")
    try:
        call = NativeCall.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise doc.error(field_path(first["loc"]), _problem(first) + more) from exc

    segments: list[Segment] = []
    for position, utterance in enumerate(call.utterances):
        location = f"utterances[{position}]"
        if utterance.index is not None and utterance.index != position:
            raise doc.error(
                f"{location}.index",
                f"index is {utterance.index} but the utterance is at position {position}; "
                "indices must run 0, 1, 2... in file order",
            )
        speaker = utterance.speaker
        if speaker is None:
            if utterance.role is None:
                raise doc.error(location, "give a speaker, a role, or both")
            speaker = utterance.role.value
        segments.append(
            Segment(
                location=location,
                text=utterance.text,
                speaker=speaker,
                # "unknown" given is the source's word that the speaker is neither party (a machine, a
                # third party): kept, never inferred over. An omitted role is inferred.
                role=utterance.role,
                role_confidence=utterance.role_confidence,
                start=utterance.start,
                end=utterance.end,
                start_field="start",
                end_field="end",
            )
        )
    metadata = call_metadata(doc.name, {
        "external_id": ("external_id", call.external_id),
        "agent_id": ("agent_id", call.agent_id),
        "team": ("team", call.team),
        "started_at": ("started_at", call.started_at),
        "language": ("language", call.language),
    })
    warnings = []
    if call.started_at is not None and call.started_at.tzinfo is None:
        # Stored as UTC: a contact center's local time written without its offset lands hours off, in
        # every report by day and in the due dates resolved from the call's start.
        warnings.append(f"started_at {call.started_at.isoformat()} has no time zone: taken as UTC "
                        "(write it with its offset, such as +02:00, or Z)")
    return SourceCall(segments=segments, metadata=metadata, grouping="keep", reject_empty=True, warnings=warnings)
