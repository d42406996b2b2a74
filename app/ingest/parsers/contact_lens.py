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

from typing import Annotated

from pydantic import Field

from app.ingest.model import SourceCall
from app.ingest.parsers import _amazon_analytics as analytics
from app.ingest.source import SourceDocument, call_metadata
from app.ingest.vendor_json import Label, VendorModel, ignored_unless_object, read
from app.schemas.transcript import Role

FORMAT = "contact_lens"
DESCRIPTION = "Amazon Connect Contact Lens post-call analysis JSON (voice)"


class Participant(VendorModel):
    ParticipantId: Label = None
    ParticipantRole: Label = None


class ContactMetadata(VendorModel):
    ContactId: object = None


class ContactLensOutput(analytics.AnalyticsOutput):
    Participants: list[Participant] = Field(default_factory=list)
    CustomerMetadata: Annotated[ContactMetadata | None, ignored_unless_object] = None


def detect(doc: SourceDocument) -> bool:
    if not doc.looks_like_json:
        return False
    value = doc.json()
    if not isinstance(value, dict) or not isinstance(value.get("Transcript"), list):
        return False
    return "CustomerMetadata" in value or ("Version" in value and "Participants" in value)


def parse(doc: SourceDocument) -> SourceCall:
    analytics.refuse_unfinished_job(doc)
    root = doc.json()
    channel = root.get("Channel") if isinstance(root, dict) else None
    if isinstance(channel, str) and channel.upper() != "VOICE":
        raise doc.error("Channel", f"only VOICE analysis files are supported, not {channel!r}")
    output = read(doc, ContactLensOutput)

    roles: dict[str, Role] = {}
    for participant in output.Participants:
        role = analytics.role_of_participant(participant.ParticipantRole)
        if participant.ParticipantId is not None and role is not None:
            roles[participant.ParticipantId] = role

    def speaker_of(turn: analytics.Turn) -> tuple[str | None, Role | None]:
        if turn.ParticipantId is None:
            return None, None
        return turn.ParticipantId, roles.get(turn.ParticipantId) or analytics.role_of_participant(turn.ParticipantId)

    segments, insights = analytics.analytics_turns(output.Transcript, speaker_of)
    contact_id = output.CustomerMetadata.ContactId if output.CustomerMetadata else None
    return SourceCall(
        segments=segments,
        metadata=call_metadata(
            doc.name,
            {
                "external_id": ("CustomerMetadata.ContactId", contact_id or None),
                "language": ("LanguageCode", output.LanguageCode or None),
            },
        ),
        vendor_hints=analytics.vendor_hints(output, insights, FORMAT),
        grouping="keep",
    )
