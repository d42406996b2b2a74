"""WebVTT captions (W3C WebVTT), as exported by Teams, Zoom, Meet, and OpenAI's `vtt` format.

    WEBVTT

    1
    00:00:00.000 --> 00:00:02.500
    <v Dana Smith>Thank you for calling.</v>

Speakers come from voice tags (`<v Name>`, `<v.class Name>`; several in one cue are split), else from a
`Name: ` prefix (Zoom). Microsoft Teams' unpadded stamps (`0:0:0.210`) are accepted. NOTE, STYLE and
REGION blocks are skipped; other markup is removed. Consecutive cues of the same named speaker are
merged into one utterance (captions cut sentences at line length, not at turns).
"""

from __future__ import annotations

import re

from app.ingest.model import Segment, SourceCall
from app.ingest.parsers._subtitles import (
    Block,
    check_complete,
    cue_segment,
    is_timing_line,
    parse_timing,
    plain,
    split_blocks,
    split_speaker_prefix,
)
from app.ingest.source import SourceDocument

FORMAT = "webvtt"
DESCRIPTION = "WebVTT captions (<v Name> voice tags or 'Name:' prefixes; Teams/Zoom exports)"

_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")
# `<v Name>` or `<v.loud Name>`: the voice's name runs to the closing bracket.
_VOICE = re.compile(r"<v(?:\.[\w.-]+)?\s+(?P<name>[^>]+)>")


def detect(doc: SourceDocument) -> bool:
    first_line = doc.text.lstrip().split("\n", 1)[0].rstrip("\r")
    return _HEADER.match(first_line) is not None


def _voices(text: str) -> list[tuple[str | None, str]]:
    """Split cue text at voice tags: [(speaker, text)], in order."""
    matches = list(_VOICE.finditer(text))
    if not matches:
        speaker, rest = split_speaker_prefix(plain(text))
        return [(speaker, rest)]
    parts: list[tuple[str | None, str]] = []
    if text[: matches[0].start()].strip():
        parts.append((None, plain(text[: matches[0].start()])))
    for position, match in enumerate(matches):
        end = matches[position + 1].start() if position + 1 < len(matches) else len(text)
        parts.append((match["name"].strip(), plain(text[match.end() : end])))
    return parts


def _has_own_timing(block: Block) -> bool:
    """A NOTE line right above a timing is that cue's identifier (W3C parser): a cue under a comment
    whose blank line was lost."""
    return any(is_timing_line(line) for line in block.lines[:2])


def parse(doc: SourceDocument) -> SourceCall:
    if not detect(doc):
        raise doc.error("line 1", "a WebVTT file must start with 'WEBVTT'")
    segments: list[Segment] = []
    blocks = split_blocks(doc.text, header=True)[1:]  # the first block is the header, up to a first cue
    for position, block in enumerate(blocks):
        if block.lines[0].split(" ", 1)[0] in _SKIPPED_BLOCKS and not _has_own_timing(block):
            continue
        timing_offset = 0 if is_timing_line(block.lines[0]) else 1  # an optional cue identifier line
        if timing_offset >= len(block.lines) or not is_timing_line(block.lines[timing_offset]):
            location = f"line {block.line + min(timing_offset, len(block.lines) - 1)}"
            raise doc.error(location, f"expected a cue timing 'start --> end', got {block.lines[-1][:60]!r}")
        location = f"line {block.line + timing_offset}"
        start, end = parse_timing(block.lines[timing_offset], doc, location)
        text = " ".join(line.strip() for line in block.lines[timing_offset + 1 :])
        check_complete(text, doc, location, last=position == len(blocks) - 1)
        for speaker, spoken in _voices(text):
            segments.append(cue_segment(location, speaker, spoken, start, end))
    return SourceCall(segments=segments, grouping="turns")
