"""AssemblyAI transcript JSON (`GET /v2/transcript/{id}`).

Shape (assemblyai.com/docs, "Transcript" object; times in milliseconds):

    {"id", "status", "audio_url", "language_code", "text",
     "utterances": [{"speaker", "text", "start", "end", "channel"?}] | null,   # speaker_labels=true
     "words": [{"text", "start", "end", "speaker"?: "A" | null}]}

Utterances are used when present; otherwise words are grouped into turns by their speaker; a
transcript with neither keeps its `text` as one block. Speaker labels are AssemblyAI's ("A", "B"...).
"""

from __future__ import annotations

from typing import Any

from app.ingest.model import Grouping, Segment, SourceCall
from app.ingest.source import JsonReader, SourceDocument, call_metadata, join_path

FORMAT = "assemblyai"
DESCRIPTION = "AssemblyAI transcript JSON (utterances, or words with speakers)"

MILLISECONDS = 1000.0
# Keys every AssemblyAI transcript object carries; together they tell it from other JSON.
_MARKER_KEYS = frozenset({"audio_url", "status"})
_COMPLETED = "completed"


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    return (
        isinstance(value, dict)
        and value.keys() >= _MARKER_KEYS
        and any(key in value for key in ("utterances", "words", "text"))
    )


def _segments(reader: JsonReader, items: list[Any], path: str, *, label_key: str) -> list[Segment]:
    segments: list[Segment] = []
    for position, raw in enumerate(items):
        item_path = join_path(path, position)
        item = reader.object(raw, item_path)
        segments.append(
            Segment(
                location=item_path,
                text=reader.string(reader.field(item, "text", item_path), f"{item_path}.text"),
                speaker=reader.label(item.get(label_key), f"{item_path}.{label_key}"),
                start=reader.seconds(item.get("start"), f"{item_path}.start", per_second=MILLISECONDS),
                end=reader.seconds(item.get("end"), f"{item_path}.end", per_second=MILLISECONDS),
                start_field="start",
                end_field="end",
            )
        )
    return segments


def parse(doc: SourceDocument) -> SourceCall:
    reader = doc.reader
    root = reader.object(doc.json(), "")
    status = root.get("status")
    if status != _COMPLETED:
        error = root.get("error")
        detail = f": {error}" if isinstance(error, str) and error else ""
        raise doc.error("status", f"transcript status is {status!r}, not {_COMPLETED!r}{detail}")

    utterances = root.get("utterances")
    words = root.get("words")
    grouping: Grouping
    if utterances:
        segments = _segments(reader, reader.array(utterances, "utterances"), "utterances", label_key="speaker")
        grouping = "keep"
    elif words:
        segments = _segments(reader, reader.array(words, "words"), "words", label_key="speaker")
        grouping = "words"
    else:
        text = reader.optional_string(root.get("text"), "text") or ""
        segments = [Segment(location="text", text=text)] if text.strip() else []
        grouping = "keep"

    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "language": ("language_code", root.get("language_code") or None),
            },
        ),
        grouping=grouping,
    )
