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

A leading header block of call metadata is read as such, not as speech:

    Call ID: 12345
    Date: 2026-11-30 10:02
    Duration: 00:04:31
    Queue: Billing

    Agent: Thank you for calling...

Header lines are `Key: value` lines before the first turn whose key is a known metadata key
(`HEADER_KEYS`), never a speaker label: "Agent: thank you for calling" is speech. The header ends before
a line whose value reads as a sentence (`reads_as_speech`: "Recording: This call may be recorded.") and
before a key that appears again, in the header or later in the file ("From: ... To: ... From: ..."): those
are speakers, and their lines speech. A first block set apart by a blank line is read whole when it looks
like one (`_header_block`: most keys known, none a party's label), unknown keys ("Tenant:") included. Values
with a place in the call (the call's id, its start, the agent's
id, team, language) are kept, as values the uploader's explicit ones override; the other keys are listed in
a warning.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from app.ingest.model import Segment, SourceCall
from app.ingest.roles import role_from_label
from app.ingest.source import SourceDocument, call_metadata

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


# Header keys, as written in lower case with "_" and "-" read as spaces, by the call field they fill.
_EXTERNAL_ID_KEYS = frozenset({
    "call id", "callid", "call uuid", "call reference", "call ref", "contact id", "interaction id",
    "conversation id", "external id",
})  # fmt: skip
_DATE_TIME_KEYS = frozenset({
    "date", "call date", "start", "start time", "started", "started at", "call start", "call started",
    "date time", "datetime", "timestamp",
})  # fmt: skip
_TIME_KEYS = frozenset({"time", "call time"})  # completes a date given alone: "Date: 2026-11-30", "Time: 10:02"
_AGENT_ID_KEYS = frozenset({"agent id", "agent number", "agent login"})
_TEAM_KEYS = frozenset({"team", "agent team"})
_LANGUAGE_KEYS = frozenset({"language", "locale", "language code"})
# Metadata Postcall has no field for: recognised so that they are not speech, and named in a warning.
_OTHER_KEYS = frozenset({
    "duration", "call duration", "length", "talk time", "hold time", "end", "end time", "ended", "ended at",
    "queue", "queue name", "skill", "campaign", "direction", "channel", "disposition", "wrap up",
    "agent name", "agent email", "supervisor name", "customer name", "caller name", "customer id", "caller id",
    "account", "account id", "account number", "phone", "phone number", "ani", "dnis", "from", "to",
    "recording", "recording id", "recording url", "title", "subject", "site", "location", "department",
    "priority", "tags", "transcript id", "transcribed", "transcribed at", "source",
})  # fmt: skip
HEADER_KEYS = (
    _EXTERNAL_ID_KEYS | _DATE_TIME_KEYS | _TIME_KEYS | _AGENT_ID_KEYS | _TEAM_KEYS | _LANGUAGE_KEYS | _OTHER_KEYS
)
# A BCP 47 tag ("en", "en-US", "pt-BR"): "English" is a language's name, not a tag.
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


def _header_key(speaker: str) -> str:
    return " ".join(speaker.lower().replace("_", " ").replace("-", " ").split())


# A value that reads as a sentence is speech, not metadata: "This call may be recorded for quality purposes.",
# "You are caller number three.", "Hi, I'm calling about my card". Metadata values are short: an id, a date,
# a name, a queue ("Billing", "Smith, John", "Austin, TX, USA", "https://rec.example/a.wav").
_SENTENCE_END_MARK = re.compile(r"[.?!…]\W*$")
_INNER_SENTENCE_MARK = re.compile(r"\w[?!…]+\s+\S")  # not ".": "Mr. J. Smith" is a name
SENTENCE_MIN_WORDS = 3  # with sentence punctuation (. ? ! … ending the value, or ? ! … between its words)
COMMA_SENTENCE_MIN_WORDS = 5  # with a comma between words
MAX_METADATA_WORDS = 8  # a longer value is speech whatever its punctuation


def reads_as_speech(value: str) -> bool:
    """Whether a header line's value reads as a sentence someone said rather than a metadata value."""
    words = [word for word in value.split() if any(character.isalpha() for character in word)]
    if len(words) > MAX_METADATA_WORDS:
        return True
    if len(words) >= SENTENCE_MIN_WORDS and (_SENTENCE_END_MARK.search(value) or _INNER_SENTENCE_MARK.search(value)):
        return True
    return len(words) >= COMMA_SENTENCE_MIN_WORDS and ", " in value


def _header_lines(lines: list[str]) -> list[tuple[int, str, str]]:
    """The leading metadata lines: (line number, key as written, value), up to the first line that is not
    one. The header ends before a line whose value reads as a sentence (`reads_as_speech`) and before a key
    that appears again, in the header or below it ("From: ... To: ... From: ...", "Date: ..." twice): such a
    key is a speaker. A real turn is never taken for metadata."""
    header: list[tuple[int, str, str]] = []
    end = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _speaker_line(line)
        if match is None or match["lead"] or match["inner"] or _header_key(match["speaker"]) not in HEADER_KEYS:
            break
        value = match["text"].strip()
        if reads_as_speech(value):
            break
        header.append((number, match["speaker"].strip(), value))
        end = number
    block = _header_block(lines)
    if block is not None and len(block) > len(header):
        header, end = block, block[-1][0]
    if not header:
        return header
    speakers_below = {
        _header_key(match["speaker"]) for line in lines[end:] if (match := _speaker_line(line)) is not None
    }
    keys = [_header_key(key) for _, key, _ in header]
    for position, key in enumerate(keys):
        if key in speakers_below or key in keys[position + 1 :]:
            return header[:position]
    return header


def _header_block(lines: list[str]) -> list[tuple[int, str, str]] | None:
    """The file's first lines as a header when they form a block of their own: `Key: value` lines up to the
    first blank line, with turns after it, at least one key a known one (`HEADER_KEYS`), no key twice, none
    that speaks below, no value that reads as a sentence. Keys of no call field ("Tenant:", "Brand:") are
    then metadata too: read key by key, the first unknown one ended the header, and the call's "Team:" and
    "Date:" below it became utterances (with a role)."""
    block: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            break
        match = _speaker_line(line)
        if match is None or match["lead"] or match["inner"] or reads_as_speech(match["text"].strip()):
            return None
        block.append((number, match["speaker"].strip(), match["text"].strip()))
    else:
        return None  # no blank line: no block apart from the turns
    keys = [_header_key(key) for _, key, _ in block]
    unknown = [key for _, key, _ in block if _header_key(key) not in HEADER_KEYS]
    # Most of its keys known ones, and no other a party's label: "Title: Call 5" over "Rep: Hello there" is
    # a title and the first turn.
    if not block or len(set(keys)) != len(keys) or 2 * len(unknown) >= len(keys) \
            or any(role_from_label(key) is not None for key in unknown):
        return None
    below = [match for line in lines[block[-1][0]:] if (match := _speaker_line(line)) is not None]
    if not below or any(_header_key(match["speaker"]) in keys for match in below):
        return None
    return block


def _iso_date_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace(" UTC", "Z").strip())
    except ValueError:
        return None


