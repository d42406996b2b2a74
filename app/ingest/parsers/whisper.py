"""Whisper-style JSON written by local tools: openai-whisper, whisper-timestamped, WhisperX.

Shape (`whisper.transcribe()` result; whisper-timestamped adds per-word timings and confidences;
WhisperX adds a `speaker` per segment after diarization):

    {"text", "language"?, "segments": [{"start", "end", "text", "words"?: [...], "speaker"?}]}

Each segment becomes one utterance. Without `speaker` the call is one undiarized speaker.
"""

from __future__ import annotations

from app.ingest.model import SourceCall
from app.ingest.parsers._segments import timed_segments
from app.ingest.source import SourceDocument, call_metadata

FORMAT = "whisper"
DESCRIPTION = "Whisper-style segments JSON (openai-whisper, whisper-timestamped, WhisperX)"


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    return isinstance(value, dict) and isinstance(value.get("segments"), list) and "task" not in value


def parse(doc: SourceDocument) -> SourceCall:
    reader = doc.reader
    root = reader.object(doc.json(), "")
    raw_segments = reader.array(reader.field(root, "segments", ""), "segments")
    segments = timed_segments(reader, raw_segments, speaker_key="speaker")
    return SourceCall(
        segments=segments,
        metadata=call_metadata(doc.name, {"language": ("language", root.get("language") or None)}),
        grouping="keep",
    )
