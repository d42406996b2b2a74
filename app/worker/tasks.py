"""Thin task adapters: a call id in, one pipeline function, then retry or fail."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from typing import Any

from celery.signals import worker_init, worker_process_init
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.context import get_context, reset_context
from app.db.session import forget_inherited_connections, is_transient_database_error
from app.errors import NotFoundError, PostcallError, SuspectCallError, TransientError
from app.pipeline.retry import retry_countdown
from app.pipeline.run import mark_failed, process_call
from app.worker.celery_app import celery_app
from app.worker.groups import running_a_call, worker_claim_group, worker_persist_group
from app.worker.isolated import run_isolated
from app.worker.names import (
    TASK_BATCH_COLLECT,
    TASK_BATCH_POLL,
    TASK_FOLD_ROLLUPS,
    TASK_PROCESS_CALL,
    TASK_PURGE,
    TASK_RECONCILE,
)
from app.worker.timings import worker_timings

logger = logging.getLogger(__name__)

__all__ = ["process_call_task", "reconcile_task", "retry_countdown"]

# A retry waits in the worker, unacknowledged, until its countdown ends. Past the broker's visibility
# timeout Redis would hand the same message to a second worker, so countdowns stay well below it.
MAX_COUNTDOWN_SHARE_OF_VISIBILITY_TIMEOUT = 0.5
# The least time a suspect call is given to run alone (app/worker/isolated.py): a process's start-up, its
# context and one call with a slow model.
ISOLATED_MIN_SECONDS = 120.0
# The reconciler's look at the broker's backlog gives up after this long (then it takes its floor).
BROKER_PROBE_TIMEOUT_SECONDS = 2.0


@worker_init.connect
def prepare_context(**_: Any) -> None:
    """Build the context (engine, provider, prompt) before consuming: the first call does not pay for
    imports and setup (seconds for the openai SDK), and a bad configuration shows in the startup log."""
    try:
        get_context()
    except PostcallError:
        logger.exception("worker configuration is invalid; every call will fail until it is fixed")
    freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, SQLAlchemy's and pydantic's schemas, the context) out of the
    collector's reach. They live as long as the process, yet each full collection walked all of them:
    ~220,000 objects, ~110 ms of one call's CPU about once per 400 calls (0.3 ms a call on average,
    bench/cpu). Collections then walk only what the calls allocate. A prefork child inherits the freeze."""
    gc.collect()  # what startup left as garbage is freed, not kept for good
    gc.freeze()


@worker_process_init.connect
def fresh_context_in_child(**_: Any) -> None:
    """Prefork children rebuild their context: clients (and pooled database connections) must not cross a
    fork. The modules the parent imported stay loaded, so this is cheap."""
    forget_inherited_connections()
    reset_context()


@celery_app.task(bind=True, name=TASK_PROCESS_CALL, max_retries=None)
def process_call_task(self: Any, call_id: str) -> str:
    ctx = get_context()
    settings = ctx.settings
    try:
        with running_a_call():  # a group waits for company only while other calls run beside this one
            outcome = process_call(
                ctx.session_factory,
                call_id,
                ctx.provider,
                ctx.prompt,
                redact_for_llm=settings.redact_for_llm,
                redact_names=settings.redact_names,
                max_attempts=settings.max_call_attempts,
                defer_batch_calls=True,
                # Written in batches by this process's recorder: one statement per batch, not per call.
                timings=worker_timings(),
                isolate_suspects=True,
                # Claimed with the calls other threads of this process claim close to it, and stored with the
                # results they finish close to it (group commit).
                claim_group=worker_claim_group(),
                persist_group=worker_persist_group(),
            )
    except SuspectCallError as exc:
        logger.warning("%s", exc)
        return _process_alone(self, call_id)
    except NotFoundError:
        logger.warning("call %s no longer exists; dropping its task", call_id)
        return "missing"
    except TransientError as exc:
        return _retry_or_give_up(self, call_id, exc, exc.retry_after)
    except PoolTimeoutError as exc:
        # Every pooled connection stayed busy past the pool timeout: the database is slow, the call is fine.
        return _retry_or_give_up(self, call_id, exc, None)
    except DBAPIError as exc:
        if not is_transient_database_error(exc):
            raise
        # The database is the source of truth: while it is away nothing can be claimed or stored.
        # If it stays away past the retries, the call keeps its queued/processing row and the
        # reconciler hands it out again once the database is back.
        return _retry_or_give_up(self, call_id, exc, None)
    return outcome.state.value


