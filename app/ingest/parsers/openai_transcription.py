"""OpenAI `/v1/audio/transcriptions` responses: `verbose_json` and `diarized_json`.

Shapes (platform.openai.com API reference, "The transcription object (Verbose JSON)" and
"(Diarized JSON)"):

    verbose_json:  {"task": "transcribe", "language", "duration", "text",
                    "segments": [{"id", "seek", "start", "end", "text", "tokens", ...}], "words"?}
    diarized_json: {"task": "transcribe", "duration", "text",
                    "segments": [{"type": "transcript.text.segment", "id", "start", "end", "text",
                                  "speaker"}]}

`verbose_json` has no speakers: the call is one undiarized speaker (roles unknown, with a warning).
`diarized_json` speakers are labels ("A", "B") or the names given as known speakers ("agent").
"""

from __future__ import annotations

from typing import Any

from app.ingest.model import SourceCall
from app.ingest.parsers._segments import TimedText, timed_segments, whole_text
from app.ingest.source import SourceDocument, call_metadata
from app.ingest.vendor_json import VendorModel, read

VERBOSE_FORMAT = "openai_verbose_json"
DIARIZED_FORMAT = "openai_diarized_json"
VERBOSE_DESCRIPTION = "OpenAI transcription verbose_json (segments, no speakers)"
DIARIZED_DESCRIPTION = "OpenAI transcription diarized_json (segments with speakers)"
_TASK = "transcribe"


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
    segments = value.get("segments")
    return (
        isinstance(segments, list)
        and bool(segments)
        and all(isinstance(segment, dict) and "speaker" in segment for segment in segments)
    )


def detect_verbose(doc: SourceDocument) -> bool:
    value = _response(doc)
    return value is not None and not _is_diarized(value)


def detect_diarized(doc: SourceDocument) -> bool:
    value = _response(doc)
    return value is not None and _is_diarized(value)


def _parse(doc: SourceDocument, *, diarized: bool) -> SourceCall:
    response = read(doc, TranscriptionResponse)
    if response.segments:
        segments = timed_segments(response.segments, "segments", with_speaker=diarized)
    else:
        segments = whole_text(response.text)
    return SourceCall(
        segments=segments,
        metadata=call_metadata(doc.name, {"language": ("language", response.language or None)}),
        grouping="keep",
    )


def parse_verbose(doc: SourceDocument) -> SourceCall:
    return _parse(doc, diarized=False)


def parse_diarized(doc: SourceDocument) -> SourceCall:
    return _parse(doc, diarized=True)
