"""The extraction contract (v1): what every provider returns and what `postcall verify` checks.

Providers may add optional fields; a response with only the core fields must be accepted,
so every model here ignores unknown keys.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

MAX_UTTERANCE_INDEX = 100_000
MAX_DUE_CHARS = 200  # the width of claims.due


class Owner(StrEnum):
    agent = "agent"
    customer = "customer"
    other = "other"


class EvidenceRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Bounded so a garbage index fails validation (and is re-asked) instead of overflowing a column.
    utterance: int = Field(ge=0, le=MAX_UTTERANCE_INDEX, description="0-based index of the cited utterance.")
    quote: str = Field(min_length=1, description="Verbatim text copied from that utterance.")


class Statement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1)
    evidence: list[EvidenceRef] = Field(default_factory=list)


class ActionItem(Statement):
    owner: Owner
    due: str | None = Field(default=None, max_length=MAX_DUE_CHARS)


class Extraction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary: list[Statement] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    reason: Statement | None = None
    outcome: Statement | None = None