def _process_alone(task: Any, call_id: str, *, command: Sequence[str] | None = None) -> str:
    """Run a suspect call in a process of its own (app/worker/isolated.py; `command` another process to run
    in its place). If that process dies under it, this call is what kills workers: it is failed, visibly,
    and no call that ran beside it is."""
    ctx = get_context()
    settings = ctx.settings
    # Within half the visibility timeout where it can be (the broker would hand the call out again), but
    # never less than a process's start and one call need: killed mid-call for the limit, it would be
    # retried and killed again until it ran out of tries.
    limit = max(settings.broker_visibility_timeout * MAX_COUNTDOWN_SHARE_OF_VISIBILITY_TIMEOUT,
                ISOLATED_MIN_SECONDS)
    result = run_isolated(call_id, timeout=limit, command=command)
    if result.state is not None:
        return result.state
    if result.transient is not None:
        return _retry_or_give_up(task, call_id, TransientError(result.transient), None)
    reason = (f"killed the process that ran it alone ({result.died}) after its earlier tries died with their "
              "workers: this call crashes workers; inspect it (`postcall show`), `postcall retry` runs it again")
    logger.error("call %s: %s", call_id, reason)
    return mark_failed(ctx.session_factory, call_id, ctx.provider, ctx.prompt, reason).state.value


def _retry_or_give_up(task: Any, call_id: str, exc: Exception, retry_after: float | None) -> str:
    ctx = get_context()
    settings = ctx.settings
    retries = int(task.request.retries)
    if retries >= settings.task_max_retries:
        reason = f"gave up after {retries + 1} attempts: {exc}"
        return mark_failed(ctx.session_factory, call_id, ctx.provider, ctx.prompt, reason).state.value
    countdown = min(
        retry_countdown(retries, retry_after, settings.task_backoff_base, settings.task_backoff_max),
        settings.broker_visibility_timeout * MAX_COUNTDOWN_SHARE_OF_VISIBILITY_TIMEOUT,
    )
    logger.info("call %s: transient error (%s); retry %d in %.1fs", call_id, exc, retries + 1, countdown)
    raise task.retry(exc=exc, countdown=countdown) from exc


@celery_app.task(name=TASK_RECONCILE)
def reconcile_task() -> int:
    """Beat-scheduled: re-enqueue calls stuck in queued/processing past the timeout (committed and
    published a chunk at a time), as many as the broker seems to have lost (`reconcile_budget`)."""
    import redis

    from app.db.session import unit_of_work
    from app.health import broker_messages
    from app.pipeline.reconcile import reconcile_budget, reconcile_stuck_calls
    from app.worker.enqueue import enqueue_calls

    ctx = get_context()
    try:
        messages_in_broker: int | None = sum(broker_messages(ctx.settings, BROKER_PROBE_TIMEOUT_SECONDS)[:2])
    except redis.RedisError:
        messages_in_broker = None
    with unit_of_work(ctx.session_factory) as session:
        budget = reconcile_budget(session, messages_in_broker=messages_in_broker,
                                  max_calls=ctx.settings.reconcile_max_calls_per_run)

    def hand_over(call_ids: list[str]) -> bool:
        try:
            enqueue_calls(call_ids)
        except Exception as exc:  # kombu raises several unrelated types when the broker is down
            logger.warning("reconciler could not publish %d calls (%s): they wait in the database for the next "
                           "run after the timeout", len(call_ids), exc)
            return False
        return True

    done = reconcile_stuck_calls(ctx.session_factory, stuck_after_seconds=ctx.settings.stuck_after_seconds,
                                 hand_over=hand_over, max_calls=budget)
    if len(done.requeued) >= budget:
        logger.warning("reconciler re-enqueued %d stuck calls (this run's limit); the next run goes on",
                       len(done.requeued))
    elif done.requeued:
        logger.warning("reconciler re-enqueued %d stuck calls", len(done.requeued))
    return len(done.requeued)


