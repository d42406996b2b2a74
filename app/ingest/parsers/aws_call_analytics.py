"""Amazon Transcribe Call Analytics output (`StartCallAnalyticsJob`).

Shape (docs.aws.amazon.com/transcribe, "Call Analytics output"):

    {"JobName", "JobStatus", "LanguageCode", "Channel": "VOICE",
     "Participants": [{"ParticipantRole": "AGENT"}, ...],
     "Transcript": [{"ParticipantRole": "AGENT" | "CUSTOMER", "Content", "BeginOffsetMillis",
                     "EndOffsetMillis", "IssuesDetected"?, "ActionItemsDetected"?, "OutcomesDetected"?}],
     "Categories": {"MatchedCategories": [...]}, "ConversationCharacteristics": {...}}

Roles come from `ParticipantRole` (confidence 1.0); the speaker label is that role as written.
Detected issues, action items, outcomes and matched categories are kept as `vendor_hints`.
"""

from __future__ import annotations

from typing import Any

from app.ingest.model import SourceCall
from app.ingest.parsers._amazon_analytics import analytics_turns, matched_categories, role_of_participant
from app.ingest.source import SourceDocument, call_metadata
from app.schemas.transcript import Role

FORMAT = "aws_call_analytics"
DESCRIPTION = "Amazon Transcribe Call Analytics JSON (participant roles, detected issues/action items)"


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict) or not isinstance(value.get("Transcript"), list):
        return False
    turns = value["Transcript"]
    return "JobName" in value or (bool(turns) and isinstance(turns[0], dict) and "ParticipantRole" in turns[0])


def parse(doc: SourceDocument) -> SourceCall:
    reader = doc.reader
    root = reader.object(doc.json(), "")
    status = root.get("JobStatus")
    if isinstance(status, str) and status.upper() != "COMPLETED":
        raise doc.error("JobStatus", f"job status is {status!r}, not COMPLETED")
    turns = reader.array(reader.field(root, "Transcript", ""), "Transcript")

    def speaker_of(turn: dict[str, Any], path: str) -> tuple[str | None, Role | None]:
        label = reader.label(turn.get("ParticipantRole"), f"{path}.ParticipantRole")
        return label, role_of_participant(label)

    segments, insights = analytics_turns(reader, turns, speaker_of)
    hints: dict[str, Any] = dict(insights)
    categories = matched_categories(reader, root)
    if categories:
        hints["categories"] = categories
    if hints:
        hints["vendor"] = FORMAT
    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "external_id": ("JobName", root.get("JobName") or None),
                "language": ("LanguageCode", root.get("LanguageCode") or None),
            },
        ),
        vendor_hints=hints,
        grouping="keep",
    )
