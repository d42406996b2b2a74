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


class AttemptOut(RowModel):
    """One logged attempt of a delivery (`postcall webhooks deliveries --attempts --json`'s `attempt_log`)."""

    outcome: str = Field(description="in_flight, succeeded, retry, dead or lost.")
    status_code: int | None
    latency_ms: float | None
    error: str | None
    started_at: datetime


class DeliveryOut(RowModel):
    """A webhook delivery: the rows of `GET /api/webhooks/deliveries` and of `postcall webhooks deliveries
    --json`, one model so that the two cannot drift apart (`from_listed`)."""

    id: int
    event_id: str = Field(description="The event's id: the webhook-id the receiver sees.")
    event_type: str = Field(description="call.processed, call.approved, ...")
    call_id: str
    endpoint_id: int
    url: str = Field(description="The endpoint's URL.")
    status: str = Field(description="pending, succeeded or dead (dead-lettered: replayable).")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime = Field(description="When the next attempt is due; for a finished delivery, when it "
                                                  "finished.")
    finished_at: datetime | None = Field(description="When it succeeded or was dead-lettered; null while pending.")

    @classmethod
    def from_listed(cls, listed: Any) -> Self:
        """The model of a row of `app.handoff.endpoints.list_deliveries` (a `DeliveryRow`: the delivery, its
        event's id and type, its endpoint's URL)."""
        return cls.from_row(listed.delivery, event_id=listed.event_id, event_type=listed.event_type, url=listed.url)
