"""Turn a parser's segments into a validated canonical `Transcript`.

Shared by every format, so the rules are the same everywhere:

* times are seconds; a negative time, an end before its start or a time beyond 24 hours is rejected;
* utterances must come in time order: a start more than `ORDER_TOLERANCE_SECONDS` before the
  previous start is rejected (a source's order defines the utterance indices that citations use, so
  it is never silently changed; parsers that merge several streams, such as channels, sort by time
  themselves before this point);
* vendor fragments without text are dropped with a warning; an authored utterance without text,
  or a call with no text at all, is rejected;
* word fragments are joined into turns by speaker; roles come from the source, from `agent_speaker`,
  or from inference (see `roles.py`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from app.errors import IngestError
from app.ingest.model import Grouping, ParsedTranscript, Segment, SourceCall, TimeUnit
from app.ingest.roles import SOURCE_ROLE_CONFIDENCE, assign_agent, infer_roles, single_speaker_warning
from app.ingest.source import FRAGMENTS_PER_UTTERANCE
from app.schemas.transcript import Role, Transcript, Utterance
from app.text.storable import is_blank

MAX_CALL_SECONDS = 24 * 60 * 60
# Diarizers and channel merges let a start lag the previous one slightly (overlapping speech).
ORDER_TOLERANCE_SECONDS = 1.0
# Word fragments: a silence this long starts a new utterance even without a change of speaker.
LONG_PAUSE_SECONDS = 2.0
# Word fragments: a turn longer than this is split at the next sentence end, so that citations can
# point at something shorter than a whole monologue.
MAX_TURN_SECONDS = 30.0
_SENTENCE_END = (".", "?", "!")
# Times in the wrong unit. Speech runs at about 10-20 characters a second (slow speech, pauses and
# languages written without spaces go down to ~3); these bounds are two orders of magnitude beyond that.
# Below SLOWEST (one character in 10 s) the times are milliseconds read as seconds (1,000x too slow); above
# FASTEST they are seconds read as milliseconds (1,000x too fast). The median over the call's timed
# utterances decides, so a long hold or music segment does not.
SLOWEST_PLAUSIBLE_CHARS_PER_SECOND = 0.1
FASTEST_PLAUSIBLE_CHARS_PER_SECOND = 1000.0

# The label given to speech from a source that does not separate speakers.
UNDIARIZED_SPEAKER = "speaker"


@dataclass(slots=True)
class _Turn:
    location: str
    speaker: str | None
    role: Role | None
    role_confidence: float | None
    start: float | None
    end: float | None
    parts: list[str] = field(default_factory=list)

    def add(self, segment: Segment) -> None:
        self.parts.append(segment.text.strip())
        if segment.end is not None:
            self.end = segment.end if self.end is None else max(self.end, segment.end)
        if self.start is None:
            self.start = segment.start

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def _over_limit(count: int, what: str, max_utterances: int) -> str:
    return (f"the call has {count:,} {what}; the limit is {max_utterances:,} utterances per call "
            "(POSTCALL_MAX_UTTERANCES_PER_CALL)")


def _format_seconds(value: float) -> str:
    return f"{value:g} s"


def _check_times(segment: Segment, source: str, time_unit: TimeUnit | None) -> None:
    for value, field_name in ((segment.start, segment.start_field), (segment.end, segment.end_field)):
        if value is None:
            continue
        where = segment.time_location(field_name)
        if value < 0:
            raise IngestError(source, where, f"negative time {_format_seconds(value)}")
        if value > MAX_CALL_SECONDS:
            # Milliseconds read as seconds reach 24 hours in a call of 86 s: say it when the format's unit is s.
            hint = ("; this format's times are seconds: are these milliseconds? (write them divided by 1000)"
                    if time_unit == "seconds" else "")
            raise IngestError(
                source, where, f"time {_format_seconds(value)} is more than 24 hours into the call{hint}"
            )
    if segment.start is not None and segment.end is not None and segment.end < segment.start:
        raise IngestError(
            source,
            segment.location,
            f"ends ({_format_seconds(segment.end)}) before it starts ({_format_seconds(segment.start)})",
        )


def _speech_rates(segments: Sequence[Segment]) -> list[float]:
    """Characters per second of each timed utterance with text: over its own span (start to end), or, without
    an end, until the next utterance starts."""
    rates: list[float] = []
    timed = [segment for segment in segments if segment.start is not None]
    for position, segment in enumerate(timed):
        assert segment.start is not None
        if segment.end is not None and segment.end > segment.start:
            span = segment.end - segment.start
        elif segment.end is None and position + 1 < len(timed):
            span = (timed[position + 1].start or 0.0) - segment.start
        else:
            continue
        characters = sum(1 for character in segment.text if not character.isspace())
        if span > 0 and characters:
            rates.append(characters / span)
    return rates


def _all_whole_numbers(segments: Sequence[Segment]) -> bool:
    return all(
        value is None or float(value).is_integer()
        for segment in segments for value in (segment.start, segment.end)
    )


def time_unit_warning(segments: Sequence[Segment], time_unit: TimeUnit | None) -> str | None:
    """A warning when the times cannot be in the format's unit: speech 1,000 times too slow (milliseconds
    in a format of seconds: a 40-second call read as 11 hours, unnoticed below the 24-hour limit) or too fast
    (seconds in a format of milliseconds). The times are kept as given: the format names its unit, and a
    guess that rewrote them would be wrong the one time speech is that slow."""
    if time_unit is None:
        return None
    rates = _speech_rates(segments)
    if not rates:
        return None
    rate = statistics.median(rates)
    fields = ", ".join(dict.fromkeys(name for s in segments for name in (s.start_field, s.end_field) if name))
    fields = f" ({fields})" if fields else ""
    if time_unit == "seconds" and rate < SLOWEST_PLAUSIBLE_CHARS_PER_SECOND and _all_whole_numbers(segments):
        return (f"the times{fields} look like milliseconds, not seconds: read as seconds, speech runs at "
                f"{rate:.3g} characters a second (people speak about 10-20); this format's times are seconds, so "
                "they are kept as given: divide them by 1000 and ingest again with --replace")
    if time_unit == "milliseconds" and rate > FASTEST_PLAUSIBLE_CHARS_PER_SECOND:
        return (f"the times{fields} look like seconds, not milliseconds: read as milliseconds, speech runs at "
                f"{rate:,.0f} characters a second (people speak about 10-20); this format's times are "
                "milliseconds, so they are kept as given: multiply them by 1000 and ingest again with --replace")
    return None


def _check_order(segments: Sequence[Segment], source: str) -> None:
    previous: Segment | None = None
    for segment in segments:
        if segment.start is None:
            continue
        if (
            previous is not None
            and previous.start is not None
            and segment.start < previous.start - ORDER_TOLERANCE_SECONDS
        ):
            raise IngestError(
                source,
                segment.time_location(segment.start_field),
                f"starts at {_format_seconds(segment.start)}, before the previous utterance "
                f"({previous.location}) at {_format_seconds(previous.start)}; utterances must be in "
                "time order",
            )
        previous = segment


def _starts_new_turn(turn: _Turn, segment: Segment, grouping: Grouping) -> bool:
    if grouping == "keep" or segment.speaker != turn.speaker:
        return True
    if grouping == "turns" and segment.speaker is None:
        return True  # unnamed subtitle cues stay apart: nothing says they are one person's turn
    if segment.start is not None and turn.end is not None:
        if segment.start - turn.end > LONG_PAUSE_SECONDS:
            return True
        if (
            grouping == "words"
            and turn.start is not None
            and segment.start - turn.start > MAX_TURN_SECONDS
            and turn.parts[-1].endswith(_SENTENCE_END)
        ):
            return True
    return False


def _group(segments: Sequence[Segment], grouping: Grouping) -> list[_Turn]:
    turns: list[_Turn] = []
    for segment in segments:
        if not turns or _starts_new_turn(turns[-1], segment, grouping):
            turns.append(
                _Turn(
                    location=segment.location,
                    speaker=segment.speaker,
                    role=segment.role,
                    role_confidence=segment.role_confidence,
                    start=segment.start,
                    end=segment.end,
                )
            )
        turns[-1].add(segment)
    return turns


def _source_role_confidence(turn: _Turn) -> float | None:
    if turn.role is None:
        return None
    return SOURCE_ROLE_CONFIDENCE if turn.role_confidence is None else turn.role_confidence


def _build_utterances(turns: Sequence[_Turn], source: str) -> list[Utterance]:
    utterances: list[Utterance] = []
    for index, turn in enumerate(turns):
        try:
            utterances.append(
                Utterance(
                    index=index,
                    speaker=turn.speaker or UNDIARIZED_SPEAKER,
                    role=turn.role or Role.unknown,
                    role_confidence=_source_role_confidence(turn),
                    start=turn.start,
                    end=turn.end,
                    text=turn.text,
                )
            )
        except ValidationError as exc:
            problem = "; ".join(error["msg"] for error in exc.errors())
            raise IngestError(source, turn.location, problem) from exc
    return utterances


def one_side_warnings(utterances: Sequence[Utterance], *, already: Sequence[str] = ()) -> list[str]:
    """A warning when two speakers or more are all on one side: every speaker the agent's ("Agent" and a
    customer labelled "Tech"), or every one the customer's. Someone's words are then owned by the wrong party,
    and the action items with them; nothing else says so. Machines (unknown) are neither side and not counted;
    a call whose roles already carry a warning gets no second one."""
    sides: dict[str, Role] = {}
    for utterance in utterances:
        if utterance.role in (Role.agent, Role.customer):
            sides.setdefault(utterance.speaker, utterance.role)
    if len(sides) < 2 or len(set(sides.values())) > 1 or already:
        return []
    side = next(iter(sides.values())).value
    named = ", ".join(repr(speaker) for speaker in list(sides)[:5])
    return [f"every speaker is on the {side}'s side ({named}): check the speaker labels, or name the agent with "
            "--agent-speaker (agent_speaker in the API)"]


def _assign_roles(
    utterances: list[Utterance], turns: Sequence[_Turn], source: str, agent_speaker: str | None
) -> tuple[list[Utterance], list[str]]:
    speakers = list(dict.fromkeys(u.speaker for u in utterances))
    if agent_speaker is not None:
        if agent_speaker not in speakers:
            listed = ", ".join(repr(speaker) for speaker in speakers)
            raise IngestError(
                source, None, f"agent speaker {agent_speaker!r} does not occur; the speakers are {listed}"
            )
        stated = {turn.speaker or UNDIARIZED_SPEAKER: turn.role for turn in turns if turn.role is not None}
        assigned = assign_agent(utterances, agent_speaker, known=stated)
        return assigned.utterances, assigned.warnings
    if all(turn.role is not None for turn in turns):
        # Every utterance carries the role its source gave it.
        if len(speakers) == 1:
            return utterances, [single_speaker_warning(speakers[0])]
        if all(turn.role is Role.unknown for turn in turns):
            return utterances, ["no speaker is the agent or the customer: the source gives every utterance the "
                                "role 'unknown' (neither party); leave the roles out to have them inferred"]
        return utterances, []
    known = {turn.speaker or UNDIARIZED_SPEAKER: turn.role for turn in turns if turn.role is not None}
    inference = infer_roles(utterances, known=known)
    return inference.utterances, inference.warnings


def assemble(
    call: SourceCall,
    *,
    source: str,
    detected_format: str,
    agent_speaker: str | None = None,
    max_utterances: int | None = None,
    time_unit: TimeUnit | None = None,
) -> ParsedTranscript:
    """Validate a parser's output and build the canonical transcript, or raise IngestError.

    `time_unit` is the unit of the format's numeric time fields (None: stamps), for the check that the
    times are in it (`time_unit_warning`)."""
    warnings = list(call.warnings)
    if not call.segments:
        raise IngestError(source, None, "the transcript has no utterances")
    if max_utterances is not None:
        limit = max_utterances if call.grouping == "keep" else max_utterances * FRAGMENTS_PER_UTTERANCE
        if len(call.segments) > limit:
            what = "utterances" if call.grouping == "keep" else "fragments"
            raise IngestError(source, None, _over_limit(len(call.segments), what, max_utterances))
    for segment in call.segments:
        _check_times(segment, source, time_unit)

    spoken: list[Segment] = []
    unlabelled = 0
    for segment in call.segments:
        if segment.speaker is not None and is_blank(segment.speaker):
            # A label that shows nothing ("   ", zero-width spaces) names no one: such speech is the
            # undiarized speaker's, as a segment without a label is, not an invisible speaker in the call page.
            segment = replace(segment, speaker=None)
            unlabelled += 1
        if not is_blank(segment.text):
            spoken.append(segment)
        elif call.reject_empty:
            raise IngestError(source, f"{segment.location}.text", "utterance text is empty")
    if not spoken:
        raise IngestError(source, None, f"none of the {len(call.segments)} utterances has any text")
    if len(spoken) < len(call.segments):
        dropped = len(call.segments) - len(spoken)
        warnings.append(f"dropped {dropped} empty fragment{'s' if dropped != 1 else ''}")
    if unlabelled:
        warnings.append(f"{unlabelled} utterance{'s' if unlabelled != 1 else ''} with a blank speaker label, "
                        f"shown as {UNDIARIZED_SPEAKER!r}")
    _check_order(spoken, source)
    unit_warning = time_unit_warning(spoken, time_unit)
    if unit_warning:
        warnings.append(unit_warning)

    turns = _group(spoken, call.grouping)
    if max_utterances is not None and len(turns) > max_utterances:
        raise IngestError(source, None, _over_limit(len(turns), "utterances", max_utterances))
    utterances = _build_utterances(turns, source)
    utterances, role_warnings = _assign_roles(utterances, turns, source, agent_speaker)
    warnings.extend(role_warnings)
    warnings.extend(one_side_warnings(utterances, already=role_warnings))
    try:
        transcript = Transcript(
            metadata=call.metadata,
            utterances=utterances,
            source_format=detected_format,
            vendor_hints=call.vendor_hints,
            warnings=warnings,
        )
    except ValidationError as exc:  # defensive: the checks above should make this unreachable
        raise IngestError(source, None, f"invalid transcript: {exc.errors()[0]['msg']}") from exc
    return ParsedTranscript(transcript=transcript, detected_format=detected_format, warnings=warnings,
                            from_header=dict(call.from_header))
