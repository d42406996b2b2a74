"""Hand call ids to the broker. The DB row is already committed as `queued`, so a broker that is
down loses nothing: the reconciler re-enqueues what stays queued."""

from __future__ import annotations

from collections.abc import Iterable

from app.config import get_settings
from app.worker.celery_app import celery_app
from app.worker.names import TASK_DELIVER_WEBHOOK, TASK_PROCESS_CALL

# Fail fast when the broker is down: the caller reports it and the reconciler takes over.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}


def enqueue_calls(call_ids: Iterable[str], broker_url: str | None = None) -> int:
    """Publish one `process_call` message per id on the configured (or given) broker."""
    ids = list(call_ids)
    if not ids:
        return 0
    url = broker_url or get_settings().broker_url
    with celery_app.connection_for_write(url) as connection:
        for call_id in ids:
            celery_app.send_task(
                TASK_PROCESS_CALL, args=[call_id], connection=connection, retry_policy=PUBLISH_RETRY_POLICY
            )
    return len(ids)


def enqueue_deliveries(delivery_ids: Iterable[int], broker_url: str | None = None) -> int:
    """Publish one `deliver_webhook` message per delivery id (the rows are committed; the sweep covers a loss).

    Without `broker_url` the app's pooled producer is used: workers and the web app hand over deliveries
    after every commit, and a new broker connection each time would cost more than the message."""
    ids = list(delivery_ids)
    if not ids:
        return 0
    if broker_url is None:
        for delivery_id in ids:
            celery_app.send_task(TASK_DELIVER_WEBHOOK, args=[delivery_id], retry_policy=PUBLISH_RETRY_POLICY)
        return len(ids)
    with celery_app.connection_for_write(broker_url) as connection:
        for delivery_id in ids:
            celery_app.send_task(
                TASK_DELIVER_WEBHOOK, args=[delivery_id], connection=connection, retry_policy=PUBLISH_RETRY_POLICY
            )
    return len(ids)
