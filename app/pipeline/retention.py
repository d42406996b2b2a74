"""Retention: calls older than their tenant's retention period are hard-deleted.

A purged call loses its transcript, runs (raw model answers included), claims and evidence: all
are deleted with the `calls` row. Its audit trail stays, content-free: the text snapshots
(`before`/`after`) of its review events are cleared (the only change the append-only triggers
allow) and a `call_purged` event records when and under which retention period it went. A call's
age is its start time, or when it was stored if the source gave none.

`purge_expired` is a use case that owns its transactions, as `process_call` does: it deletes the expired
calls a chunk at a time, oldest first, and commits each chunk. One transaction for every expired call
was quadratic: each deleted call (and run) updates its tenant's counter rows, and PostgreSQL walks every
version of a row that the same transaction made on each update: 128,000 expired calls took 7 minutes
(0.5 ms per call at 16,000), a longer history more than the broker's visibility timeout (the task was
delivered again while it ran), with every expired call locked meanwhile and all of it lost on a restart
(docs/benchmarks.md, retention).

`purge_handoff_history` bounds the hand-off's tables the same way: outbox events older than
POSTCALL_HANDOFF_RETENTION_DAYS whose every delivery has finished go with their deliveries and attempts, a
chunk per transaction. It deletes a prefix of the outbox (in id order, the feed's order) and never its newest
event, so the feed can tell a reader that fell behind what was deleted (app/handoff/feed.py).

`run_purge` runs both, as the beat's task and `postcall purge` do, one purge at a time (`purge_turn`): two
at once could meet on the same oldest rows, and one of them deadlocked or found rows gone under it
(StaleDataError).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, Update, create_engine, delete, func, null, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.db.session import scalar_for_update, scalars_for_update, unit_of_work
from app.errors import InvalidInputError, NotFoundError, TransientError
from app.handoff.outbox import record_deletions
from app.models import (
    Call,
    Claim,
    DeliveryStatus,
    Evidence,
    ExtractionRun,
    OutboxEvent,
    OutboxPurgeMark,
    ReviewEvent,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
)
from app.models import Utterance as UtteranceRow
from app.models.tables import utcnow
from app.pipeline.calls import find_tenant

logger = logging.getLogger(__name__)

PURGE_EVENT = "call_purged"
PURGE_ACTOR = "retention"  # who the audit trail and the hand-off name for a purge
# Calls deleted (and committed) per transaction: it bounds each statement's IN list, the locks held, the
# versions of the counter rows one transaction makes, and the work a restart loses.
PURGE_CHUNK = 500
# Expired call ids read per query (oldest first), then deleted chunk by chunk.
PURGE_WINDOW = 50_000
# The longest retention period (100 years): longer ones reach before year 1 and overflowed the purge.
MAX_RETENTION_DAYS = 36_500


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
    factory: sessionmaker[Session],
    *,
    default_days: int,
    tenant: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    max_calls: int | None = None,
    chunk_calls: int = PURGE_CHUNK,
    on_expired: Callable[[int], None] | None = None,
    on_purged: Callable[[int], None] | None = None,
) -> list[TenantPurge]:
    """Hard-delete the expired calls (of one tenant, or all), committing every `chunk_calls` of them, oldest
    first; with `dry_run`, only count them. A report per tenant with a period, of what was deleted.

    `max_calls` stops after that many (the beat's task keeps each run well inside the broker's visibility
    timeout; the next tick goes on). A call whose row another transaction holds (a worker storing its
    result) is skipped, not waited for, and left for the next run; so are concurrent purges' chunks.
    `on_expired` is told how many calls each tenant has expired before its first chunk, `on_purged` how many
    each committed chunk deleted (a progress bar)."""
    moment = now or utcnow()
    with unit_of_work(factory) as session:
        query = select(Tenant).order_by(Tenant.slug)
        if tenant is not None:
            query = query.where(Tenant.slug == tenant)
        periods = [(row.id, row.slug, retention_days_of(row, default_days)) for row in session.scalars(query)]
    reports: list[TenantPurge] = []
    purged = 0
    for tenant_id, slug, days in periods:
        if days <= 0:
            continue
        try:
            cutoff = moment - timedelta(days=days)
        except OverflowError:  # a period before year 1 (stored before periods were bounded): nothing expires
            continue
        expired_ids = select(Call.id).where(Call.tenant_id == tenant_id, _moment() < cutoff)
        if dry_run:
            with unit_of_work(factory) as session:
                calls = _count_expired(session, expired_ids)
                reports.append(TenantPurge(slug, days, cutoff, calls, *_counts(session, expired_ids.scalar_subquery())))
            continue
        if on_expired is not None:
            with unit_of_work(factory) as session:
                on_expired(_count_expired(session, expired_ids))
        totals = [0, 0, 0, 0]  # calls, utterances, claims, evidence
        while max_calls is None or purged < max_calls:
            # The next expired calls, oldest first, read once for many chunks: a query per chunk would
            # read past every call the chunks before it deleted (and without statistics PostgreSQL sorts
            # every expired call for it), which grows with the backlog.
            window_size = PURGE_WINDOW if max_calls is None else min(PURGE_WINDOW, max_calls - purged)
            with unit_of_work(factory) as session:
                window = session.scalars(expired_ids.order_by(_moment()).limit(window_size)).all()
            deleted_in_window = 0
            for start in range(0, len(window), chunk_calls):
                with unit_of_work(factory) as session:
                    # Locked now, or skipped: a worker holding a call (storing its result) is not waited for,
                    # and a call another transaction deleted is not counted (or given an audit event) twice.
                    # On SQLite the database's write lock is taken before the chunk is read: its driver starts
                    # a transaction only at the first write, and a chunk read before it counted (and gave a
                    # second `call_purged` event to) calls that a writer in between had purged.
                    chunk = scalars_for_update(
                        session, select(Call.id).where(Call.id.in_(window[start : start + chunk_calls])),
                        of=Call, skip_locked=True,
                    )
                    if not chunk:
                        continue
                    counts = (len(chunk), *_purge(session, tenant_id, chunk, days))
                totals = [total + count for total, count in zip(totals, counts, strict=True)]
                purged += len(chunk)
                deleted_in_window += len(chunk)
                if on_purged is not None:
                    on_purged(len(chunk))
            if len(window) < window_size or not deleted_in_window:
                break  # every expired call was in this window, or the rest are held by others: next run
        reports.append(TenantPurge(slug, days, cutoff, *totals))
        if max_calls is not None and purged >= max_calls:
            break
    return reports


def _moment() -> ColumnElement[Any]:
    """A call's age, as `ix_calls_tenant_moment` indexes it: the oldest expired calls are a range of that index."""
    return func.coalesce(Call.started_at, Call.created_at)


