"""Read-side queries that build the stable read models of app/schemas/api.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.models import Call, Claim, ExtractionRun, Tenant
from app.models import Utterance as UtteranceRow
from app.pipeline.persist import latest_succeeded_run
from app.privacy.reads import StoredMasks, mask_call_detail
from app.schemas.api import CallDetailOut, CallSummaryOut, ClaimOut, RunOut, UtteranceOut


def run_out(run: ExtractionRun) -> RunOut:
    return RunOut.model_validate(run)


def claim_out(claim: Claim) -> ClaimOut:
    return ClaimOut.model_validate(claim)


def stored_masks(claim: Claim) -> StoredMasks:
    """The masked copies stored with the claim and its evidence (evidence loaded with the claim)."""
    return StoredMasks(claim.text_masked, tuple(ev.quote_masked for ev in claim.evidence))


def call_summary(call: Call, tenant_slug: str) -> CallSummaryOut:
    return CallSummaryOut.from_row(call, tenant=tenant_slug)


def current_claims(session: Session, call_id: str) -> tuple[ExtractionRun | None, list[Claim]]:
    """The current (latest succeeded) run of a call and its claims (with evidence), in display order."""
    run = latest_succeeded_run(session, call_id)  # the caller has loaded the call: no query for it
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


def call_detail(session: Session, call: Call, *, masked: bool = False) -> CallDetailOut:
    """The call with its current items and utterances; `masked`: card numbers, SSNs and accounts masked."""
    tenant = session.get(Tenant, call.tenant_id)
    run, claims = current_claims(session, call.id)
    shown_run = run or latest_run(session, call.id)
    utterances = session.scalars(
        select(UtteranceRow).where(UtteranceRow.call_id == call.id).order_by(UtteranceRow.index)
    ).all()
    detail = CallDetailOut.from_row(
        call,
        tenant=tenant.slug if tenant else "?",
        run=run_out(shown_run) if shown_run else None,
        claims=[claim_out(c) for c in claims],
        utterances=[UtteranceOut.model_validate(u) for u in utterances],
        warnings=list(call.ingest_warnings or []),
    )
    return mask_call_detail(detail, {c.id: stored_masks(c) for c in claims}) if masked else detail
