"""Shared by the OpenAI, Whisper and AssemblyAI parsers (`[{"text", "start", "end", "speaker"?}]`), and the
time ordering of multichannel output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def by_start_time(streams: Iterable[Sequence[Segment]]) -> list[Segment]:
    """Streams transcribed apart (channels), each in its own order, interleaved by start time; stable, so
    the words of one stream keep their order and punctuation stays with its word.

    A segment without a time sorts at the time of the segment before it in its stream (a stream's leading
    untimed segments at its first time), so it keeps its place rather than moving to the start of the
    call: the order of a source is never silently changed (docs/formats.md)."""
    keyed: list[tuple[float, Segment]] = []
    for stream in streams:
        anchor = next((segment.start for segment in stream if segment.start is not None), 0.0)
        for segment in stream:
            if segment.start is not None:
                anchor = segment.start
            keyed.append((anchor, segment))
    keyed.sort(key=lambda pair: pair[0])
    return [segment for _, segment in keyed]


def whole_text(text: str | None) -> list[Segment]:
    """No segments: the response's `text` as one block of undiarized speech."""
    return [Segment(location="text", text=text)] if text and text.strip() else []