def _count_expired(session: Session, expired_ids: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(expired_ids.subquery())) or 0


def _counts(session: Session, call_ids: ScalarSelect[Any]) -> tuple[int, int, int]:
    """The utterances, claims and evidence that deleting the calls `call_ids` would delete with them (a dry
    run's report; a purge counts the rows its deletes removed)."""
    claim_ids = select(Claim.id).where(Claim.call_id.in_(call_ids))
    return (
        session.scalar(select(func.count()).where(UtteranceRow.call_id.in_(call_ids))) or 0,
        session.scalar(select(func.count()).where(Claim.call_id.in_(call_ids))) or 0,
        session.scalar(select(func.count()).where(Evidence.claim_id.in_(claim_ids))) or 0,
    )


def scrub_review_events(call_ids: Sequence[str]) -> Update:
    """Clear the text snapshots of the calls' review events: a Core statement, since the ORM guard refuses
    any UPDATE of review events, and the triggers allow exactly this one (content to NULL, everything else
    kept). By call id alone (ids are unique across tenants): with a tenant condition beside it, a planner
    whose statistics predate the purge read every event of the tenant through its tenant index for each
    chunk, while the purge adds 500 events per chunk (128,000 calls: 287 of 346 s in this statement;
    without the condition, under 1.5 s)."""
    return (
        update(ReviewEvent)
        .where(ReviewEvent.call_id.in_(call_ids))
        .where((ReviewEvent.before.is_not(None)) | (ReviewEvent.after.is_not(None)))
        .values(before=null(), after=null())
    )


