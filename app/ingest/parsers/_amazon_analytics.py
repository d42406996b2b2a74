"""Shared by Transcribe Call Analytics and Contact Lens: turns with roles, and detected insights.

Both list turns as `Transcript: [{"Content", "BeginOffsetMillis", "EndOffsetMillis", ...,
"IssuesDetected"?, "ActionItemsDetected"?, "OutcomesDetected"?}]`, where each detected insight marks a
character range of the turn (`CharacterOffsets: {"Begin", "End"}` in Call Analytics,
`{"BeginOffsetChar", "EndOffsetChar"}` in Contact Lens). Insights are kept as `vendor_hints`, with the
index of the utterance they point at and the quoted text: hints for the extractor and reviewers,
never facts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from app.ingest.model import Segment
from app.ingest.source import SourceDocument, join_path
from app.ingest.vendor_json import Label, OptionalNumber, Time, VendorModel, ignored_unless_object
from app.schemas.transcript import Role
from app.text.storable import is_blank

MILLISECONDS = 1000.0
# Vendor insight list in each turn -> key under vendor_hints.
INSIGHT_KEYS: dict[str, str] = {
    "IssuesDetected": "issues",
    "ActionItemsDetected": "action_items",
    "OutcomesDetected": "outcomes",
}


class CharacterRange(VendorModel):
    Begin: OptionalNumber = None
    End: OptionalNumber = None
    BeginOffsetChar: OptionalNumber = None
    EndOffsetChar: OptionalNumber = None


class Insight(VendorModel):
    CharacterOffsets: CharacterRange = Field(default_factory=CharacterRange)


class Turn(VendorModel):
    Content: str
    BeginOffsetMillis: Time = None
    EndOffsetMillis: Time = None
    ParticipantRole: Label = None
    ParticipantId: Label = None
    IssuesDetected: list[Insight] | None = None
    ActionItemsDetected: list[Insight] | None = None
    OutcomesDetected: list[Insight] | None = None


class MatchedCategories(VendorModel):
    MatchedCategories: list[str] = Field(default_factory=list)


class AnalyticsOutput(VendorModel):
    """What Call Analytics and Contact Lens outputs have in common."""

    JobStatus: object = None
    LanguageCode: object = None
    Transcript: list[Turn]
    Categories: Annotated[MatchedCategories | None, ignored_unless_object] = None


def refuse_unfinished_job(doc: SourceDocument) -> None:
    """A job that did not complete has no transcript worth reading: say so before anything else."""
    root = doc.json()
    status = root.get("JobStatus") if isinstance(root, dict) else None
    if isinstance(status, str) and status.upper() != "COMPLETED":
        raise doc.error("JobStatus", f"job status is {status!r}, not COMPLETED")


# Amazon Connect's participant roles (AGENT | CUSTOMER | SYSTEM | CUSTOM_BOT | SUPERVISOR): a supervisor who
# barges in speaks for the company; the system (IVR prompts) and a bot are neither party.
_PARTICIPANT_ROLES = {"AGENT": Role.agent, "SUPERVISOR": Role.agent, "CUSTOMER": Role.customer,
                      "SYSTEM": Role.unknown, "CUSTOM_BOT": Role.unknown}


def role_of_participant(value: str | None) -> Role | None:
    """AWS participant roles, also numbered in some outputs (AGENT_1, CUSTOMER_2); None for another value."""
    if value is None:
        return None
    upper = value.upper()
    if upper.startswith("CUSTOM_BOT"):
        return _PARTICIPANT_ROLES["CUSTOM_BOT"]
    return _PARTICIPANT_ROLES.get(upper.split("_", 1)[0])


def _insight_text(insight: Insight, content: str) -> dict[str, Any]:
    """The characters an insight marks, with offsets into the utterance the turn becomes (its content
    stripped, as assembly stores it), so that `text == utterance.text[char_start:char_end]`.

    A range that is not whole offsets within the turn marks nothing we can quote: slicing with it would
    quote something else (a negative offset counts from the end), and clamping would quote characters the
    vendor did not mark. The hint then quotes the whole turn, as when the vendor gives no range."""
    spoken = content.strip()
    offsets = insight.CharacterOffsets
    for begin, end in ((offsets.Begin, offsets.End), (offsets.BeginOffsetChar, offsets.EndOffsetChar)):
        if begin is None or end is None:
            continue
        if not (begin.is_integer() and end.is_integer() and 0 <= begin <= end <= len(content)):
            break
        lead = len(content) - len(content.lstrip())  # whitespace the utterance loses at its start
        char_start = min(max(int(begin) - lead, 0), len(spoken))
        char_end = min(max(int(end) - lead, char_start), len(spoken))
        return {"char_start": char_start, "char_end": char_end, "text": spoken[char_start:char_end]}
    return {"text": spoken}


def analytics_turns(
    turns: list[Turn], speaker_of: Callable[[Turn], tuple[str | None, Role | None]]
) -> tuple[list[Segment], dict[str, list[dict[str, Any]]]]:
    """Segments for the turns, and the detected insights keyed by kind (see INSIGHT_KEYS)."""
    segments: list[Segment] = []
    insights: dict[str, list[dict[str, Any]]] = {}
    spoken_index = 0  # the utterance index a turn will get: empty turns are dropped by assembly
    for position, turn in enumerate(turns):
        speaker, role = speaker_of(turn)
        segments.append(
            Segment(
                location=join_path("Transcript", position),
                text=turn.Content,
                speaker=speaker,
                role=role,
                start=None if turn.BeginOffsetMillis is None else turn.BeginOffsetMillis / MILLISECONDS,
                end=None if turn.EndOffsetMillis is None else turn.EndOffsetMillis / MILLISECONDS,
                start_field="BeginOffsetMillis",
                end_field="EndOffsetMillis",
            )
        )
        if is_blank(turn.Content):  # blank as assembly judges it (zero-width only too), so indices match
            continue
        for vendor_key, hint_key in INSIGHT_KEYS.items():
            for insight in getattr(turn, vendor_key) or ():
                hint = _insight_text(insight, turn.Content)
                insights.setdefault(hint_key, []).append({"utterance_index": spoken_index, **hint})
        spoken_index += 1
    return segments, insights


def vendor_hints(output: AnalyticsOutput, insights: dict[str, list[dict[str, Any]]], vendor: str) -> dict[str, Any]:
    """The detected insights and matched categories, marked with the vendor format (empty when none)."""
    hints: dict[str, Any] = dict(insights)
    if output.Categories is not None and output.Categories.MatchedCategories:
        hints["categories"] = list(output.Categories.MatchedCategories)
    if hints:
        hints["vendor"] = vendor
    return hints