def _header_metadata(
    header: list[tuple[int, str, str]],
) -> tuple[dict[str, tuple[str, Any]], list[str], dict[str, str]]:
    """The call fields the header fills, `{field: (location, value)}`, its warnings, and the key (as written)
    each field came from."""
    fields: dict[str, tuple[str, Any]] = {}
    not_kept: list[str] = []
    unreadable: list[str] = []
    date: tuple[int, str, str] | None = None
    time_of_day: tuple[int, str, str] | None = None
    for number, key, value in header:
        normal = _header_key(key)
        location = f"line {number}"
        if not value:
            not_kept.append(key)
        elif normal in _EXTERNAL_ID_KEYS and "external_id" not in fields:
            fields["external_id"] = (location, value)
        elif normal in _AGENT_ID_KEYS and "agent_id" not in fields:
            fields["agent_id"] = (location, value)
        elif normal in _TEAM_KEYS and "team" not in fields:
            fields["team"] = (location, value)
        elif normal in _LANGUAGE_KEYS and "language" not in fields:
            if _LANGUAGE_TAG.match(value):
                fields["language"] = (location, value)
            else:
                unreadable.append(f"{key} ({value[:40]!r} is not a language tag such as en-US)")
        elif normal in _DATE_TIME_KEYS and date is None:
            date = (number, key, value)
        elif normal in _TIME_KEYS and time_of_day is None:
            time_of_day = (number, key, value)
        else:
            not_kept.append(key)
    warnings: list[str] = []
    if date is not None:
        number, key, value = date
        started = _iso_date_time(value)
        if started is not None and time_of_day is not None and len(value.strip()) <= len("2026-11-30"):
            started = _iso_date_time(f"{value.strip()}T{time_of_day[2]}")
            if started is not None:
                time_of_day = None  # used
        if started is None:
            unreadable.append(f"{key} ({value[:40]!r} is not an ISO 8601 date-time such as 2026-11-30 10:02)")
        else:
            fields["started_at"] = (f"line {number}", started)
            if started.tzinfo is None:
                warnings.append(f"the header's {key} {started.isoformat()} has no time zone: taken as UTC")
    if time_of_day is not None:
        not_kept.append(time_of_day[1])
    if unreadable:
        warnings.append("header values not read: " + "; ".join(unreadable))
    if not_kept:
        warnings.append("header lines not kept (a call has no field for them): " + ", ".join(not_kept))
    keys = {f"line {number}": key for number, key, _ in header}
    return fields, warnings, {name: keys[location] for name, (location, _) in fields.items()}


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
    lines = doc.text.splitlines()
    header = _header_lines(lines)
    body_starts = header[-1][0] if header else 0  # lines before this one (1-based) are the header's
    # Each entry: [line number, speaker, start, text parts]
    entries: list[tuple[int, str, float | None, list[str]]] = []
    for number, line in enumerate(lines[body_starts:], start=body_starts + 1):
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
    if header and not entries:
        keys = ", ".join(key for _, key, _ in header[:5])
        raise doc.error(None, f"only a header of call metadata ({keys}), no 'Speaker: text' turn after it")

    segments = [
        Segment(location=f"line {number}", text=" ".join(p for p in parts if p), speaker=speaker, start=start)
        for number, speaker, start, parts in entries
    ]
    fields, warnings, from_header = _header_metadata(header)
    return SourceCall(segments=segments, metadata=call_metadata(doc.name, fields), grouping="keep",
                      warnings=warnings, from_header=from_header)
