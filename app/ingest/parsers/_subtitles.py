"""Shared by the WebVTT and SRT parsers: blocks, cue timings, speaker prefixes."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from app.ingest.model import Segment
from app.ingest.source import SourceDocument

# `hh:mm:ss.ttt`, `mm:ss.ttt` (WebVTT), `hh:mm:ss,ttt` (SRT), and the unpadded `0:0:0.210` that
# Microsoft Teams writes. Hours may exceed two digits; minutes and seconds must be below 60.
_TIMESTAMP = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:[.,](?P<f>\d{1,3}))?$")
_TIMING = re.compile(r"^\s*(?P<start>\S+)\s+-->\s+(?P<end>\S+)")
_TAG = re.compile(r"<[^>]*>")
# "Dana Smith: text" at the start of a cue (Zoom exports, SRT with speaker names).
MAX_SPEAKER_WORDS = 4
_SPEAKER_PREFIX = re.compile(r"^(?P<speaker>[^\W\d_][\w .'-]{0,39}?)\s*:\s+(?P<text>\S.*)$")
# "[Dana Smith] text" or "[AGENT] text" at the start of an SRT cue.
_BRACKET_SPEAKER = re.compile(r"^\[(?P<speaker>[^\W\d_][\w .'-]{0,39})\]\s*(?P<text>.*)$")


@dataclass(frozen=True, slots=True)
class Block:
    line: int  # 1-based number of the block's first line
    lines: list[str]


def split_blocks(text: str, *, header: bool = False) -> list[Block]:
    """Blank-line separated blocks, each with the line number where it starts; a block holding several
    cues (a blank line lost between them) is split into one block per cue (see `_split_cues`).

    `header`: the first block is a file header (WebVTT's `WEBVTT` line): a cue timing anywhere in it
    starts a cue, so a first cue written right under the header is a block of its own."""
    blocks: list[Block] = []
    current: list[str] = []
    first_line = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not current:
                first_line = number
            current.append(line.rstrip())
        elif current:
            blocks.append(Block(first_line, current))
            current = []
    if current:
        blocks.append(Block(first_line, current))
    return [cue for position, block in enumerate(blocks) for cue in _split_cues(block, header and position == 0)]


def _split_cues(block: Block, header: bool) -> list[Block]:
    """A cue's own timing is its block's first or second line (after a cue number or identifier); any
    other timing line starts the next cue, whose blank line was lost. A bare integer right before that
    timing is the next cue's number rather than this cue's text (the W3C parser would keep it as text,
    but cue numbers are far more common than cues saying only a number). A header has no own timing."""
    lines = block.lines
    starts: list[int] = []
    start, timing = 0, None  # the current cue's first line and its timing line
    in_header = header
    for index, line in enumerate(lines):
        if not is_timing_line(line):
            continue
        if timing is None and not in_header and index <= start + 1:
            timing = index
            continue
        after = start if timing is None else timing
        starts.append(start)
        start = index - 1 if index - 1 > after and lines[index - 1].strip().isdigit() else index
        timing, in_header = index, False
    starts.append(start)
    ends = [*starts[1:], len(lines)]
    return [Block(block.line + first, lines[first:end]) for first, end in zip(starts, ends, strict=True)]


def is_timing_line(line: str) -> bool:
    return "-->" in line and _TIMING.match(line) is not None


def parse_timestamp(raw: str, doc: SourceDocument, location: str) -> float:
    match = _TIMESTAMP.match(raw)
    if match is None or int(match["m"]) >= 60 or int(match["s"]) >= 60:
        raise doc.error(location, f"invalid time stamp {raw!r}")
    fraction = match["f"]
    return (
        int(match["h"] or 0) * 3600
        + int(match["m"]) * 60
        + int(match["s"])
        + (float(f"0.{fraction}") if fraction else 0.0)
    )


def parse_timing(line: str, doc: SourceDocument, location: str) -> tuple[float, float]:
    match = _TIMING.match(line)
    if match is None:
        raise doc.error(location, f"expected a cue timing 'start --> end', got {line.strip()[:60]!r}")
    return parse_timestamp(match["start"], doc, location), parse_timestamp(match["end"], doc, location)


# A cue that ends inside a tag (`<v Dan`, `</`) was cut off: WebVTT escapes a literal `<` as `&lt;`.
_UNCLOSED_TAG = re.compile(r"<[/A-Za-z.][^>]*$")


def check_complete(text: str, doc: SourceDocument, location: str, *, last: bool) -> None:
    """Refuse a cue the file was cut inside: an unclosed tag, or a last cue with a timing and no text."""
    if _UNCLOSED_TAG.search(text):
        raise doc.error(location, f"the cue text ends inside a tag ({text[-20:]!r}); the file looks truncated")
    if last and not text.strip():
        raise doc.error(location, "the last cue has a timing but no text; the file looks truncated")


def plain(text: str) -> str:
    """Cue text without markup (<i>, <c.class>, inline time stamps) and with entities decoded."""
    return html.unescape(_TAG.sub("", text)).strip()


def split_speaker_prefix(text: str) -> tuple[str | None, str]:
    """`Dana: hello` -> ("Dana", "hello"); `[Dana] hello` -> ("Dana", "hello"); else (None, text)."""
    for pattern in (_SPEAKER_PREFIX, _BRACKET_SPEAKER):
        match = pattern.match(text)
        if match is not None and len(match["speaker"].split()) <= MAX_SPEAKER_WORDS:
            return match["speaker"].strip(), match["text"].strip()
    return None, text


def cue_segment(location: str, speaker: str | None, text: str, start: float, end: float) -> Segment:
    return Segment(location=location, text=text, speaker=speaker, start=start, end=end)
