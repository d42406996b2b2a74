"""The hand-off record `postcall.call.v1`: what a CRM or ticketing system receives about one call.

Its texts are masked as every role of the review app sees them (card numbers, SSNs and accounts with the
last four kept; dates of birth and CVVs whole: docs/privacy.md): statements and quotes are their stored
masked copies, and an agent's case note is masked when the record is built. The record is delivered to
other systems and served by the feed to any role, so it never carries what only `view_pii` unmasks.

A versioned Pydantic model; its JSON Schema is served at `GET /api/schemas/call.v1.json` and documented in
docs/handoff.md. Fields are only ever added within v1 (receivers must ignore unknown fields); anything
else is a new version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.session import Work, connection_of
from app.models import CallState, Claim, Evidence, ExtractionRun, ReviewEvent, ReviewStatus, RunStatus, Tenant
from app.pipeline.note import case_note, stated_as_fact
from app.privacy.mask import mask_text, masked_copy
from app.schemas.grounding import ClaimKind, ClaimStatus

RECORD_VERSION: Literal["postcall.call.v1"] = "postcall.call.v1"
# Review actions on the whole call; the latest of them is the call's decision.
CALL_DECISIONS = {"call_approved": "approved", "call_rejected": "rejected", "call_reopened": "reopened"}


class EvidenceV1(BaseModel):
    """One transcript span a statement rests on. Offsets index the utterance's text."""

    utterance: int | None = Field(description="0-based utterance index; null when the quote was not found.")
    char_start: int | None
    char_end: int | None
    quote: str | None = Field(description="The quoted text; null only when dropped to fit the size limit.")
    status: str = Field(description="exact | normalized | fuzzy | relocated | ungrounded")


class StatementV1(BaseModel):
    id: int = Field(description="The item's id (its claim id), stable for this extraction (`extraction.run_id`) "
                               "through reviews and edits; a reprocess stores a new extraction whose items "
                               "have new ids: file a call's items as one set, replaced on each record.")
    text: str
    grounded: bool = Field(description="Every piece of evidence was found in the transcript. An ungrounded "
                                       "statement is not a fact unless a reviewer approved it.")
    grounding_reason: str | None = None
    review_status: Literal["pending", "approved", "edited", "rejected"]
    origin: Literal["model", "reviewer"]
    evidence: list[EvidenceV1]


class ActionItemV1(StatementV1):
    owner: str | None = Field(description="agent | customer | other")
    due_phrase: str | None = Field(description="The due date as said in the call, e.g. 'within 5 business days'.")
    due_date: date | None = Field(description="The date the phrase names, counted from the call's start (UTC); "
                                              "null when the phrase does not determine one.")


class SummaryV1(BaseModel):
    note: str = Field(description="A short plain-text note for a CRM: the summary statements that are "
                                  "grounded or reviewer-approved, never rejected ones.")
    statements: list[StatementV1]


class ReviewDecisionV1(BaseModel):
    action: str = Field(description="e.g. claim_approved, claim_edited, call_approved, call_reopened.")
    actor: str
    at: datetime
    claim_id: int | None = None


class ReviewV1(BaseModel):
    decision: Literal["approved", "rejected", "reopened"] | None = Field(
        description="The latest decision on the whole call, if any.")
    decided_by: str | None
    decided_at: datetime | None
    decisions: list[ReviewDecisionV1]


class ExtractionV1(BaseModel):
    run_id: int
    status: str
    provider: str
    model: str
    prompt_version: str


class CallRecordV1(BaseModel):
    """One call as handed off. For `call.deleted` only the identity fields are filled (`deleted: true`); the
    lists and the summary are there, empty, and `review` says only who deleted the call."""

    model_config = ConfigDict(title="postcall.call.v1")

    version: Literal["postcall.call.v1"] = RECORD_VERSION
    tenant: str
    call_id: str
    external_id: str
    agent_id: str | None
    team: str | None
    started_at: datetime | None
    language: str | None = Field(default=None, description="The call's language as the transcript gave it (a "
                                                           "correction of it is a call.updated).")
    state: str = Field(description="ready_for_review | needs_attention | failed | approved | rejected | deleted: "
                                   "the call's state after the change the event reports; a record fetched with "
                                   "GET /api/calls/{id}/record while the call waits says queued or processing")
    failure: str | None = Field(default=None, description="Why processing failed (call.failed).")
    reason: StatementV1 | None = None
    outcome: StatementV1 | None = None
    summary: SummaryV1 = Field(default_factory=lambda: SummaryV1(note="", statements=[]))
    action_items: list[ActionItemV1] = Field(default_factory=list)
    review: ReviewV1 = Field(
        default_factory=lambda: ReviewV1(decision=None, decided_by=None, decided_at=None, decisions=[]))
    extraction: ExtractionV1 | None = None
    review_url: str | None = Field(default=None, description="The call's review page (POSTCALL_PUBLIC_URL).")
    deleted: bool = False
    truncated: bool = Field(default=False, description="Parts were dropped to keep the payload under the "
                                                       "size limit; fetch the call from the API for all of it.")


