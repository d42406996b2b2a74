"""OpenAI `/v1/audio/transcriptions` responses: `verbose_json` and `diarized_json`.

Shapes (platform.openai.com API reference, "The transcription object (Verbose JSON)" and
"(Diarized JSON)"):

    verbose_json:  {"task": "transcribe", "language", "duration", "text",
                    "segments": [{"id", "seek", "start", "end", "text", "tokens", ...}], "words"?}
    diarized_json: {"task": "transcribe", "duration", "text",
                    "segments": [{"type": "transcript.text.segment", "id", "start", "end", "text",
                                  "speaker"}]}

`verbose_json` has no speakers: the call is one undiarized speaker (roles unknown, with a warning).
`diarized_json` speakers are labels ("A", "B") or the names given as known speakers ("agent"); a segment
without one (key missing or null) keeps an unknown speaker, with a warning naming it.
"""

from __future__ import annotations

from typing import Any

from app.ingest.model import SourceCall
from app.ingest.parsers._segments import TimedText, timed_segments, whole_text
from app.ingest.source import SourceDocument, call_metadata, join_path
from app.ingest.vendor_json import VendorModel, read

VERBOSE_FORMAT = "openai_verbose_json"
DIARIZED_FORMAT = "openai_diarized_json"
VERBOSE_DESCRIPTION = "OpenAI transcription verbose_json (segments, no speakers)"
DIARIZED_DESCRIPTION = "OpenAI transcription diarized_json (segments with speakers)"
_TASK = "transcribe"
# A warning names at most this many segments without a speaker, then counts the rest.
_NAMED_SEGMENTS = 5


class TranscriptionResponse(VendorModel):
    text: str | None = None
    segments: list[TimedText] | None = None
    language: object = None


def _response(doc: SourceDocument) -> dict[str, Any] | None:
    if not doc.looks_like_json:
        return None
    value = doc.json()
    if isinstance(value, dict) and value.get("task") in (_TASK, "translate") and "text" in value:
        return value
    return None


def _is_diarized(value: dict[str, Any]) -> bool:
    """Any segment with a `speaker` key: one segment that lost its key must not cost every other segment
    its speaker (it is kept with an unknown speaker and a warning, as a `"speaker": null` one is)."""
    segments = value.get("segments")
    return isinstance(segments, list) and any(
        isinstance(segment, dict) and "speaker" in segment for segment in segments
    )


def detect_verbose(doc: SourceDocument) -> bool:
    value = _response(doc)
    return value is not None and not _is_diarized(value)


def detect_diarized(doc: SourceDocument) -> bool:
    value = _response(doc)
    return value is not None and _is_diarized(value)


def _unlabelled_warning(segments: list[TimedText]) -> list[str]:
    """A diarized response's segments without a speaker (key missing, null or blank), named."""
    unlabelled = [join_path("segments", position) for position, item in enumerate(segments) if item.speaker is None]
    if not unlabelled:
        return []
    if len(unlabelled) == 1:
        return [f"{unlabelled[0]} has no speaker label: its speaker is unknown"]
    shown = ", ".join(unlabelled[:_NAMED_SEGMENTS]) + (", ..." if len(unlabelled) > _NAMED_SEGMENTS else "")
    return [f"{len(unlabelled)} segments have no speaker label ({shown}): their speaker is unknown"]


def _parse(doc: SourceDocument, *, diarized: bool) -> SourceCall:
    response = read(doc, TranscriptionResponse)
    warnings: list[str] = []
    if response.segments:
        segments = timed_segments(response.segments, "segments", with_speaker=diarized)
        if diarized:
            warnings = _unlabelled_warning(response.segments)
    else:
        segments = whole_text(response.text)
    return SourceCall(
        segments=segments,
        metadata=call_metadata(doc.name, {"language": ("language", response.language or None)}),
        warnings=warnings,
        grouping="keep",
    )


def parse_verbose(doc: SourceDocument) -> SourceCall:
    return _parse(doc, diarized=False)


def parse_diarized(doc: SourceDocument) -> SourceCall:
    return _parse(doc, diarized=True)