def _purge(session: Session, tenant_id: int, call_ids: Sequence[str], days: int) -> tuple[int, int, int]:
    """Delete one chunk of calls (locked by the caller), with their children, and record their
    `call_purged` events; the utterances, claims and evidence deleted. Flushes."""
    # The hand-off's copies go too, as with an administrator's deletion: the calls' earlier events keep
    # their identity only (the feed and pending deliveries carried the whole record, quotes included,
    # after the transcript was gone), and a `call.deleted` tells the receivers. Before the rows go: the
    # record reads the call.
    calls = session.scalars(select(Call).where(Call.id.in_(call_ids))).all()
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None  # the caller read the tenant's calls, locked
    record_deletions(session, calls, tenant, actor=PURGE_ACTOR)
    for call in calls:
        session.expunge(call)
    connection = session.connection()
    connection.execute(scrub_review_events(call_ids))
    # Children first, so the delete does not depend on cascades being switched on.
    claim_ids = select(Claim.id).where(Claim.call_id.in_(call_ids)).scalar_subquery()
    evidence = connection.execute(delete(Evidence).where(Evidence.claim_id.in_(claim_ids))).rowcount
    claims = connection.execute(delete(Claim).where(Claim.call_id.in_(call_ids))).rowcount
    connection.execute(delete(ExtractionRun).where(ExtractionRun.call_id.in_(call_ids)))
    utterances = connection.execute(delete(UtteranceRow).where(UtteranceRow.call_id.in_(call_ids))).rowcount
    connection.execute(delete(Call).where(Call.id.in_(call_ids)))
    session.add_all(
        ReviewEvent(
            tenant_id=tenant_id,
            call_id=call_id,
            actor_name=PURGE_ACTOR,
            action=PURGE_EVENT,
            before=None,
            after={"retention_days": days},
            created_at=utcnow(),
        )
        for call_id in call_ids
    )
    session.flush()
    return utterances, claims, evidence


def set_retention(session: Session, tenant: str, days: int | None) -> Tenant:
    """Set (or with None, clear back to the default) a tenant's retention period in days (0 keeps calls
    forever; at most `MAX_RETENTION_DAYS`)."""
    if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
        raise InvalidInputError(f"a retention period is 0 (keep forever) to {MAX_RETENTION_DAYS:,} days")
    tenant_row = find_tenant(session, tenant)
    if tenant_row is None:
        raise NotFoundError(f"tenant {tenant!r} not found")
    tenant_row.retention_days = days
    session.flush()
    return tenant_row


# ------------------------------------------------------------------------------------ hand-off history

# Hand-off events deleted (and committed) per transaction, with their deliveries and attempts. The feed
# waits at most 200 ms (feed.LOCK_WAIT) for a transaction that deletes events, then answers an empty page:
# a chunk's transaction stays well inside that (docs/privacy.md has the measured time).
HANDOFF_PURGE_CHUNK = 500
# The beat's task deletes at most this many events per run, so that a first run over years of history
# stays inside the broker's visibility timeout; the next run goes on.
HANDOFF_PURGE_MAX_EVENTS_PER_RUN = 200_000
# Delivery ids per statement: a chunk's events may have a delivery to each of many endpoints (enabled and
# disabled), and SQLite takes at most 32,766 parameters.
DELIVERY_IDS_PER_STATEMENT = 5_000


