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
from app.ingest.parsers._segments import timed_segments, whole_text
from app.ingest.source import SourceDocument, call_metadata

VERBOSE_FORMAT = "openai_verbose_json"
DIARIZED_FORMAT = "openai_diarized_json"
VERBOSE_DESCRIPTION = "OpenAI transcription verbose_json (segments, no speakers)"
DIARIZED_DESCRIPTION = "OpenAI transcription diarized_json (segments with speakers)"
_TASK = "transcribe"


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
    reader = doc.reader
    root = reader.object(doc.json(), "")
    raw_segments = root.get("segments")
    if raw_segments:
        segments = timed_segments(
            reader, reader.array(raw_segments, "segments"), speaker_key="speaker" if diarized else None
        )
    else:
        segments = whole_text(reader, root)
    return SourceCall(
        segments=segments,
        metadata=call_metadata(doc.name, {"language": ("language", root.get("language") or None)}),
        grouping="keep",
    )


def parse_verbose(doc: SourceDocument) -> SourceCall:
    return _parse(doc, diarized=False)


def parse_diarized(doc: SourceDocument) -> SourceCall:
    return _parse(doc, diarized=True)
