"""Retention: calls older than their tenant's retention period are hard-deleted.

A purged call loses its transcript, runs (raw model answers included), claims and evidence: all
are deleted with the `calls` row. Its audit trail stays, content-free: the text snapshots
(`before`/`after`) of its review events are cleared (the only change the append-only triggers
allow) and a `call_purged` event records when and under which retention period it went. A call's
age is its start time, or when it was stored if the source gave none. Flushes; never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, null, select, update
from sqlalchemy.orm import Session

from app.errors import NotFoundError
from app.models import Call, Claim, Evidence, ExtractionRun, ReviewEvent, Tenant
from app.models import Utterance as UtteranceRow
from app.models.tables import utcnow
from app.pipeline.calls import find_tenant

PURGE_EVENT = "call_purged"
# Deleting in chunks keeps each statement's IN list (and its locks) small.
PURGE_CHUNK = 500


@dataclass(frozen=True)
class TenantPurge:
    tenant: str
    retention_days: int
    cutoff: datetime
    calls: int
    utterances: int
    claims: int
    evidence: int


def retention_days_of(tenant: Tenant, default_days: int) -> int:
    """The tenant's own period, or the default; 0 (or less) keeps calls forever."""
    return tenant.retention_days if tenant.retention_days is not None else default_days


def purge_expired(
    session: Session,
    *,
    default_days: int,
    tenant: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[TenantPurge]:
    """Hard-delete every expired call (of one tenant, or all); with `dry_run`, only count them."""
    moment = now or utcnow()
    query = select(Tenant).order_by(Tenant.slug)
    if tenant is not None:
        query = query.where(Tenant.slug == tenant)
    reports: list[TenantPurge] = []
    for tenant_row in session.scalars(query).all():
        days = retention_days_of(tenant_row, default_days)
        if days <= 0:
            continue
        cutoff = moment - timedelta(days=days)
        call_ids = list(
            session.scalars(
                select(Call.id).where(
                    Call.tenant_id == tenant_row.id, func.coalesce(Call.started_at, Call.created_at) < cutoff
                )
            ).all()
        )
        counts = _counts(session, call_ids)
        reports.append(TenantPurge(tenant_row.slug, days, cutoff, len(call_ids), *counts))
        if not dry_run and call_ids:
            _purge(session, tenant_row.id, call_ids, days)
    session.flush()
    return reports


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + PURGE_CHUNK] for i in range(0, len(ids), PURGE_CHUNK)]


def _counts(session: Session, call_ids: Sequence[str]) -> tuple[int, int, int]:
    utterances = claims = evidence = 0
    for chunk in _chunks(call_ids):
        utterances += session.scalar(select(func.count()).where(UtteranceRow.call_id.in_(chunk))) or 0
        claims += session.scalar(select(func.count()).where(Claim.call_id.in_(chunk))) or 0
        evidence += (
            session.scalar(select(func.count()).select_from(Evidence).join(Claim).where(Claim.call_id.in_(chunk)))
            or 0
        )
    return utterances, claims, evidence


def _purge(session: Session, tenant_id: int, call_ids: Sequence[str], days: int) -> None:
    connection = session.connection()
    for chunk in _chunks(call_ids):
        # Core statements on the session's connection: the ORM guard refuses any UPDATE of review
        # events, and the triggers allow exactly this one (content to NULL, everything else kept).
        connection.execute(
            update(ReviewEvent)
            .where(ReviewEvent.call_id.in_(chunk), ReviewEvent.tenant_id == tenant_id)
            .where((ReviewEvent.before.is_not(None)) | (ReviewEvent.after.is_not(None)))
            .values(before=null(), after=null())
        )
        # Children first, so the delete does not depend on cascades being switched on.
        claim_ids = select(Claim.id).where(Claim.call_id.in_(chunk)).scalar_subquery()
        connection.execute(delete(Evidence).where(Evidence.claim_id.in_(claim_ids)))
        connection.execute(delete(Claim).where(Claim.call_id.in_(chunk)))
        connection.execute(delete(ExtractionRun).where(ExtractionRun.call_id.in_(chunk)))
        connection.execute(delete(UtteranceRow).where(UtteranceRow.call_id.in_(chunk)))
        connection.execute(delete(Call).where(Call.id.in_(chunk)))
    session.add_all(
        ReviewEvent(
            tenant_id=tenant_id,
            call_id=call_id,
            actor_name="retention",
            action=PURGE_EVENT,
            before=None,
            after={"retention_days": days},
            created_at=utcnow(),
        )
        for call_id in call_ids
    )


def set_retention(session: Session, tenant: str, days: int | None) -> Tenant:
    """Set (or with None, clear back to the default) a tenant's retention period in days."""
    tenant_row = find_tenant(session, tenant)
    if tenant_row is None:
        raise NotFoundError(f"tenant {tenant!r} not found")
    tenant_row.retention_days = days
    session.flush()
    return tenant_row
