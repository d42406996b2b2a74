"""AssemblyAI transcript JSON (`GET /v2/transcript/{id}`).

Shape (assemblyai.com/docs, "Transcript" object; times in milliseconds):

    {"id", "status", "audio_url", "language_code", "text",
     "utterances": [{"speaker", "text", "start", "end", "channel"?}] | null,   # speaker_labels=true
     "words": [{"text", "start", "end", "speaker"?: "A" | null}]}

Utterances are used when present; otherwise words are grouped into turns by their speaker; a
transcript with neither keeps its `text` as one block. Speaker labels are AssemblyAI's ("A", "B"...).
"""

from __future__ import annotations

from pydantic import TypeAdapter

from app.ingest.model import Grouping, Segment, SourceCall
from app.ingest.parsers._segments import TimedText, timed_segments, whole_text
from app.ingest.source import SourceDocument, call_metadata
from app.ingest.vendor_json import VendorModel, read, read_part

FORMAT = "assemblyai"
DESCRIPTION = "AssemblyAI transcript JSON (utterances, or words with speakers)"

MILLISECONDS = 1000.0
# Keys every AssemblyAI transcript object carries; together they tell it from other JSON.
_MARKER_KEYS = frozenset({"audio_url", "status"})
_COMPLETED = "completed"
_TIMED_TEXTS = TypeAdapter(list[TimedText])


class AssemblyTranscript(VendorModel):
    # Only the list used is read (utterances when there are any, else words).
    utterances: list[object] | None = None
    words: list[object] | None = None
    text: str | None = None
    language_code: object = None


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    return (
        isinstance(value, dict)
        and value.keys() >= _MARKER_KEYS
        and any(key in value for key in ("utterances", "words", "text"))
    )


def parse(doc: SourceDocument) -> SourceCall:
    root = doc.json()
    if isinstance(root, dict) and root.get("status") != _COMPLETED:
        error = root.get("error")
        detail = f": {error}" if isinstance(error, str) and error else ""
        raise doc.error("status", f"transcript status is {root.get('status')!r}, not {_COMPLETED!r}{detail}")
    transcript = read(doc, AssemblyTranscript)

    grouping: Grouping
    segments: list[Segment]
    if transcript.utterances:
        utterances = read_part(doc, _TIMED_TEXTS, transcript.utterances, ("utterances",))
        segments = timed_segments(utterances, "utterances", per_second=MILLISECONDS)
        grouping = "keep"
    elif transcript.words:
        words = read_part(doc, _TIMED_TEXTS, transcript.words, ("words",))
        segments = timed_segments(words, "words", per_second=MILLISECONDS)
        grouping = "words"
    else:
        segments = whole_text(transcript.text)
        grouping = "keep"

    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "language": ("language_code", transcript.language_code or None),
            },
        ),
        grouping=grouping,
    )
