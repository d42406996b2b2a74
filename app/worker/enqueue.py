"""Hand call ids to the broker. The DB row is already committed as `queued`, so a broker that is
down loses nothing: the reconciler re-enqueues what stays queued."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kombu import pools

from app.config import get_settings
from app.worker.celery_app import celery_app
from app.worker.names import TASK_DELIVER_WEBHOOK, TASK_PROCESS_CALL

# Fail fast when the broker is down: the caller reports it and the reconciler takes over.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}
# Seconds to wait for a free pooled producer (every one busy publishing) before giving up like a broker error.
PRODUCER_ACQUIRE_TIMEOUT_SECONDS = 10.0


def enqueue_calls(call_ids: Iterable[str], broker_url: str | None = None) -> int:
    """Publish one `process_call` message per id on the configured (or given) broker."""
    return _publish(TASK_PROCESS_CALL, list(call_ids), broker_url)


def enqueue_deliveries(delivery_ids: Iterable[int], broker_url: str | None = None) -> int:
    """Publish one `deliver_webhook` message per delivery id (the rows are committed; the sweep covers a loss)."""
    return _publish(TASK_DELIVER_WEBHOOK, list(delivery_ids), broker_url)


def enqueue_put_off_delivery(delivery_id: int, *, deferrals: int, countdown: float) -> None:
    """Publish a `deliver_webhook` message for a delivery put off `deferrals` times, to run in `countdown`
    seconds."""
    _publish(TASK_DELIVER_WEBHOOK, [delivery_id], None, kwargs={"deferrals": deferrals}, countdown=countdown)


def _publish(task_name: str, ids: Sequence[str | int], broker_url: str | None, *,
             kwargs: dict[str, Any] | None = None, countdown: float | None = None) -> int:
    """Publish through the process's pooled producer for that broker, one pool per broker URL.

    The web app enqueues after every submission and workers hand over deliveries after every commit: a new
    broker connection each time would cost more than the message. The pool for the configured broker is
    the one Celery's own `send_task` uses."""
    if not ids:
        return 0
    connection = celery_app.connection_for_write(broker_url or get_settings().broker_url)
    with pools.producers[connection].acquire(block=True, timeout=PRODUCER_ACQUIRE_TIMEOUT_SECONDS) as producer:
        for one_id in ids:
            celery_app.send_task(task_name, args=[one_id], kwargs=kwargs, countdown=countdown, producer=producer,
                                 retry_policy=PUBLISH_RETRY_POLICY)
    return len(ids)