@celery_app.task(name=TASK_FOLD_ROLLUPS)
def fold_rollups_task() -> int:
    """Beat-scheduled: fold the rollup ledgers; returns how many rows fewer they hold."""
    from app.db.session import unit_of_work
    from app.rollups import fold_rollups

    with unit_of_work(get_context().session_factory) as session:
        return fold_rollups(session)


@celery_app.task(name=TASK_PURGE)
def purge_task() -> int:
    """Beat-scheduled: hard-delete calls past their tenant's retention period, at most
    `purge_max_calls_per_run` of them (committed a chunk at a time), then the hand-off's delivered history
    past POSTCALL_HANDOFF_RETENTION_DAYS, at most HANDOFF_PURGE_MAX_EVENTS_PER_RUN events; the next run goes
    on. Returns the calls purged (the events are logged). While another purge runs (a `postcall purge`, a
    second beat's run) it logs that and returns 0, having deleted nothing: the next tick tries again."""
    from app.pipeline.retention import HANDOFF_PURGE_MAX_EVENTS_PER_RUN, PurgeRunningError, run_purge

    ctx = get_context()
    budget = ctx.settings.purge_max_calls_per_run
    try:
        report = run_purge(ctx.session_factory, default_days=ctx.settings.retention_days,
                           handoff_days=ctx.settings.handoff_retention_days, max_calls=budget,
                           max_events=HANDOFF_PURGE_MAX_EVENTS_PER_RUN)
    except PurgeRunningError:
        logger.warning("retention purge skipped: another purge is running (a `postcall purge`, or an earlier "
                       "run); the next run goes on")
        return 0
    purged = sum(tenant.calls for tenant in report.calls)
    if purged >= budget:
        logger.warning("retention purged %d calls (this run's limit); the next run purges more", purged)
    elif purged:
        logger.warning("retention purged %d calls", purged)
    handoff = report.handoff
    if handoff is not None and handoff.events:
        limited = handoff.events >= HANDOFF_PURGE_MAX_EVENTS_PER_RUN
        logger.warning("retention purged %d hand-off events, %d deliveries and %d attempts%s", handoff.events,
                       handoff.deliveries, handoff.attempts,
                       " (this run's limit); the next run purges more" if limited else "")
    if handoff is not None and handoff.held_by_event is not None:
        logger.info("hand-off retention stopped at event %d: a delivery of it is still pending",
                    handoff.held_by_event)
    return purged


@celery_app.task(name=TASK_BATCH_COLLECT)
def collect_batches_task() -> int:
    """Beat-scheduled: gather batch-mode calls waiting for a batch into new batches; returns calls batched."""
    from app.pipeline.batch import collect_batches

    ctx = get_context()
    if ctx.settings.llm_provider != "openai" or not ctx.settings.batch_collect_automatically:
        return 0  # batch mode is the openai provider's; or batches are made by hand
    summary = collect_batches(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    if summary.submitted or summary.failed:
        logger.info("batch collector: %d calls in batches %s; refused: %s", summary.calls, summary.submitted,
                    summary.failed)
    return summary.calls


@celery_app.task(name=TASK_BATCH_POLL)
def poll_batches_task() -> int:
    """Beat-scheduled: follow open batches and store the answers of finished ones; returns calls stored."""
    from app.pipeline.batch import poll_batches

    ctx = get_context()
    if ctx.settings.llm_provider != "openai":
        return 0
    summary = poll_batches(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    if summary.finished:
        logger.info("batch poller: %d stored, %d sent again, %d left for the next pass", summary.stored,
                    summary.put_back, summary.pending)
    return summary.stored
