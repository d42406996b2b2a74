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
from typing import Annotated

from pydantic import Field

from app.ingest.model import Segment, SourceCall
from app.ingest.parsers._segments import by_start_time
from app.ingest.source import SourceDocument, call_metadata, join_path
from app.ingest.vendor_json import Label, Time, VendorModel, ignored_unless_object, label_at, read

FORMAT = "aws_transcribe"
DESCRIPTION = "Amazon Transcribe standard output (speaker labels or channel labels + items)"

_PUNCTUATION = "punctuation"


class Alternative(VendorModel):
    content: str


class Item(VendorModel):
    type: object = None  # only "punctuation" matters
    alternatives: list[Alternative]
    start_time: Time = None
    end_time: Time = None
    # The first one given names the speaker; checked where it is used.
    speaker_label: object = None
    channel_label: object = None


class LabelledItem(VendorModel):
    speaker_label: Label = None
    start_time: object = None


class SpeakerSegment(VendorModel):
    speaker_label: Label = None
    items: list[LabelledItem] = Field(default_factory=list)


class SpeakerLabels(VendorModel):
    segments: list[SpeakerSegment] = Field(default_factory=list)


class ChannelItems(VendorModel):
    channel_label: Label = None
    items: list[Item] = Field(default_factory=list)


class ChannelLabels(VendorModel):
    channels: list[ChannelItems] = Field(default_factory=list)


class JobTranscript(VendorModel):
    transcript: str = ""


class Results(VendorModel):
    transcripts: list[JobTranscript] = Field(default_factory=list)
    items: list[Item] = Field(default_factory=list)
    speaker_labels: Annotated[SpeakerLabels | None, ignored_unless_object] = None
    channel_labels: Annotated[ChannelLabels | None, ignored_unless_object] = None
    language_code: object = None


class Job(VendorModel):
    status: object = None
    jobName: object = None
    results: Results


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict):
        return False
    results = value.get("results")
    return isinstance(results, dict) and "transcripts" in results and "jobName" in value


def _item_segments(
    doc: SourceDocument, items: list[Item], path: str, speaker_at: dict[float, str]
) -> list[Segment]:
    segments: list[Segment] = []
    for position, item in enumerate(items):
        content = item.alternatives[0].content if item.alternatives else ""
        if item.type == _PUNCTUATION:
            if segments:
                segments[-1] = replace(segments[-1], text=segments[-1].text + content)
            continue
        speaker = label_at(doc, item.speaker_label or item.channel_label, (path, position, "speaker_label"))
        if speaker is None and item.start_time is not None:
            speaker = speaker_at.get(item.start_time)
        segments.append(
            Segment(
                location=join_path(path, position),
                text=content,
                speaker=speaker,
                start=item.start_time,
                end=item.end_time,
                start_field="start_time",
                end_field="end_time",
            )
        )
    return segments


def _written_seconds(value: object) -> float | None:
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _speakers_by_start(results: Results) -> dict[float, str]:
    """Older diarized output: map each word's start_time to its speaker label."""
    if results.speaker_labels is None:
        return {}
    mapping: dict[float, str] = {}
    for segment in results.speaker_labels.segments:
        for item in segment.items:
            label = item.speaker_label or segment.speaker_label
            start = _written_seconds(item.start_time)
            if label is not None and start is not None:
                mapping[start] = label
    return mapping


def _channel_segments(doc: SourceDocument, results: Results) -> list[Segment] | None:
    """Older channel-identified output: items listed per channel; interleave them by time."""
    if results.channel_labels is None:
        return None
    streams: list[list[Segment]] = []
    for position, channel in enumerate(results.channel_labels.channels):
        label = channel.channel_label or f"ch_{position}"
        path = f"results.channel_labels.channels[{position}].items"
        streams.append(
            [
                segment if segment.speaker else replace(segment, speaker=label)
                for segment in _item_segments(doc, channel.items, path, {})
            ]
        )
    return by_start_time(streams)


def _full_transcript(results: Results) -> list[Segment]:
    """No word items at all: fall back to the job's whole transcript text, as one block."""
    text = " ".join(t.transcript.strip() for t in results.transcripts if t.transcript.strip())
    return [Segment(location="results.transcripts", text=text)] if text else []


def parse(doc: SourceDocument) -> SourceCall:
    root = doc.json()
    status = root.get("status") if isinstance(root, dict) else None
    if isinstance(status, str) and status.upper() not in ("COMPLETED", "SUCCEEDED"):
        raise doc.error("status", f"transcription job status is {status!r}, not COMPLETED")
    job = read(doc, Job)
    results = job.results
    has_own_labels = any({"speaker_label", "channel_label"} & item.model_fields_set for item in results.items)
    segments: list[Segment] | None = None
    if not has_own_labels:
        segments = _channel_segments(doc, results)
    if segments is None:
        segments = _item_segments(doc, results.items, "results.items", _speakers_by_start(results))
        if any("channel_label" in item.model_fields_set for item in results.items):
            # Two channels transcribed apart: interleave them by time, one stream per channel. The label
            # is the channel's: Transcribe refuses speaker labels and channel identification together.
            channels: dict[str | None, list[Segment]] = {}
            for segment in segments:
                channels.setdefault(segment.speaker, []).append(segment)
            segments = by_start_time(channels.values())
    if not segments:
        segments = _full_transcript(results)

    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "external_id": ("jobName", job.jobName or None),
                "language": ("results.language_code", results.language_code or None),
            },
        ),
        grouping="words",
    )