def record_json_schema() -> dict[str, Any]:
    schema = CallRecordV1.model_json_schema()
    schema["$id"] = "postcall.call.v1"
    return schema


class RecordedCall(Protocol):
    """The call columns a record (and an outbox event) reads: an ORM `Call`, or the plain row the pipeline's
    final write holds (app/pipeline/persist.py `ResultCall`)."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> int: ...
    @property
    def external_id(self) -> str: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def team(self) -> str | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def language(self) -> str | None: ...
    @property
    def state(self) -> CallState: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def case_note(self) -> str | None: ...


def review_url(public_url: str | None, call_id: str) -> str | None:
    return f"{public_url.rstrip('/')}/calls/{call_id}" if public_url else None


@dataclass(frozen=True)
class RecordClaim:
    """A claim as the record reads it: `text` is the masked copy (`claims.text_masked`)."""

    id: int
    kind: str
    text: str
    owner: str | None
    due: str | None
    due_date: Any
    grounding_status: str
    grounding_reason: str | None
    review_status: str
    origin: str


def _claims_with_evidence(session: Session, run_id: int) -> list[tuple[RecordClaim, list[EvidenceV1]]]:
    """The run's claims in order, each with its evidence, texts and quotes masked (their stored masked
    copies): one query, plain rows (this runs inside the pipeline's persist transaction, so it stays cheap)."""
    rows = session.execute(
        select(Claim.id, Claim.kind, Claim.text, Claim.text_masked, Claim.owner, Claim.due, Claim.due_date,
               Claim.grounding_status, Claim.grounding_reason, Claim.review_status, Claim.origin,
               Evidence.id.label("evidence_id"), Evidence.utterance_index, Evidence.char_start, Evidence.char_end,
               Evidence.quote, Evidence.quote_masked, Evidence.status)
        .outerjoin(Evidence, Evidence.claim_id == Claim.id)
        .where(Claim.run_id == run_id)
        .order_by(Claim.position, Claim.id, Evidence.position)
    ).all()
    claims: dict[int, tuple[RecordClaim, list[EvidenceV1]]] = {}
    for row in rows:
        if row.id not in claims:
            claims[row.id] = (RecordClaim(
                id=row.id, kind=row.kind, text=masked_copy(row.text_masked, row.text), owner=row.owner,
                due=row.due, due_date=row.due_date, grounding_status=row.grounding_status,
                grounding_reason=row.grounding_reason, review_status=row.review_status, origin=row.origin,
            ), [])
        if row.evidence_id is not None:
            claims[row.id][1].append(EvidenceV1(
                utterance=row.utterance_index, char_start=row.char_start, char_end=row.char_end,
                quote=masked_copy(row.quote_masked, row.quote), status=row.status))
    return list(claims.values())


def _statement_fields(claim: Any, evidence: list[EvidenceV1]) -> dict[str, Any]:
    return {
        "id": claim.id,
        "text": claim.text,
        "grounded": claim.grounding_status == ClaimStatus.grounded.value,
        "grounding_reason": claim.grounding_reason,
        "review_status": ReviewStatus(claim.review_status).value,
        "origin": claim.origin,
        "evidence": evidence,
    }



def identity_record(call: RecordedCall, tenant: str, *, state: str, deleted: bool = False) -> CallRecordV1:
    """The record without any transcript-derived content."""
    return CallRecordV1(
        tenant=tenant,
        call_id=call.id,
        external_id=call.external_id,
        agent_id=call.agent_id,
        team=call.team,
        started_at=call.started_at,
        language=call.language,
        state=state,
        deleted=deleted,
    )


def build_record(session: Session, call: RecordedCall, *, public_url: str | None) -> CallRecordV1:
    """The record for `call` as the current transaction sees it: its latest extraction's items with
    evidence and review status, and every review decision so far."""
    tenant = session.get(Tenant, call.tenant_id)
    # Every run of the call, newest first (usually one or two): the latest succeeded one holds the items.
    runs = session.execute(
        select(ExtractionRun.id, ExtractionRun.status, ExtractionRun.provider, ExtractionRun.model,
               ExtractionRun.prompt_version)
        .where(ExtractionRun.call_id == call.id)
        .order_by(ExtractionRun.id.desc())
    ).all()
    succeeded = next((run for run in runs if run.status is RunStatus.succeeded), None)
    shown_run = succeeded or (runs[0] if runs else None)
    claim_rows = _claims_with_evidence(session, succeeded.id) if succeeded is not None else None
    return assemble_record(call, tenant.slug if tenant else str(call.tenant_id), shown_run, claim_rows,
                           review_events(session, call), public_url=public_url)


def review_events(work: Work, call: RecordedCall) -> Sequence[Any]:
    """The call's review decisions, oldest first (action, actor_name, created_at, claim_id)."""
    return connection_of(work).execute(
        select(ReviewEvent.action, ReviewEvent.actor_name, ReviewEvent.created_at, ReviewEvent.claim_id)
        .where(ReviewEvent.call_id == call.id, ReviewEvent.tenant_id == call.tenant_id)
        .order_by(ReviewEvent.id)
    ).all()


def assemble_record(
    call: RecordedCall,
    tenant: str,
    shown_run: Any,
    claim_rows: Sequence[tuple[Any, list[EvidenceV1]]] | None,
    events: Sequence[Any],
    *,
    public_url: str | None,
) -> CallRecordV1:
    """The record from what was read (or just written): `shown_run` (id, status, provider, model,
    prompt_version) is the run the record names; `claim_rows`, the latest succeeded run's claims in order
    with their evidence (None when no run succeeded); `events`, the review decisions oldest first.
    The pipeline calls it with the rows it has just inserted, saving the queries `build_record` makes."""
    record = identity_record(call, tenant, state=call.state.value)
    record.review_url = review_url(public_url, call.id)
    if call.state is CallState.failed:
        # Masked again as it is read: an error stored before errors were masked at write.
        record.failure = mask_text(call.last_error) if call.last_error else None
    if shown_run is not None:
        record.extraction = ExtractionV1(run_id=shown_run.id, status=RunStatus(shown_run.status).value,
                                         provider=shown_run.provider, model=shown_run.model,
                                         prompt_version=shown_run.prompt_version)
    if claim_rows is not None:
        summary: list[StatementV1] = []
        for claim, evidence in claim_rows:
            fields = _statement_fields(claim, evidence)
            if claim.kind == ClaimKind.action_item.value:
                # Resolved at persist (or at a reviewer's edit) in the tenant's time zone; NULL when the
                # phrase names no determinable date.
                record.action_items.append(
                    ActionItemV1(**fields, owner=claim.owner, due_phrase=claim.due, due_date=claim.due_date)
                )
            elif claim.kind == ClaimKind.reason.value:
                record.reason = StatementV1(**fields)
            elif claim.kind == ClaimKind.outcome.value:
                record.outcome = StatementV1(**fields)
            else:
                summary.append(StatementV1(**fields))
        # The same case note the reviewer sees and may edit (app/pipeline/note.py).
        note = mask_text(call.case_note) if call.case_note else case_note(
            [row for row, _ in claim_rows
             if stated_as_fact(row.grounding_status, ReviewStatus(row.review_status).value)]
        )
        record.summary = SummaryV1(note=note, statements=summary)
    decisions = [ReviewDecisionV1(action=e.action, actor=e.actor_name, at=e.created_at, claim_id=e.claim_id)
                 for e in events]
    last_call_decision = next((e for e in reversed(events) if e.action in CALL_DECISIONS), None)
    record.review = ReviewV1(
        decision=CALL_DECISIONS[last_call_decision.action] if last_call_decision else None,
        decided_by=last_call_decision.actor_name if last_call_decision else None,
        decided_at=last_call_decision.created_at if last_call_decision else None,
        decisions=decisions,
    )
    return record


def json_size(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def _size(record: CallRecordV1) -> int:
    return json_size(record.model_dump(mode="json"))


def bounded(record: CallRecordV1, max_bytes: int) -> CallRecordV1:
    """The record, or a smaller copy flagged `truncated`, in stages until it fits (docs/handoff.md, "A
    truncated record"): 1. without evidence quotes; 2. without evidence and summary statements, the last 20 review
    decisions; 3. without action items or review decisions (the note, reason and outcome stay); 4. the call's
    identity, state and extraction. The call's review decision (decision, decided_by, decided_at) stays in
    every stage: a CRM filing a call.approved must say who approved it and when, whatever else had to go."""
    if _size(record) <= max_bytes:
        return record
    smaller = record.model_copy(deep=True)
    smaller.truncated = True
    statements: list[StatementV1] = [*smaller.summary.statements, *smaller.action_items]
    statements += [s for s in (smaller.reason, smaller.outcome) if s is not None]
    for statement in statements:
        for ev in statement.evidence:
            ev.quote = None
    if _size(smaller) <= max_bytes:
        return smaller
    for statement in statements:
        statement.evidence = []
    smaller.summary.statements = []
    smaller.review.decisions = smaller.review.decisions[-20:]
    if _size(smaller) <= max_bytes:
        return smaller
    smaller.action_items = []
    smaller.review.decisions = []
    if _size(smaller) <= max_bytes:
        return smaller
    bare = decision_record_from(smaller)
    bare.truncated = True
    return bare


def decision_record_from(record: CallRecordV1) -> CallRecordV1:
    """The last stage of `bounded`: the call's identity, state, failure and extraction, and the call's review
    decision without the per-item list; every field of these is short."""
    return CallRecordV1(
        tenant=record.tenant, call_id=record.call_id, external_id=record.external_id, agent_id=record.agent_id,
        team=record.team, started_at=record.started_at, language=record.language, state=record.state,
        failure=record.failure, extraction=record.extraction, review_url=record.review_url, deleted=record.deleted,
        review=ReviewV1(decision=record.review.decision, decided_by=record.review.decided_by,
                        decided_at=record.review.decided_at, decisions=[]),
    )
