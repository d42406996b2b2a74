"""The canonical transcript every ingestion parser produces."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Role(StrEnum):
    agent = "agent"
    customer = "customer"
    unknown = "unknown"


class Utterance(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="0-based position in the call; what citations refer to.")
    speaker: str = Field(min_length=1, max_length=200, description="Speaker label as the source gave it.")
    role: Role = Role.unknown
    role_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    start: float | None = Field(default=None, ge=0.0, description="Seconds from call start.")
    end: float | None = Field(default=None, ge=0.0)
    text: str

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        # Only what shows nothing by `str.strip()`: stored utterances are read back through this model, and
        # ones stored before ingest refused zero-width-only text (app/ingest/assemble.py) must still load.
        if not value.strip():
            raise ValueError("utterance text is empty")
        return value

    @model_validator(mode="after")
    def _end_after_start(self) -> Utterance:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class CallMetadata(BaseModel):
    external_id: str | None = Field(default=None, max_length=200)
    tenant: str | None = None
    agent_id: str | None = Field(default=None, max_length=200)
    team: str | None = Field(default=None, max_length=200)
    started_at: datetime | None = None
    language: str | None = Field(default=None, max_length=20)

    @field_validator("started_at")
    @classmethod
    def _has_utc_equivalent(cls, value: datetime | None) -> datetime | None:
        # Stored in UTC: 0001-01-01T00:00:00+14:00 or 9999-12-31T23:59:59-14:00 have no UTC instant.
        if value is not None and value.tzinfo is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError(f"{value.isoformat()} has no UTC equivalent (before year 1 or after 9999)") from None
        return value


class Transcript(BaseModel):
    metadata: CallMetadata = Field(default_factory=CallMetadata)
    utterances: list[Utterance] = Field(min_length=1)
    source_format: str = "native"
    # Things a vendor already detected (issues, action items...); kept as hints, never as fact.
    vendor_hints: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _indices_contiguous(self) -> Transcript:
        for position, utterance in enumerate(self.utterances):
            if utterance.index != position:
                raise ValueError(
                    f"utterances[{position}].index is {utterance.index}; indices must run 0..n-1 in order"
                )
        return self

    def content_hash(self) -> str:
        """A stable hash of what was said, by whom, when: the identity of a call's content."""
        payload = [
            [u.speaker, u.role.value, u.start, u.end, u.text] for u in self.utterances
        ]
        digest = hashlib.sha256(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
        return digest.hexdigest()
