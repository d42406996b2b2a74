"""Read-side queries that build the stable read models of app/schemas/api.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.models import Call, Claim, ExtractionRun, Tenant
from app.models import Utterance as UtteranceRow
from app.schemas.api import CallDetailOut, CallSummaryOut, ClaimOut, EvidenceOut, RunOut, UtteranceOut


def run_out(run: ExtractionRun) -> RunOut:
    return RunOut(
        id=run.id,
        provider=run.provider,
        model=run.model,
        prompt_version=run.prompt_version,
        status=run.status.value,
        error=run.error,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        cached_tokens=run.cached_tokens,
        cost_usd=run.cost_usd,
        llm_calls=run.llm_calls,
        queue_wait_ms=run.queue_wait_ms,
        llm_ms=run.llm_ms,
        verify_ms=run.verify_ms,
        db_ms=run.db_ms,
        total_ms=run.total_ms,
        finished_at=run.finished_at,
        llm_batch_id=run.llm_batch_id,
    )


def claim_out(claim: Claim) -> ClaimOut:
    return ClaimOut(
        id=claim.id,
        kind=claim.kind,
        text=claim.text,
        owner=claim.owner,
        due=claim.due,
        status=claim.grounding_status,
        reason=claim.grounding_reason,
        review_status=claim.review_status.value,
        origin=claim.origin,
        evidence=[
            EvidenceOut(
                utterance=ev.utterance_index,
                cited_utterance=ev.cited_utterance,
                quote=ev.quote,
                status=ev.status,
                char_start=ev.char_start,
                char_end=ev.char_end,
                score=ev.score,
                reason=ev.reason,
            )
            for ev in claim.evidence
        ],
    )


def call_summary(call: Call, tenant_slug: str) -> CallSummaryOut:
    return CallSummaryOut(
        call_id=call.id,
        external_id=call.external_id,
        tenant=tenant_slug,
        agent_id=call.agent_id,
        team=call.team,
        started_at=call.started_at,
        source_format=call.source_format,
        state=call.state.value,
        attempts=call.attempts,
        error=call.last_error,
        created_at=call.created_at,
    )


def current_claims(session: Session, call_id: str) -> tuple[ExtractionRun | None, list[Claim]]:
    """The current (latest succeeded) run of a call and its claims (with evidence), in display order."""
    call = session.get(Call, call_id)  # the caller has loaded it: no query
    run = session.get(ExtractionRun, call.current_run_id) if call and call.current_run_id is not None else None
    if run is None:
        return None, []
    claims = session.scalars(
        select(Claim).where(Claim.run_id == run.id).options(selectinload(Claim.evidence)).order_by(Claim.position)
    ).all()
    return run, list(claims)


def latest_run(session: Session, call_id: str) -> ExtractionRun | None:
    return session.scalar(
        select(ExtractionRun).where(ExtractionRun.call_id == call_id).order_by(ExtractionRun.id.desc()).limit(1)
    )


def call_detail(session: Session, call: Call) -> CallDetailOut:
    tenant = session.get(Tenant, call.tenant_id)
    run, claims = current_claims(session, call.id)
    shown_run = run or latest_run(session, call.id)
    utterances = session.scalars(
        select(UtteranceRow).where(UtteranceRow.call_id == call.id).order_by(UtteranceRow.index)
    ).all()
    summary = call_summary(call, tenant.slug if tenant else "?")
    return CallDetailOut(
        **summary.model_dump(),
        run=run_out(shown_run) if shown_run else None,
        claims=[claim_out(c) for c in claims],
        utterances=[
            UtteranceOut(
                index=u.index,
                speaker=u.speaker,
                role=u.role,
                role_confidence=u.role_confidence,
                start=u.start_s,
                end=u.end_s,
                text=u.text,
            )
            for u in utterances
        ],
        warnings=list(call.ingest_warnings or []),
        llm_mode=call.llm_mode.value,
        llm_batch_id=call.llm_batch_id,
    )
