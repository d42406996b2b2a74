"""The DB-side safety net: calls stuck in `queued` or `processing` are handed to the queue again.

Redis may lose messages (restarted empty, visibility timeout not reached yet); the database does not.
Safe with many reconcilers at once: on PostgreSQL rows are claimed with `FOR UPDATE SKIP LOCKED`, and a
claimed call's `state_changed_at` moves to now, so nobody else picks it until it is stuck again.
A call re-enqueued while a slow worker still holds it is harmless: the idempotency key keeps one run.
Batch-mode calls are not re-enqueued: they wait in the database for the batch collector and poller
(app/pipeline/batch.py), whose state is in `llm_batches`, for as long as a batch takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.types import as_utc
from app.models import Call, CallState, LlmMode
from app.models.tables import utcnow
from app.pipeline.calls import set_state

RECONCILE_BATCH = 500
# Calls `postcall retry` requeues per transaction.
RETRY_CHUNK = 500


def claim_stuck_calls(
    session: Session, *, stuck_after_seconds: float, limit: int = RECONCILE_BATCH, now: datetime | None = None
) -> list[str]:
    """Mark calls stuck past the timeout as freshly queued and return their ids (flushes, no commit)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stuck_after_seconds)
    calls = session.scalars(
        select(Call)
        .where(Call.state.in_([CallState.queued, CallState.processing]), Call.state_changed_at < cutoff)
        .where(Call.llm_mode == LlmMode.sync)
        .order_by(Call.state_changed_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for call in calls:
        note = f"re-enqueued by reconciler after {stuck_after_seconds:.0f}s in {call.state.value}"
        set_state(call, CallState.queued, error=note if call.state is CallState.processing else call.last_error)
        call.state_changed_at = call.enqueued_at = now  # one clock for the cutoff and the restart
    session.flush()
    return [call.id for call in calls]


def requeue_calls(
    session: Session,
    *,
    states: Sequence[CallState] = (CallState.failed,),
    since: datetime | None = None,
    call_ids: Sequence[str] | None = None,
    tenant_id: int | None = None,
    after_id: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """Put calls (failed by default) back to `queued` for `postcall retry`; returns their ids, in id order.

    A naive `since` is taken as UTC, the zone every timestamp is stored in. `limit` takes at most that
    many, of ids after `after_id`: the caller commits a chunk at a time and passes the last id it got (by
    id, not by state: `--state queued` leaves the calls it requeued selectable). One transaction for a
    long list would update the counters' row once per call, which grows faster than the calls.
    """
    query = select(Call).where(Call.state.in_(list(states))).order_by(Call.id).with_for_update(skip_locked=True)
    if after_id is not None:
        query = query.where(Call.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    if since is not None:
        query = query.where(Call.state_changed_at >= as_utc(since))
    if call_ids is not None:
        query = query.where(Call.id.in_(list(call_ids)))
    if tenant_id is not None:
        query = query.where(Call.tenant_id == tenant_id)
    calls = session.scalars(query).all()
    now = utcnow()
    for call in calls:
        set_state(call, CallState.queued, error=call.last_error)
        call.enqueued_at = now
        # An operator chose to try again: the attempt budget (POSTCALL_MAX_CALL_ATTEMPTS) starts afresh.
        call.attempts = 0
    session.flush()
    return [call.id for call in calls]
