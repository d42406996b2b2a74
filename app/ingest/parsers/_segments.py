"""Shared by the OpenAI and Whisper parsers: `segments: [{"start", "end", "text", "speaker"?}]`."""

from __future__ import annotations

from typing import Any

from app.ingest.model import Segment
from app.ingest.source import JsonReader, join_path


def timed_segments(reader: JsonReader, segments: list[Any], *, speaker_key: str | None) -> list[Segment]:
    result: list[Segment] = []
    for position, raw in enumerate(segments):
        path = join_path("segments", position)
        segment = reader.object(raw, path)
        speaker = reader.label(segment.get(speaker_key), f"{path}.{speaker_key}") if speaker_key else None
        result.append(
            Segment(
                location=path,
                text=reader.string(reader.field(segment, "text", path), f"{path}.text"),
                speaker=speaker,
                start=reader.seconds(segment.get("start"), f"{path}.start"),
                end=reader.seconds(segment.get("end"), f"{path}.end"),
                start_field="start",
                end_field="end",
            )
        )
    return result


def whole_text(reader: JsonReader, root: dict[str, Any]) -> list[Segment]:
    """No segments: the response's `text` as one block of undiarized speech."""
    text = reader.optional_string(root.get("text"), "text") or ""
    return [Segment(location="text", text=text)] if text.strip() else []
