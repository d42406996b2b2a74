"""Thin webhook tasks: deliver one delivery; sweep for due ones (beat). The logic is app.handoff.delivery."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from celery.signals import worker_init, worker_process_init

from app.context import get_context
from app.db.session import unit_of_work
from app.handoff.delivery import DeliveryPolicy, dead_letter_disabled, deliver, sweep_due_deliveries
from app.handoff.outbox import install_delivery_notifier
from app.handoff.secrets import SecretBox
from app.handoff.urls import webhook_client
from app.models.tables import utcnow
from app.pipeline.retry import retry_countdown
from app.worker.celery_app import celery_app
from app.worker.enqueue import enqueue_deliveries, enqueue_put_off_delivery
from app.worker.names import TASK_DELIVER_WEBHOOK, TASK_SWEEP_WEBHOOKS
from app.worker.sizing import worker_sizing

logger = logging.getLogger(__name__)

# A task sends at most this many further events of the same call in a row, then hands the rest over.
MAX_CHAINED_DELIVERIES = 20


@dataclass(frozen=True)
class _Sender:
    policy: DeliveryPolicy
    box: SecretBox
    client: httpx.Client


_sender: _Sender | None = None
_sender_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


def delivery_slots() -> threading.BoundedSemaphore:
    """The deliveries this process sends at once (POSTCALL_WEBHOOK_DELIVERY_SLOTS, else a quarter of its
    slots): a receiver that answers slowly holds a slot for up to the webhook timeout, and without a bound
    one tenant's slow or numerous receivers took every slot and held up every tenant's calls."""
    global _slots
    with _sender_lock:
        if _slots is None:
            settings = get_context().settings
            _slots = threading.BoundedSemaphore(
                settings.webhook_delivery_slots or max(2, worker_sizing(settings).concurrency // 4))
        return _slots


def _get_sender() -> _Sender:
    """One HTTP client per process (connection reuse across deliveries; threads share it)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            settings = get_context().settings
            policy = DeliveryPolicy.from_settings(settings)
            limits = httpx.Limits(max_connections=max(10, worker_sizing(settings).concurrency * 2))
            # Outside POSTCALL_WEBHOOK_ALLOW_PRIVATE, connections go only to the public address checked for them
            # (or one in POSTCALL_WEBHOOK_ALLOWED_NETWORKS).
            client = webhook_client(limits, public_only=not policy.allow_private,
                                    allowed_networks=policy.allowed_networks)
            _sender = _Sender(policy, SecretBox.from_settings(settings), client)
        return _sender


def _notify(delivery_ids: Sequence[int]) -> None:
    enqueue_deliveries(delivery_ids)


@worker_init.connect
def hand_over_new_deliveries(**_: Any) -> None:
    """Events this worker writes (call.processed, call.failed) go to the delivery task once committed."""
    install_delivery_notifier(_notify)


@worker_process_init.connect
def fresh_sender_in_child(**_: Any) -> None:
    global _sender, _slots
    with _sender_lock:
        _sender = None
        _slots = None
    install_delivery_notifier(_notify)


# What the task returns for a delivery it put off (every delivery slot of the process was busy).
DEFERRED = "deferred"
# A put-off delivery is asked for again after 1, 2, 4, ... seconds, at most this many.
MAX_DEFERRAL_SECONDS = 30.0


@celery_app.task(name=TASK_DELIVER_WEBHOOK)
def deliver_webhook_task(delivery_id: int, deferrals: int = 0) -> str:
    slots = delivery_slots()
    if not slots.acquire(blocking=False):
        # Left pending and due, untouched, and asked for again shortly (growing waits while the slots stay
        # busy); were that message lost, the beat sweep hands it out as any other.
        wait = retry_countdown(min(deferrals, 10), None, 1.0, MAX_DEFERRAL_SECONDS)
        logger.info("webhook delivery %s put off %.1f s: every delivery slot of this process is busy",
                    delivery_id, wait)
        try:
            enqueue_put_off_delivery(delivery_id, deferrals=deferrals + 1, countdown=wait)
        except Exception:  # the broker away: the sweep hands the delivery out once it is back
            logger.warning("webhook delivery %s: could not ask for it again; the sweep will", delivery_id,
                           exc_info=True)
        return DEFERRED
    try:
        sender = _get_sender()
        factory = get_context().session_factory
        report = deliver(factory, delivery_id, sender.policy, sender.box, sender.client)
        first = report.result.value
        # The same call's next event to this endpoint was waiting for this one: send it right away, here.
        for _ in range(MAX_CHAINED_DELIVERIES):
            if report.next_delivery_id is None:
                break
            report = deliver(factory, report.next_delivery_id, sender.policy, sender.box, sender.client)
        if report.next_delivery_id is not None:
            enqueue_deliveries([report.next_delivery_id])
        return first
    finally:
        slots.release()


@celery_app.task(name=TASK_SWEEP_WEBHOOKS)
def sweep_webhooks_task() -> int:
    """Beat-scheduled: hand out due retries, deliveries whose enqueue was lost, lapsed leases."""
    sender = _get_sender()
    with unit_of_work(get_context().session_factory) as session:
        dead_letter_disabled(session)
        delivery_ids = sweep_due_deliveries(session, utcnow(), sender.policy)
    return enqueue_deliveries(delivery_ids)
