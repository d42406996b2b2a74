"""Plain text transcripts: one `Speaker: text` line per utterance.

    [00:03] Agent: Thank you for calling Acme, this is Dana.
    [00:07] Customer: Hi, I'm calling about my bill.
      It went up by twenty dollars.          <- continuation line, joined to the previous utterance
    Agent [01:02:05]: Let me check that for you.
    Customer (01:02:09): Thanks.

A time stamp (`[mm:ss]`, `[hh:mm:ss]`, optional `.fff`; or the same in parentheses) may precede the
speaker or sit between the speaker and the colon; it gives the utterance's start. Any speaker name is
allowed (up to `MAX_SPEAKER_WORDS` words starting with a letter); names such as Agent or Customer also
give the role.
"""

from __future__ import annotations

import re

from app.ingest.model import Segment, SourceCall
from app.ingest.source import SourceDocument

FORMAT = "text"
DESCRIPTION = "plain text, one 'Speaker: text' line per utterance, optional [mm:ss] or (mm:ss) stamps"

MAX_SPEAKER_CHARS = 40
MAX_SPEAKER_WORDS = 4

_STAMP_TIME = r"\d{1,3}:\d{2}(?::\d{2})?(?:[.,]\d{1,3})?"


def _stamp(name: str) -> str:
    """A stamp as written, brackets included: `[00:03]`, or `(00:03)` as in `Agent (01:02): ...`."""
    return rf"(?P<{name}>\[{_STAMP_TIME}\]|\({_STAMP_TIME}\))"


_LINE = re.compile(
    r"^\s*(?:" + _stamp("lead") + r"\s*)?"
    r"(?P<speaker>[^\W\d_#][^:\[\]]{0," + str(MAX_SPEAKER_CHARS - 1) + r"}?|#[^:\[\]#]{1,38}#)"
    r"\s*(?:" + _stamp("inner") + r"\s*)?"
    r":(?!//)\s*(?P<text>.*)$"
)
# Parentheses in a name must close (`Dana (billing)`): a name holds no colon, so one cut off at a colon
# inside parentheses (`Agent (1` of `Agent (1:5): hi`) has swallowed a stamp this parser cannot read.
_NAME_CHARACTER = r"[\w .'#-]"
_SPEAKER_CHARACTERS = re.compile(rf"^{_NAME_CHARACTER}+(?:\({_NAME_CHARACTER}*\){_NAME_CHARACTER}*)*$")


def _speaker_line(line: str) -> re.Match[str] | None:
    match = _LINE.match(line)
    if match is None:
        return None
    speaker = match["speaker"].strip()
    if len(speaker.split()) > MAX_SPEAKER_WORDS or not _SPEAKER_CHARACTERS.match(speaker):
        return None
    return match


def _stamp_seconds(stamp: str) -> float | None:
    """`mm:ss`, `hh:mm:ss`, with optional fraction; None when a field is out of range."""
    whole, _, fraction = stamp.replace(",", ".").partition(".")
    fields = [int(part) for part in whole.split(":")]
    if any(part >= 60 for part in fields[1:]):
        return None
    seconds = 0.0
    for part in fields:
        seconds = seconds * 60 + part
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


def detect(doc: SourceDocument) -> bool:
    if doc.looks_like_json:
        return False
    for line in doc.text.splitlines():
        if line.strip():
            return _speaker_line(line) is not None
    return False


def parse(doc: SourceDocument) -> SourceCall:
    # Each entry: [line number, speaker, start, text parts]
    entries: list[tuple[int, str, float | None, list[str]]] = []
    for number, line in enumerate(doc.text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _speaker_line(line)
        if match is None:
            if not entries:
                raise doc.error(
                    f"line {number}",
                    "expected 'Speaker: text' (for example 'Agent: Hello'), got "
                    f"{line.strip()[:60]!r}",
                )
            entries[-1][3].append(line.strip())
            continue
        stamp = match["lead"] or match["inner"]
        start = None
        if stamp is not None:
            start = _stamp_seconds(stamp[1:-1])
            if start is None:
                raise doc.error(f"line {number}", f"invalid time stamp {stamp}")
        entries.append((number, match["speaker"].strip(), start, [match["text"].strip()]))

    segments = [
        Segment(location=f"line {number}", text=" ".join(p for p in parts if p), speaker=speaker, start=start)
        for number, speaker, start, parts in entries
    ]
    return SourceCall(segments=segments, grouping="keep")
