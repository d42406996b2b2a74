"""The DB-side safety net: calls stuck in `queued` or `processing` are handed to the queue again.

Redis may lose messages (restarted empty, visibility timeout not reached yet); the database does not.
Safe with many reconcilers at once: on PostgreSQL rows are claimed with `FOR UPDATE SKIP LOCKED`, and a
claimed call's `state_changed_at` moves to now, so nobody else picks it until it is stuck again.
A call re-enqueued while a slow worker still holds it is harmless: the idempotency key keeps one run.
Batch-mode calls are not re-enqueued: they wait in the database for the batch collector and poller
(app/pipeline/batch.py), whose state is in `llm_batches`, for as long as a batch takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, literal, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.db.types import as_utc, sql_constant
from app.models import Call, CallState, LlmMode
from app.models.tables import utcnow
from app.pipeline.calls import set_state

# Stuck calls the reconciler claims per transaction, and candidates it reads per query.
RECONCILE_BATCH = 500
RECONCILE_WINDOW = 50_000
# Calls `postcall retry` requeues per transaction, and candidates it reads per query.
RETRY_CHUNK = 500
RETRY_WINDOW = 50_000


# Synchronous calls in queued or processing. The states and the mode are written into the SQL
# (`sql_constant`): bound, a prepared generic plan of the lookup read every call (ix_calls_state_mode_changed
# serves it only with them known).
_PENDING_SYNC = (
    Call.state.in_([sql_constant(CallState.queued), sql_constant(CallState.processing)]),
    Call.llm_mode == sql_constant(LlmMode.sync),
)


def _stuck_filters(cutoff: datetime) -> list[Any]:
    return [*_PENDING_SYNC, Call.state_changed_at < cutoff]


def claim_stuck_calls(
    session: Session,
    *,
    stuck_after_seconds: float,
    limit: int = RECONCILE_BATCH,
    now: datetime | None = None,
    call_ids: Sequence[str] | None = None,
) -> list[str]:
    """Mark calls stuck past the timeout as freshly queued and return their ids, oldest first (at most
    `limit`; only among `call_ids` when given). Flushes, no commit: for any number of calls,
    `reconcile_stuck_calls`."""
    now = now or utcnow()
    query = select(Call).where(*_stuck_filters(now - timedelta(seconds=stuck_after_seconds)))
    if call_ids is not None:
        query = query.where(Call.id.in_(list(call_ids)))
    calls = session.scalars(
        query.order_by(Call.state_changed_at, Call.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    for call in calls:
        note = f"re-enqueued by reconciler after {stuck_after_seconds:.0f}s in {call.state.value}"
        set_state(call, CallState.queued, error=note if call.state is CallState.processing else call.last_error)
        # The cutoff's clock restarts; the hand-over time stays, so a call's queue wait counts the time
        # it was lost (a wait reset here hid exactly the calls an outage delayed from the queue-wait SLO).
        call.state_changed_at = now
    session.flush()
    return [call.id for call in calls]


def stuck_window(cutoff: datetime, after: tuple[datetime, str] | None, limit: int) -> Select[str, datetime]:
    """The next `limit` stuck calls' (id, state_changed_at), oldest first, after `after` (keyset)."""
    query = select(Call.id, Call.state_changed_at).where(*_stuck_filters(cutoff))
    if after is not None:  # bound with the columns' types: UTC on SQLite as the stored values are
        moment, call_id = after
        query = query.where(tuple_(Call.state_changed_at, Call.id)
                            > tuple_(literal(moment, Call.state_changed_at.type), literal(call_id, Call.id.type)))
    return query.order_by(Call.state_changed_at, Call.id).limit(limit)


def pending_sync_calls(session: Session) -> int:
    """Synchronous calls in queued or processing: each should have a message in the broker, waiting or
    held by a worker (an index-only count of the backlog)."""
    return int(session.scalar(select(func.count()).select_from(Call).where(*_PENDING_SYNC)) or 0)


def reconcile_budget(session: Session, *, messages_in_broker: int | None, max_calls: int) -> int:
    """How many stuck calls one beat run may re-enqueue: at least RECONCILE_BATCH (a few lost messages come
    back every run, as always), and beyond that as many as the broker seems to have lost, i.e. pending
    synchronous calls minus the messages it holds (`messages_in_broker`, waiting or unacknowledged; None
    when it did not answer), up to `max_calls`. A long healthy backlog (calls older than the timeout still
    waiting in Redis, at the end of a big ingest) is thus not published a second time wholesale; after
    Redis lost its queue, nearly every pending call is missing from it and comes back in one run."""
    floor = min(RECONCILE_BATCH, max_calls)
    if messages_in_broker is None:  # the broker is down: nothing can be published anyway
        return floor
    return min(max_calls, max(floor, pending_sync_calls(session) - messages_in_broker))


@dataclass
class Reconciled:
    """What one reconciler pass did: the calls it requeued (committed), in order, and whether the last
    chunk's hand-over to the broker failed (the pass stopped there; those calls wait in the database)."""

    requeued: list[str] = field(default_factory=list)
    handed_over: bool = True


