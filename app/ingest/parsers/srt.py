"""SubRip (SRT) subtitles, with speaker names as a `Name:` or `[Name]` prefix.

    1
    00:00:01,000 --> 00:00:03,200
    Agent: Thank you for calling Acme.

Formatting tags (`<i>`, `<b>`, `<font>`) are removed. Consecutive cues of the same named speaker are
merged into one utterance; cues without a name stay separate, with an undiarized speaker.
"""

from __future__ import annotations

from app.ingest.model import Segment, SourceCall
from app.ingest.parsers._subtitles import (
    check_complete,
    cue_segment,
    is_timing_line,
    parse_timing,
    plain,
    split_blocks,
    split_speaker_prefix,
)
from app.ingest.source import SourceDocument

FORMAT = "srt"
DESCRIPTION = "SubRip subtitles (.srt) with optional 'Name:' speaker prefixes"


def detect(doc: SourceDocument) -> bool:
    if doc.looks_like_json:
        return False
    lines = [line for line in doc.text.splitlines()[:3] if line.strip()]
    if len(lines) >= 2 and lines[0].strip().isdigit():
        return is_timing_line(lines[1])
    return bool(lines) and is_timing_line(lines[0]) and "," in lines[0]


def parse(doc: SourceDocument) -> SourceCall:
    segments: list[Segment] = []
    blocks = split_blocks(doc.text)
    for position, block in enumerate(blocks):
        timing_offset = 1 if block.lines[0].strip().isdigit() else 0  # the cue number is optional
        if timing_offset >= len(block.lines) or not is_timing_line(block.lines[timing_offset]):
            raise doc.error(
                f"line {block.line}", f"expected a cue number and a timing 'start --> end', got {block.lines[0][:60]!r}"
            )
        location = f"line {block.line + timing_offset}"
        start, end = parse_timing(block.lines[timing_offset], doc, location)
        raw_text = " ".join(line.strip() for line in block.lines[timing_offset + 1 :])
        check_complete(raw_text, doc, location, last=position == len(blocks) - 1)
        text = plain(raw_text)
        speaker, spoken = split_speaker_prefix(text)
        segments.append(cue_segment(location, speaker, spoken, start, end))
    return SourceCall(segments=segments, grouping="turns")
