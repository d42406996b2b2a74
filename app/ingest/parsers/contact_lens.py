"""Amazon Connect Contact Lens post-call analysis output (voice, Version 1.1.0).

Shape (docs.aws.amazon.com/connect, "Example Contact Lens output files"):

    {"Version": "1.1.0", "Channel": "VOICE", "JobStatus", "LanguageCode",
     "CustomerMetadata": {"ContactId", "InstanceId", ...},
     "Participants": [{"ParticipantId": "AGENT", "ParticipantRole": "AGENT"}, ...],
     "Transcript": [{"ParticipantId", "Content", "BeginOffsetMillis", "EndOffsetMillis", "Sentiment",
                     "IssuesDetected"?: [{"CharacterOffsets": {"BeginOffsetChar", "EndOffsetChar"}}]}],
     "Categories": {"MatchedCategories": [...]}}

The speaker label is the `ParticipantId`; its role comes from `Participants`. The external id is the
Amazon Connect contact id.
"""

from __future__ import annotations

from typing import Any

from app.ingest.model import SourceCall
from app.ingest.parsers._amazon_analytics import analytics_turns, matched_categories, role_of_participant
from app.ingest.source import SourceDocument, call_metadata
from app.schemas.transcript import Role

FORMAT = "contact_lens"
DESCRIPTION = "Amazon Connect Contact Lens post-call analysis JSON (voice)"


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict) or not isinstance(value.get("Transcript"), list):
        return False
    return "CustomerMetadata" in value or ("Version" in value and "Participants" in value)


def parse(doc: SourceDocument) -> SourceCall:
    reader = doc.reader
    root = reader.object(doc.json(), "")
    status = root.get("JobStatus")
    if isinstance(status, str) and status.upper() != "COMPLETED":
        raise doc.error("JobStatus", f"job status is {status!r}, not COMPLETED")
    channel = root.get("Channel")
    if isinstance(channel, str) and channel.upper() != "VOICE":
        raise doc.error("Channel", f"only VOICE analysis files are supported, not {channel!r}")

    roles: dict[str, Role] = {}
    for position, raw in enumerate(reader.array(root.get("Participants", []), "Participants")):
        path = f"Participants[{position}]"
        participant = reader.object(raw, path)
        participant_id = reader.label(participant.get("ParticipantId"), f"{path}.ParticipantId")
        role = role_of_participant(reader.label(participant.get("ParticipantRole"), f"{path}.ParticipantRole"))
        if participant_id is not None and role is not None:
            roles[participant_id] = role

    def speaker_of(turn: dict[str, Any], path: str) -> tuple[str | None, Role | None]:
        participant_id = reader.label(turn.get("ParticipantId"), f"{path}.ParticipantId")
        if participant_id is None:
            return None, None
        return participant_id, roles.get(participant_id) or role_of_participant(participant_id)

    turns = reader.array(reader.field(root, "Transcript", ""), "Transcript")
    segments, insights = analytics_turns(reader, turns, speaker_of)
    hints: dict[str, Any] = dict(insights)
    categories = matched_categories(reader, root)
    if categories:
        hints["categories"] = categories
    if hints:
        hints["vendor"] = FORMAT
    customer_metadata = root.get("CustomerMetadata")
    contact_id = customer_metadata.get("ContactId") if isinstance(customer_metadata, dict) else None
    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "external_id": ("CustomerMetadata.ContactId", contact_id or None),
                "language": ("LanguageCode", root.get("LanguageCode") or None),
            },
        ),
        vendor_hints=hints,
        grouping="keep",
    )
