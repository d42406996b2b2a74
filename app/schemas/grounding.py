"""Grounding as data: every quote becomes spans with char intervals, a status and a reason."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from app.schemas.extraction import Owner


class EvidenceStatus(StrEnum):
    exact = "exact"
    normalized = "normalized"
    fuzzy = "fuzzy"
    relocated = "relocated"
    ungrounded = "ungrounded"


class ClaimStatus(StrEnum):
    grounded = "grounded"
    ungrounded = "ungrounded"


class ClaimKind(StrEnum):
    summary = "summary"
    action_item = "action_item"
    reason = "reason"
    outcome = "outcome"


class VerifiedEvidence(BaseModel):
    """One span of evidence. A quote spanning utterances or joined by an ellipsis yields several."""

    cited_utterance: int = Field(description="The utterance index the provider cited.")
    utterance: int | None = Field(description="Where the span really is (None when not found).")
    quote: str = Field(description="The quote (or quote piece) as the provider gave it.")
    status: EvidenceStatus
    char_start: int | None = None
    char_end: int | None = None
    score: float = 0.0
    reason: str | None = Field(default=None, description="Short code, e.g. number_mismatch, not_found.")

    @property
    def grounded(self) -> bool:
        return self.status is not EvidenceStatus.ungrounded


class VerifiedClaim(BaseModel):
    kind: ClaimKind
    text: str
    owner: Owner | None = None
    due: str | None = None
    status: ClaimStatus
    reason: str | None = None
    evidence: list[VerifiedEvidence] = Field(default_factory=list)


class VerificationReport(BaseModel):
    claims: list[VerifiedClaim] = Field(default_factory=list)

    @property
    def all_grounded(self) -> bool:
        return all(claim.status is ClaimStatus.grounded for claim in self.claims)

    @property
    def ungrounded_claims(self) -> list[VerifiedClaim]:
        return [claim for claim in self.claims if claim.status is ClaimStatus.ungrounded]
