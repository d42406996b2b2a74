"""Write an extraction run with its claims and evidence, in bulk. Flushes; never commits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.models import Call, CallState, Claim, Evidence, ExtractionRun, RunStatus
from app.models.tables import utcnow
from app.pipeline.analyst_fields import analyst_fields, call_clock
from app.schemas.grounding import VerificationReport, VerifiedEvidence
from app.schemas.usage import Usage


def idempotency_key(call_id: str, transcript_hash: str, prompt_version: str, provider: str, model: str) -> str:
    """The identity of one piece of work: the same call content, prompt and model give the same key."""
    material = "\x1f".join([call_id, transcript_hash, prompt_version, provider, model])
    return hashlib.sha256(material.encode()).hexdigest()


def find_succeeded_run(session: Session, key: str) -> ExtractionRun | None:
    return session.scalar(
        select(ExtractionRun).where(ExtractionRun.idempotency_key == key, ExtractionRun.status == RunStatus.succeeded)
    )


def latest_succeeded_run(session: Session, call_id: str) -> ExtractionRun | None:
    return session.scalar(
        select(ExtractionRun)
        .where(ExtractionRun.call_id == call_id, ExtractionRun.status == RunStatus.succeeded)
        .order_by(ExtractionRun.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class RunFacts:
    """What every run records, succeeded or failed."""

    key: str
    provider: str
    model: str
    prompt_version: str
    transcript_hash: str
    usage: Usage
    queue_wait_ms: float | None
    verify_ms: float | None
    # Wall time inside the provider (LLM waits plus client work; the whole extraction for offline ones).
    provider_ms: float | None = None
    # The batch whose answer the run used (batch mode); None for a synchronous run.
    llm_batch_id: int | None = None


def add_run(
    session: Session,
    call: Call,
    facts: RunFacts,
    *,
    status: RunStatus,
    error: str | None = None,
    raw_response: str | None = None,
    db_ms: float | None = None,
    total_ms: float | None = None,
) -> ExtractionRun:
    usage = facts.usage
    run = ExtractionRun(
        call_id=call.id,
        idempotency_key=facts.key,
        provider=facts.provider,
        model=facts.model,
        prompt_version=facts.prompt_version,
        transcript_hash=facts.transcript_hash,
        status=status,
        error=error,
        raw_response=raw_response,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cost_usd=usage.cost_usd,
        llm_calls=usage.llm_calls,
        queue_wait_ms=facts.queue_wait_ms,
        llm_ms=facts.provider_ms if facts.provider_ms is not None else usage.llm_seconds * 1000.0,
        verify_ms=facts.verify_ms,
        db_ms=db_ms,
        total_ms=total_ms,
        finished_at=utcnow(),
        llm_batch_id=facts.llm_batch_id,
    )
    session.add(run)
    session.flush()
    if status is RunStatus.succeeded:
        call.current_run_id = run.id
    return run


def evidence_values(ev: VerifiedEvidence, position: int) -> dict[str, Any]:
    """The `evidence` columns for one verified span (model output and reviewer selections alike)."""
    return {
        "position": position,
        "cited_utterance": ev.cited_utterance,
        "utterance_index": ev.utterance,
        "char_start": ev.char_start,
        "char_end": ev.char_end,
        "quote": ev.quote,
        "status": ev.status.value,
        "score": ev.score,
        "reason": ev.reason,
    }


def add_claims(session: Session, run: ExtractionRun, report: VerificationReport) -> int:
    """Bulk-insert the run's claims and their evidence; returns the number of claims."""
    call = session.get(Call, run.call_id)  # already in the session: no query
    if call is not None and call.current_run_id == run.id:
        call.flagged_items = len(report.ungrounded_claims)  # a new run's items are all undecided
    if not report.claims:
        return 0
    clock = call_clock(session, run.call_id)
    claim_rows = [
        {
            "run_id": run.id,
            "call_id": run.call_id,
            "position": position,
            "kind": claim.kind.value,
            "text": claim.text,
            "owner": claim.owner.value if claim.owner else None,
            "due": claim.due,
            "grounding_status": claim.status.value,
            "grounding_reason": claim.reason,
            "origin": "model",
            **analyst_fields(claim, clock),
        }
        for position, claim in enumerate(report.claims)
    ]
    claim_ids = list(session.scalars(insert(Claim).returning(Claim.id, sort_by_parameter_order=True), claim_rows))
    evidence_rows = [
        {"claim_id": claim_id, **evidence_values(ev, position)}
        for claim_id, claim in zip(claim_ids, report.claims, strict=True)
        for position, ev in enumerate(claim.evidence)
    ]
    if evidence_rows:
        session.execute(insert(Evidence), evidence_rows)
    return len(claim_rows)


def state_for_run(session: Session, run_id: int) -> CallState:
    """The processing outcome a stored run implies: every claim grounded, or not."""
    total, ungrounded = session.execute(
        select(func.count(), func.count().filter(Claim.grounding_status != "grounded")).where(Claim.run_id == run_id)
    ).one()
    return outcome_state(total, ungrounded)


def outcome_state(claims: int, ungrounded: int) -> CallState:
    """A processed call with claims, every one grounded, is ready for review; otherwise it needs attention."""
    return CallState.ready_for_review if claims and not ungrounded else CallState.needs_attention
