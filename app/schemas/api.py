"""Read models shared by `postcall show --json` and the JSON API. Shapes are stable: tools parse them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


def row_field(name: str, column: str, **field: Any) -> Any:
    """A read-model field that an ORM row holds under another attribute name (`column`)."""
    return Field(validation_alias=AliasChoices(name, column), **field)


class RowModel(BaseModel):
    """A read model built from an ORM row with `model_validate(row)`: attributes are read by name
    (or by the `row_field` column); enums become their values."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def from_row(cls, row: object, **values: Any) -> Self:
        """The model of `row`, with `values` for what the row does not hold (a tenant's slug...)."""
        return cls.model_validate(_RowWith(row, values))


class _RowWith:
    """An ORM row seen with a few more attributes, for `RowModel.from_row`."""

    def __init__(self, row: object, values: dict[str, Any]) -> None:
        self._row, self._values = row, values

    def __getattr__(self, name: str) -> Any:
        return self._values[name] if name in self._values else getattr(self._row, name)


class EvidenceOut(RowModel):
    utterance: int | None = row_field(
        "utterance", "utterance_index", description="Utterance the span is in (corrected when relocated)."
    )
    cited_utterance: int
    quote: str
    status: str
    char_start: int | None
    char_end: int | None
    score: float
    reason: str | None


class ClaimOut(RowModel):
    id: int
    kind: str
    text: str
    owner: str | None = None
    due: str | None = None
    status: str = row_field("status", "grounding_status", description="grounded | ungrounded")
    reason: str | None = row_field("reason", "grounding_reason", default=None)
    review_status: str
    origin: str
    evidence: list[EvidenceOut]


class UtteranceOut(RowModel):
    index: int
    speaker: str
    role: str
    role_confidence: float | None
    start: float | None = row_field("start", "start_s")
    end: float | None = row_field("end", "end_s")
    text: str


class RunOut(RowModel):
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


class CallSummaryOut(RowModel):
    call_id: str = row_field("call_id", "id")
    external_id: str
    tenant: str
    agent_id: str | None
    team: str | None
    started_at: datetime | None
    source_format: str
    state: str
    attempts: int
    error: str | None = row_field("error", "last_error")
    created_at: datetime


class CallDetailOut(CallSummaryOut):
    run: RunOut | None
    claims: list[ClaimOut]
    utterances: list[UtteranceOut]
    warnings: list[str] = Field(default_factory=list)
    llm_mode: str = Field(default="sync", description="sync, or batch: extracted through a provider batch.")
    llm_batch_id: int | None = Field(default=None, description="The batch (`postcall batches`) the call waits in.")


class EndpointOut(RowModel):
    """A webhook endpoint (never its secret): the JSON API's and `postcall webhooks add|list --json`'s."""

    id: int
    url: str
    description: str | None
    events: list[str] | None = row_field("events", "event_types", description="Event types sent; null: all.")
    active: bool
    disabled_reason: str | None
    created_at: datetime
