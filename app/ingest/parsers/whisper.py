"""Whisper-style JSON written by local tools: openai-whisper, whisper-timestamped, WhisperX.

Shape (`whisper.transcribe()` result; whisper-timestamped adds per-word timings and confidences;
WhisperX adds a `speaker` per segment after diarization):

    {"text", "language"?, "segments": [{"start", "end", "text", "words"?: [...], "speaker"?}]}

Each segment becomes one utterance. Without `speaker` the call is one undiarized speaker.
"""

from __future__ import annotations

from app.ingest.model import SourceCall
from app.ingest.parsers._segments import TimedText, timed_segments
from app.ingest.source import SourceDocument, call_metadata
from app.ingest.vendor_json import VendorModel, read

FORMAT = "whisper"
DESCRIPTION = "Whisper-style segments JSON (openai-whisper, whisper-timestamped, WhisperX)"


class WhisperResult(VendorModel):
    segments: list[TimedText]
    language: object = None


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    return isinstance(value, dict) and isinstance(value.get("segments"), list) and "task" not in value


def parse(doc: SourceDocument) -> SourceCall:
    result = read(doc, WhisperResult)
    return SourceCall(
        segments=timed_segments(result.segments, "segments"),
        metadata=call_metadata(doc.name, {"language": ("language", result.language or None)}),
        grouping="keep",
    )