def reconcile_stuck_calls(
    factory: sessionmaker[Session],
    *,
    stuck_after_seconds: float,
    hand_over: Callable[[list[str]], bool],
    max_calls: int | None = None,
    chunk_calls: int = RECONCILE_BATCH,
    window_calls: int = RECONCILE_WINDOW,
    now: datetime | None = None,
    on_found: Callable[[int], object] | None = None,
) -> Reconciled:
    """Requeue every call stuck past the timeout (at most `max_calls`), oldest first: `chunk_calls` per
    committed transaction, each chunk handed to `hand_over` (which publishes it; False when the broker
    is down) right after its commit, before the next is claimed.

    A pass once stopped after 500 calls: after Redis lost its queue, an outage's thousands of queued
    calls came back 500 a minute while the workers stood idle, and `postcall reconcile` said "500
    re-enqueued" as if that were all. The cutoff is taken once, at `now`: a call this pass requeues
    restarts its clock at `now`, past the cutoff, so it is never claimed twice in one pass, even with
    `stuck_after_seconds=0`; nor by another pass that began less than the timeout after this one (a
    `--stuck-after 0` pass run meanwhile takes it again: harmless, the run is stored once). Candidates
    are read `window_calls` at a time, by (state_changed_at, id) after the last one read, so no chunk
    sorts every remaining stuck call again; each chunk is claimed
    by id with the stuck test repeated under its row locks (`FOR UPDATE SKIP LOCKED`: a call a worker
    or another reconciler holds is skipped, and one that moved on meanwhile is left alone).
    `on_found(n)` is called with each window's number of candidates (for a progress bar)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stuck_after_seconds)
    done = Reconciled()
    after: tuple[datetime, str] | None = None
    while max_calls is None or len(done.requeued) < max_calls:
        wanted = window_calls if max_calls is None else min(window_calls, max_calls - len(done.requeued))
        with unit_of_work(factory) as session:
            window = session.execute(stuck_window(cutoff, after, wanted)).all()
        if on_found is not None and window:
            on_found(len(window))
        for start in range(0, len(window), chunk_calls):
            chunk = [row.id for row in window[start : start + chunk_calls]]
            with unit_of_work(factory) as session:
                claimed = claim_stuck_calls(session, stuck_after_seconds=stuck_after_seconds, limit=len(chunk),
                                            now=now, call_ids=chunk)
            done.requeued += claimed
            if claimed and not hand_over(claimed):
                done.handed_over = False
                return done
        if len(window) < wanted:
            break
        after = (window[-1].state_changed_at, window[-1].id)
    return done


def _retry_filters(states: Sequence[CallState], since: datetime | None, tenant_id: int | None) -> list[Any]:
    # Every LLM mode, spelled out: the index of calls by state (ix_calls_state_mode_changed) has the mode
    # between the state and the time, so only with it can `--since` be a range of that index.
    filters: list[Any] = [Call.state.in_(list(states)),
                          Call.llm_mode.in_([sql_constant(mode) for mode in LlmMode])]
    if since is not None:
        filters.append(Call.state_changed_at >= as_utc(since))
    if tenant_id is not None:
        filters.append(Call.tenant_id == tenant_id)
    return filters


def requeue_calls(
    session: Session,
    *,
    states: Sequence[CallState] = (CallState.failed,),
    since: datetime | None = None,
    call_ids: Sequence[str] | None = None,
    tenant_id: int | None = None,
    mode: LlmMode | None = None,
) -> list[str]:
    """Put calls (failed by default) back to `queued` for `postcall retry`; returns their ids, in id order.
    `mode`: their LLM mode from now on (a batch-mode call moved to sync leaves any batch it waits in).

    A naive `since` is taken as UTC, the zone every timestamp is stored in. Flushes; never commits: for
    more than a few hundred calls, `requeue_in_chunks`.
    """
    query = select(Call).where(*_retry_filters(states, since, tenant_id)).order_by(Call.id)
    if call_ids is not None:
        query = query.where(Call.id.in_(list(call_ids)))
    calls = session.scalars(query.with_for_update(skip_locked=True)).all()
    now = utcnow()
    for call in calls:
        set_state(call, CallState.queued, error=call.last_error)
        call.enqueued_at = now
        # An operator chose to try again: the attempt budget (POSTCALL_MAX_CALL_ATTEMPTS) starts afresh.
        call.attempts = 0
        if mode is not None and call.llm_mode is not mode:
            call.llm_mode, call.llm_batch_id = mode, None
    session.flush()
    return [call.id for call in calls]


def requeue_in_chunks(
    factory: sessionmaker[Session],
    *,
    states: Sequence[CallState] = (CallState.failed,),
    since: datetime | None = None,
    tenant_id: int | None = None,
    chunk_calls: int = RETRY_CHUNK,
    window_calls: int = RETRY_WINDOW,
    mode: LlmMode | None = None,
) -> list[str]:
    """`requeue_calls` for any number of calls, committing `chunk_calls` at a time; returns their ids.

    One transaction for an outage's thousands of failures updated the tenant's counter row once per call
    (PostgreSQL walks every version of a row the same transaction made, on each update) and held every
    call as an ORM object at once. The ids are read `window_calls` at a time, in id order, and each chunk
    requeued by id: by id because `--state queued` leaves the calls it requeued selectable, and read ahead
    because a query per chunk would sort every remaining candidate each time (no statistics needed)."""
    requeued: list[str] = []
    after_id: str | None = None
    while True:
        with unit_of_work(factory) as session:
            query = select(Call.id).where(*_retry_filters(states, since, tenant_id)).order_by(Call.id)
            if after_id is not None:
                query = query.where(Call.id > after_id)
            window = list(session.scalars(query.limit(window_calls)))
        for start in range(0, len(window), chunk_calls):
            with unit_of_work(factory) as session:
                requeued += requeue_calls(session, states=states, since=since, tenant_id=tenant_id,
                                          call_ids=window[start : start + chunk_calls], mode=mode)
        if len(window) < window_calls:
            return requeued
        after_id = window[-1]
