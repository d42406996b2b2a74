"""Amazon Transcribe Call Analytics output (`StartCallAnalyticsJob`).

Shape (docs.aws.amazon.com/transcribe, "Call Analytics output"):

    {"JobName", "JobStatus", "LanguageCode", "Channel": "VOICE",
     "Participants": [{"ParticipantRole": "AGENT"}, ...],
     "Transcript": [{"ParticipantRole": "AGENT" | "CUSTOMER", "Content", "BeginOffsetMillis",
                     "EndOffsetMillis", "IssuesDetected"?, "ActionItemsDetected"?, "OutcomesDetected"?}],
     "Categories": {"MatchedCategories": [...]}, "ConversationCharacteristics": {...}}

Roles come from `ParticipantRole` (confidence 1.0); the speaker label is that role as written.
Detected issues, action items, outcomes and matched categories are kept as `analytics.vendor_hints`.
"""

from __future__ import annotations

from app.ingest.model import SourceCall
from app.ingest.parsers import _amazon_analytics as analytics
from app.ingest.source import SourceDocument, call_metadata
from app.ingest.vendor_json import read
from app.schemas.transcript import Role

FORMAT = "aws_call_analytics"
DESCRIPTION = "Amazon Transcribe Call Analytics JSON (participant roles, detected issues/action items)"


class CallAnalyticsOutput(analytics.AnalyticsOutput):
    JobName: object = None


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict) or not isinstance(value.get("Transcript"), list):
        return False
    turns = value["Transcript"]
    return "JobName" in value or (bool(turns) and isinstance(turns[0], dict) and "ParticipantRole" in turns[0])


def _speaker_of(turn: analytics.Turn) -> tuple[str | None, Role | None]:
    return turn.ParticipantRole, analytics.role_of_participant(turn.ParticipantRole)


def parse(doc: SourceDocument) -> SourceCall:
    analytics.refuse_unfinished_job(doc)
    output = read(doc, CallAnalyticsOutput)
    segments, insights = analytics.analytics_turns(output.Transcript, _speaker_of)
    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "external_id": ("JobName", output.JobName or None),
                "language": ("LanguageCode", output.LanguageCode or None),
            },
        ),
        vendor_hints=analytics.vendor_hints(output, insights, FORMAT),
        grouping="keep",
    )