@dataclass(frozen=True)
class HandoffPurge:
    """What the hand-off purge deleted (a dry run: would delete) and why it stopped where it did."""

    retention_days: int
    cutoff: datetime
    events: int
    deliveries: int
    attempts: int
    # The oldest event kept although older than the cutoff, because a delivery of it is pending (within its
    # retry period, or replayed): nothing after it goes until that delivery finishes (`purge_handoff_history`).
    held_by_event: int | None = None


@dataclass(frozen=True)
class _HandoffChunk:
    events: int
    deliveries: int
    attempts: int
    last_event: int | None  # the newest event the chunk deleted (a dry run: counted)
    done: bool  # it reached an event to keep: the purge ends here
    held_by_event: int | None


def purge_handoff_history(
    factory: sessionmaker[Session],
    *,
    days: int,
    dry_run: bool = False,
    now: datetime | None = None,
    max_events: int | None = None,
    chunk_events: int = HANDOFF_PURGE_CHUNK,
    on_purged: Callable[[int], None] | None = None,
) -> HandoffPurge | None:
    """Delete the outbox events older than `days` whose deliveries have all finished (succeeded or
    dead-lettered; an endpoint's deletion took its deliveries with it), with their deliveries and attempts,
    committing every `chunk_events` events; with `dry_run`, only count them. None when `days` keeps them
    forever (0).

    It deletes the oldest events first and stops at the first one it must keep: one younger than the
    cutoff, one with a pending delivery (a lease is only ever held on a pending one), or the newest event of
    all. So what is deleted is always every event up to some id, and the feed can tell a reader whose
    cursor is older than what is kept that it missed events (app/handoff/feed.py), rather than skip past
    holes; and the newest event stays because SQLite gives a new row the largest id there is plus one: with
    it gone, the next event would take an id the feed may already have handed out as a cursor.

    `max_events` stops after that many (the beat's task); `on_purged` is told how many events each
    committed chunk deleted (a progress bar)."""
    if days <= 0:
        return None
    try:
        cutoff = (now or utcnow()) - timedelta(days=days)
    except OverflowError:  # a period before year 1: nothing is that old
        return None
    with unit_of_work(factory) as session:
        newest = session.scalar(select(func.max(OutboxEvent.id)))
    events = deliveries = attempts = 0
    held_by_event = None
    after = 0
    while newest is not None and (max_events is None or events < max_events):
        size = chunk_events if max_events is None else min(chunk_events, max_events - events)
        with unit_of_work(factory) as session:
            chunk = _purge_handoff_chunk(session, after=after, newest=newest, cutoff=cutoff, size=size,
                                         dry_run=dry_run)
        events, deliveries, attempts = events + chunk.events, deliveries + chunk.deliveries, attempts + chunk.attempts
        held_by_event = chunk.held_by_event
        if chunk.events and on_purged is not None:
            on_purged(chunk.events)
        if chunk.done or chunk.last_event is None:
            break
        after = chunk.last_event
    return HandoffPurge(days, cutoff, events, deliveries, attempts, held_by_event)


