"""Read models shared by `postcall show --json` and the JSON API. Shapes are stable: tools parse them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class EvidenceOut(BaseModel):
    utterance: int | None = Field(description="Utterance the span is in (corrected when relocated).")
    cited_utterance: int
    quote: str
    status: str
    char_start: int | None
    char_end: int | None
    score: float
    reason: str | None


class ClaimOut(BaseModel):
    id: int
    kind: str
    text: str
    owner: str | None = None
    due: str | None = None
    status: str = Field(description="grounded | ungrounded")
    reason: str | None = None
    review_status: str
    origin: str
    evidence: list[EvidenceOut]


class UtteranceOut(BaseModel):
    index: int
    speaker: str
    role: str
    role_confidence: float | None
    start: float | None
    end: float | None
    text: str


class RunOut(BaseModel):
    id: int
    provider: str
    model: str
    prompt_version: str
    status: str
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    llm_calls: int
    queue_wait_ms: float | None
    llm_ms: float | None
    verify_ms: float | None
    db_ms: float | None
    total_ms: float | None
    finished_at: datetime | None
    llm_batch_id: int | None = Field(default=None, description="The batch whose answer the run used (batch mode).")


class CallSummaryOut(BaseModel):
    call_id: str
    external_id: str
    tenant: str
    agent_id: str | None
    team: str | None
    started_at: datetime | None
    source_format: str
    state: str
    attempts: int
    error: str | None
    created_at: datetime


class CallDetailOut(CallSummaryOut):
    run: RunOut | None
    claims: list[ClaimOut]
    utterances: list[UtteranceOut]
    warnings: list[str] = Field(default_factory=list)
    llm_mode: str = Field(default="sync", description="sync, or batch: extracted through a provider batch.")
    llm_batch_id: int | None = Field(default=None, description="The batch (`postcall batches`) the call waits in.")
