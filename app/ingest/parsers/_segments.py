"""Shared by the OpenAI, Whisper and AssemblyAI parsers (`[{"text", "start", "end", "speaker"?}]`), and the
time ordering of multichannel output."""

from __future__ import annotations

from app.ingest.model import Segment
from app.ingest.source import join_path
from app.ingest.vendor_json import Label, Time, VendorModel


class TimedText(VendorModel):
    text: str
    start: Time = None
    end: Time = None
    speaker: Label = None


def timed_segments(
    items: list[TimedText], path: str, *, with_speaker: bool = True, per_second: float = 1.0
) -> list[Segment]:
    """One segment per item; `per_second` is 1000 for millisecond times."""
    return [
        Segment(
            location=join_path(path, position),
            text=item.text,
            speaker=item.speaker if with_speaker else None,
            start=None if item.start is None else item.start / per_second,
            end=None if item.end is None else item.end / per_second,
            start_field="start",
            end_field="end",
        )
        for position, item in enumerate(items)
    ]


def by_start_time(segments: list[Segment]) -> list[Segment]:
    """Channels (or speakers) transcribed apart, interleaved by start time; stable, so the words of one
    channel keep their order and punctuation stays with its word."""
    return sorted(segments, key=lambda segment: segment.start if segment.start is not None else 0.0)


def whole_text(text: str | None) -> list[Segment]:
    """No segments: the response's `text` as one block of undiarized speech."""
    return [Segment(location="text", text=text)] if text and text.strip() else []
