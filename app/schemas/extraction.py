"""The extraction contract (v1): what every provider returns and what `postcall verify` checks.

Providers may add optional fields; a response with only the core fields must be accepted,
so every model here ignores unknown keys.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Owner(StrEnum):
    agent = "agent"
    customer = "customer"
    other = "other"


class EvidenceRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    utterance: int = Field(ge=0, description="0-based index of the utterance the quote comes from.")
    quote: str = Field(min_length=1, description="Verbatim text copied from that utterance.")


class Statement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1)
    evidence: list[EvidenceRef] = Field(default_factory=list)


class ActionItem(Statement):
    owner: Owner
    due: str | None = None


class Extraction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary: list[Statement] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    reason: Statement | None = None
    outcome: Statement | None = None
