"""Amazon Transcribe standard batch output (`StartTranscriptionJob`).

Shape (docs.aws.amazon.com/transcribe, "Example diarization output" and "Example channel
identification output"; times are strings of seconds):

    {"jobName", "accountId", "status"?,
     "results": {"transcripts": [{"transcript"}],
                 "items": [{"type": "pronunciation" | "punctuation", "start_time"?, "end_time"?,
                            "alternatives": [{"content"}], "speaker_label"? | "channel_label"?}],
                 "speaker_labels"?: {"segments": [{"speaker_label", "items": [{"start_time", ...}]}]},
                 "channel_labels"?: {"channels": [{"channel_label", "items": [...]}]},
                 "language_code"?}}

Speaker comes from the item's own `speaker_label`/`channel_label` (current output), else from the
`speaker_labels` segments (matched by start time) or the per-channel item lists (older output).
Punctuation items carry no time and attach to the word before them. Labels are AWS's (`spk_0`, `ch_1`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.ingest.model import Segment, SourceCall
from app.ingest.source import JsonReader, SourceDocument, call_metadata, join_path

FORMAT = "aws_transcribe"
DESCRIPTION = "Amazon Transcribe standard output (speaker labels or channel labels + items)"

_PUNCTUATION = "punctuation"


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict):
        return False
    results = value.get("results")
    return isinstance(results, dict) and "transcripts" in results and "jobName" in value


def _content(reader: JsonReader, item: dict[str, Any], path: str) -> str:
    alternatives = reader.array(reader.field(item, "alternatives", path), f"{path}.alternatives")
    if not alternatives:
        return ""
    first = reader.object(alternatives[0], f"{path}.alternatives[0]")
    content_path = f"{path}.alternatives[0]"
    return reader.string(reader.field(first, "content", content_path), f"{content_path}.content")


def _item_segments(
    reader: JsonReader, items: list[Any], path: str, speaker_at: dict[str, str]
) -> list[Segment]:
    segments: list[Segment] = []
    for position, raw in enumerate(items):
        item_path = join_path(path, position)
        item = reader.object(raw, item_path)
        content = _content(reader, item, item_path)
        if item.get("type") == _PUNCTUATION:
            if segments:
                segments[-1] = replace(segments[-1], text=segments[-1].text + content)
            continue
        start_text = item.get("start_time")
        speaker = reader.label(
            item.get("speaker_label") or item.get("channel_label"), f"{item_path}.speaker_label"
        )
        if speaker is None and isinstance(start_text, str):
            speaker = speaker_at.get(start_text)
        segments.append(
            Segment(
                location=item_path,
                text=content,
                speaker=speaker,
                start=reader.seconds(start_text, f"{item_path}.start_time"),
                end=reader.seconds(item.get("end_time"), f"{item_path}.end_time"),
                start_field="start_time",
                end_field="end_time",
            )
        )
    return segments


def _speakers_by_start(reader: JsonReader, results: dict[str, Any]) -> dict[str, str]:
    """Older diarized output: map each word's start_time (as written) to its speaker label."""
    speaker_labels = results.get("speaker_labels")
    if not isinstance(speaker_labels, dict):
        return {}
    mapping: dict[str, str] = {}
    segments_path = "results.speaker_labels.segments"
    for position, raw in enumerate(reader.array(speaker_labels.get("segments", []), segments_path)):
        path = join_path(segments_path, position)
        segment = reader.object(raw, path)
        for item_position, raw_item in enumerate(reader.array(segment.get("items", []), f"{path}.items")):
            item = reader.object(raw_item, f"{path}.items[{item_position}]")
            label = reader.label(
                item.get("speaker_label") or segment.get("speaker_label"), f"{path}.speaker_label"
            )
            start = item.get("start_time")
            if label is not None and isinstance(start, str):
                mapping[start] = label
    return mapping


def _channel_segments(reader: JsonReader, results: dict[str, Any]) -> list[Segment] | None:
    """Older channel-identified output: items listed per channel; interleave them by time."""
    channel_labels = results.get("channel_labels")
    if not isinstance(channel_labels, dict):
        return None
    channels_path = "results.channel_labels.channels"
    merged: list[Segment] = []
    for position, raw in enumerate(reader.array(channel_labels.get("channels", []), channels_path)):
        path = join_path(channels_path, position)
        channel = reader.object(raw, path)
        label = reader.label(channel.get("channel_label"), f"{path}.channel_label") or f"ch_{position}"
        items = reader.array(channel.get("items", []), f"{path}.items")
        for segment in _item_segments(reader, items, f"{path}.items", {}):
            merged.append(segment if segment.speaker else replace(segment, speaker=label))
    return _by_time(merged)


def _by_time(segments: list[Segment]) -> list[Segment]:
    # Stable: words of one channel keep their order; punctuation is already attached to its word.
    return sorted(segments, key=lambda segment: segment.start if segment.start is not None else 0.0)


def _full_transcript(reader: JsonReader, results: dict[str, Any]) -> list[Segment]:
    """No word items at all: fall back to the job's whole transcript text, as one block."""
    texts: list[str] = []
    for position, raw in enumerate(reader.array(results.get("transcripts", []), "results.transcripts")):
        path = f"results.transcripts[{position}]"
        texts.append(reader.string(reader.object(raw, path).get("transcript", ""), f"{path}.transcript"))
    text = " ".join(text.strip() for text in texts if text.strip())
    return [Segment(location="results.transcripts", text=text)] if text else []


def parse(doc: SourceDocument) -> SourceCall:
    reader = doc.reader
    root = reader.object(doc.json(), "")
    status = root.get("status")
    if isinstance(status, str) and status.upper() not in ("COMPLETED", "SUCCEEDED"):
        raise doc.error("status", f"transcription job status is {status!r}, not COMPLETED")
    results = reader.object(reader.field(root, "results", ""), "results")
    items = reader.array(results.get("items", []), "results.items")
    has_own_labels = any(
        isinstance(item, dict) and ("speaker_label" in item or "channel_label" in item) for item in items
    )
    segments: list[Segment] | None = None
    if not has_own_labels:
        segments = _channel_segments(reader, results)
    if segments is None:
        segments = _item_segments(reader, items, "results.items", _speakers_by_start(reader, results))
        if any(isinstance(item, dict) and "channel_label" in item for item in items):
            segments = _by_time(segments)  # two channels transcribed apart: interleave by time
    if not segments:
        segments = _full_transcript(reader, results)

    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "external_id": ("jobName", root.get("jobName") or None),
                "language": ("results.language_code", results.get("language_code") or None),
            },
        ),
        grouping="words",
    )