def _purge_handoff_chunk(session: Session, *, after: int, newest: int, cutoff: datetime, size: int,
                         dry_run: bool) -> _HandoffChunk:
    """Delete (or count) the next events after `after`, at most `size`, up to the first one to keep. Every
    selection is a range of an index: the outbox's key, and deliveries by (outbox_id, endpoint_id), attempts
    by delivery_id; nothing reads the whole of a table (docs/privacy.md, the plans)."""
    first = (select(OutboxEvent.id).where(OutboxEvent.id > after, OutboxEvent.id < newest)
             .order_by(OutboxEvent.id).limit(1))
    # The oldest event, locked: concurrent purges (the beat's and `postcall purge`) take turns a chunk at a
    # time, the second going on after what the first deleted; on SQLite this takes the database's write lock
    # before anything is read, so what is read below stays true until the commit.
    head = session.scalar(first) if dry_run else scalar_for_update(session, first)
    if head is None:
        return _HandoffChunk(0, 0, 0, None, True, None)
    rows = session.execute(
        select(OutboxEvent.id, OutboxEvent.created_at, OutboxEvent.tenant_id)
        .where(OutboxEvent.id >= head, OutboxEvent.id < newest).order_by(OutboxEvent.id).limit(size)
    ).all()
    old = list(takewhile(lambda row: row.created_at < cutoff, rows))
    deliveries: Sequence[Any] = ()
    if old:
        # By the range of event ids (the events in it are `old`, read in one statement): a range of the
        # index on (outbox_id, endpoint_id) at any size, where the planner read a small table whole for a list.
        query = (select(WebhookDelivery.id, WebhookDelivery.outbox_id, WebhookDelivery.status)
                 .where(WebhookDelivery.outbox_id.between(old[0].id, old[-1].id)).order_by(WebhookDelivery.id))
        # Locked: a replay that makes a dead letter pending again has either committed (its event is kept
        # here) or waits for this commit and then finds the delivery gone (an error, not a lost replay).
        deliveries = session.execute(query if dry_run else query.with_for_update()).all()
    pending = {delivery.outbox_id for delivery in deliveries if delivery.status == DeliveryStatus.pending}
    purged = [row.id for row in takewhile(lambda row: row.id not in pending, old)]
    held_by_event = old[len(purged)].id if len(purged) < len(old) else None
    done = len(purged) < len(rows) or len(rows) < size
    if not purged:
        return _HandoffChunk(0, 0, 0, None, True, held_by_event)
    purged_set = set(purged)
    delivery_ids = [delivery.id for delivery in deliveries if delivery.outbox_id in purged_set]
    if dry_run:
        attempts = sum(session.scalar(select(func.count()).where(WebhookAttempt.delivery_id.in_(part))) or 0
                       for part in _slices(delivery_ids))
        return _HandoffChunk(len(purged), len(delivery_ids), attempts, purged[-1], done, held_by_event)
    # Children first, so that the deletes do not depend on cascades being switched on (SQLite's pragma); by
    # the ids read above, not a subquery: the planner then probes the indexes for them, where a join may read
    # a whole table (it did for the attempts, at a few hundred thousand rows).
    connection = session.connection()
    attempts = removed = 0
    for part in _slices(delivery_ids):
        attempts += connection.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(part))).rowcount
        removed += connection.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(part))).rowcount
    events = connection.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(purged))).rowcount
    _mark_purged(session, {row.tenant_id: row.id for row in old[: len(purged)]})
    return _HandoffChunk(events, removed, attempts, purged[-1], done, held_by_event)


def _mark_purged(session: Session, newest_by_tenant: dict[int, int]) -> None:
    """Record, per tenant, the newest of its events deleted (`OutboxPurgeMark`): what the feed compares a
    reader's cursor with. Purges take turns (the oldest event's lock), so read-then-write is safe here."""
    for tenant_id, newest in newest_by_tenant.items():
        mark = session.get(OutboxPurgeMark, tenant_id)
        if mark is None:
            session.add(OutboxPurgeMark(tenant_id=tenant_id, purged_through=newest))
        elif mark.purged_through < newest:
            mark.purged_through = newest
    session.flush()


def _slices(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), DELIVERY_IDS_PER_STATEMENT):
        yield ids[start : start + DELIVERY_IDS_PER_STATEMENT]


# ------------------------------------------------------------------------------------ one purge at a time

# The PostgreSQL advisory lock a purge holds from its start to its end (`purge_turn`): the ASCII of "pc_purge",
# as the migrations' lock is that of "postcall" (migrations/env.py). Every process must ask for this one key.
PURGE_LOCK_KEY = 0x70635F7075726765


class PurgeRunningError(TransientError):
    """Another purge (the beat's, or a `postcall purge`) holds the purge lock: this one deleted nothing."""


@dataclass(frozen=True)
class PurgeReport:
    calls: list[TenantPurge]  # a report per tenant with a retention period
    # None: the hand-off's history is kept forever (0 days), or the purge was one tenant's (the history is
    # every tenant's at once).
    handoff: HandoffPurge | None


