"""The Celery application. Configuration comes from Settings; nothing connects at import.

Queue and task names live in app.worker.names, which imports nothing: code that only needs a name
(web app, metrics, health) never loads Celery."""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.config import Settings, get_settings
from app.worker.names import (
    QUEUE_NAME,
    TASK_BATCH_COLLECT,
    TASK_BATCH_POLL,
    TASK_FOLD_ROLLUPS,
    TASK_PURGE,
    TASK_RECONCILE,
    TASK_SWEEP_WEBHOOKS,
)
from app.worker.sizing import worker_sizing
from app.worker.transport import broker_transport

# kombu sweeps the Redis `unacked` set for messages older than the visibility timeout only every
# `unacked_restore_interval * unacked_restore_throttle` seconds (100 s by default), whatever the timeout.
# Sweep every scan, several times per visibility timeout, so a killed worker's call comes back promptly.
RESTORE_SWEEPS_PER_VISIBILITY_TIMEOUT = 4
MAX_RESTORE_INTERVAL_SECONDS = 60
# A worker killed while it holds kombu's restore mutex blocks every sweep until the mutex expires
# (300 s by default); one visibility timeout is ample for a sweep, which takes milliseconds.
MIN_RESTORE_MUTEX_SECONDS = 10


def redis_transport_options(settings: Settings) -> dict[str, int]:
    """kombu Redis transport options: redelivery timing and a connection pool sized to the worker."""
    timeout = settings.broker_visibility_timeout
    return {
        "visibility_timeout": timeout,
        "unacked_restore_interval": max(
            1, min(MAX_RESTORE_INTERVAL_SECONDS, timeout // RESTORE_SWEEPS_PER_VISIBILITY_TIMEOUT)
        ),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": max(MIN_RESTORE_MUTEX_SECONDS, min(timeout, 300)),
        # One pool per worker process, sized to its slots (app/worker/sizing.py): redis-py raises, not waits.
        "max_connections": worker_sizing(settings).redis_max_connections,
    }


def configure(app: Celery, settings: Settings) -> None:
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport=broker_transport(settings.broker_url),
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=QUEUE_NAME,
        # At-least-once delivery: the message is acked after the task returns, and a task whose
        # worker died is requeued; the idempotency key makes the effect exactly-once.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # No task has a rate limit: skip the token-bucket lookup Celery does for every message otherwise.
        worker_disable_rate_limits=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options=redis_transport_options(settings),
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        timezone="UTC",
        # `postcall worker --beat` (or a separate `celery beat`) runs the reconciler on this schedule.
        # The in-memory scheduler needs no schedule file: a missed tick after a restart costs nothing
        # (the reconciler is idempotent), and several beats never fight over one file.
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            "reconcile-stuck-calls": _periodic(TASK_RECONCILE, settings.reconcile_every_seconds),
            # Hand-off: retries that came due, deliveries whose enqueue was lost, leases of killed workers.
            "sweep-webhook-deliveries": _periodic(TASK_SWEEP_WEBHOOKS, settings.webhook_sweep_every_seconds),
            # Retention (docs/privacy.md): expired calls (none while no tenant has a period), then the
            # hand-off's delivered history (POSTCALL_HANDOFF_RETENTION_DAYS).
            "purge-expired-calls": _periodic(TASK_PURGE, settings.purge_every_seconds),
            # Batch mode: gather waiting calls into batches, and follow the open ones. Both do nothing
            # unless POSTCALL_LLM_PROVIDER=openai, and both are idempotent (their state is in the database).
            "collect-llm-batches": _periodic(TASK_BATCH_COLLECT, settings.batch_collect_every_seconds),
            "poll-llm-batches": _periodic(TASK_BATCH_POLL, settings.batch_poll_every_seconds),
            # Analysts' rollups: sum each key's delta rows into one (app/rollups.py).
            "fold-rollups": _periodic(TASK_FOLD_ROLLUPS, settings.rollup_fold_every_seconds),
        },
    )


def _periodic(task: str, every_seconds: float) -> dict[str, Any]:
    """A beat entry. Ticks published while no worker runs would pile up; each expires when the next is
    due, since one pass is all a returning worker needs."""
    return {"task": task, "schedule": float(every_seconds), "options": {"expires": float(every_seconds)}}


def create_celery(settings: Settings) -> Celery:
    """A Celery app configured from `settings`; its workers run the tasks of app.worker.tasks and webhooks."""
    app = Celery("postcall", include=["app.worker.tasks", "app.worker.webhooks"])
    configure(app, settings)
    return app


# The app the task modules register with and `postcall worker` runs.
celery_app = create_celery(get_settings())


def run_worker(app: Celery, argv: list[str]) -> int:
    """Run `celery worker` with `argv` on `app` and return its exit code. `Celery.worker_main` drops it:
    a worker that stopped on an unrecoverable error at start (a broker at maxmemory refusing its first
    write, say) exited 0, which a supervisor reads as a clean stop and does not restart. This is
    `Celery.start` keeping the code the command returns."""
    from celery.bin.celery import celery as celery_command
    from click.exceptions import Exit

    celery_command.params[0].default = app  # the `--app` option, as `Celery.start` sets it
    try:
        code = celery_command.main(args=argv, standalone_mode=False)
    except Exit as exc:
        code = exc.exit_code
    finally:
        celery_command.params[0].default = None
    return code if isinstance(code, int) else 0