def run_purge(
    factory: sessionmaker[Session],
    *,
    default_days: int,
    handoff_days: int,
    tenant: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    max_calls: int | None = None,
    max_events: int | None = None,
    on_expired: Callable[[int], None] | None = None,
    on_purged: Callable[[int], None] | None = None,
    on_events_purged: Callable[[int], None] | None = None,
) -> PurgeReport:
    """The retention purge, as the beat's task and `postcall purge` run it: the expired calls (`purge_expired`,
    of one tenant or all), then, for all tenants only, the hand-off's delivered history
    (`purge_handoff_history`, `handoff_days`), the whole of it in one turn (`purge_turn`). Raises
    PurgeRunningError, having deleted nothing, while another purge has its turn. A dry run deletes nothing and
    takes no turn. `max_calls`, `max_events` and the callbacks are those of the two functions."""
    with purge_turn(factory, dry_run=dry_run):
        calls = purge_expired(factory, default_days=default_days, tenant=tenant, dry_run=dry_run, now=now,
                              max_calls=max_calls, on_expired=on_expired, on_purged=on_purged)
        handoff = None
        if tenant is None:
            handoff = purge_handoff_history(factory, days=handoff_days, dry_run=dry_run, now=now,
                                            max_events=max_events, on_purged=on_events_purged)
    return PurgeReport(calls, handoff)


@contextmanager
def purge_turn(factory: sessionmaker[Session], *, dry_run: bool = False) -> Iterator[None]:
    """Hold the purge lock for the block, or raise PurgeRunningError at once: never wait for it (the beat's
    next tick, or the operator, tries again). A dry run needs no turn.

    PostgreSQL: `pg_try_advisory_xact_lock(PURGE_LOCK_KEY)` on a connection of its own (not the pool's), in a
    transaction kept open for the whole purge (the purge's chunks commit on other connections) and ended in
    the `finally`, which releases the lock. Transaction-level rather than session-level, so that it cannot
    outlive the purge: a session lock stays with a connection that goes back to a pool, and behind PgBouncer's
    transaction pooling with whichever client gets that server connection next, the unlock going to another
    one; a connection that dies takes its transaction's lock with it. The transaction only ran statements
    without parameters, whose portals are closed: it holds no snapshot and no transaction id, so it does not
    hold back vacuum; `idle_in_transaction_session_timeout` is switched off for it alone, or a server that
    sets one would end the turn in the middle of a long purge.

    SQLite: no lock is taken. The database's one write lock already has purges take turns, a transaction at a
    time: each chunk takes it before it reads what to delete (`scalars_for_update` for the calls,
    `scalar_for_update` for the hand-off's events), so a second purge's chunk waits for the first's commit
    (busy timeout) and then reads what is left; there are no row locks to meet in two orders (no deadlock),
    and no row is deleted under a transaction that has read it."""
    engine = factory.kw["bind"]
    if dry_run or engine.dialect.name == "sqlite":
        yield
        return
    # A connection of its own, outside the pool the purge's chunks take theirs from: a pool of one (a worker
    # of concurrency 1) left them none, and the purge timed out on every run.
    lock_engine = create_engine(engine.url, poolclass=NullPool)
    try:
        with lock_engine.connect() as connection:
            connection.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
            # The key written into the SQL, not bound: a statement with parameters leaves its portal, and the
            # portal's snapshot, open to the transaction's end, which held back vacuum for the whole purge.
            taken = connection.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({int(PURGE_LOCK_KEY)})").scalar()
            if not taken:
                raise PurgeRunningError("another purge is running (the beat's or a `postcall purge`): this one "
                                        "deleted nothing; run it again once that one has finished")
            try:
                yield
            finally:
                try:
                    connection.rollback()  # ends the lock's transaction, and the lock with it
                except DBAPIError:  # the connection was lost: the server ended its transaction and lock then
                    logger.warning("the purge lock's connection was lost during the purge; the server released "
                                   "the lock with it")
    finally:
        lock_engine.dispose()
