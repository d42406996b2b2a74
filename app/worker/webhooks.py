"""Thin webhook tasks: deliver one delivery; sweep for due ones (beat). The logic is app.handoff.delivery."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from celery.concurrency import ALIASES as POOL_ALIASES
from celery.signals import worker_init, worker_process_init, worker_shutdown

from app.config import Settings, get_settings
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


class DeliverySlots(Protocol):
    """What a delivery task holds while it sends: a `threading.BoundedSemaphore` within one process, or
    `SharedDeliverySlots` across the child processes of a prefork worker."""

    def acquire(self, blocking: bool = ...) -> bool: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class WorkerSlots:
    """How many tasks the worker runs at once, and how: one process with threads or greenlets, prefork
    children (one task each), or solo (one task in the main process)."""

    pool: str
    slots: int


_sender: _Sender | None = None
_sender_lock = threading.Lock()
_slots: DeliverySlots | None = None
# Set in the worker's main process when it starts (`worker_init`); prefork children inherit both at fork.
_worker_slots: WorkerSlots | None = None
_shared_slots_dir: str | None = None


def delivery_slot_count(worker_slots: int, configured: int | None = None) -> int:
    """How many of a worker's slots deliveries may hold at once: POSTCALL_WEBHOOK_DELIVERY_SLOTS, else a
    quarter of them (at least 2), and never all of them: with every slot sending to slow receivers no call
    was processed until one answered (concurrency 2 used to allow 2 deliveries). A worker with one slot
    lends it to deliveries too: with none they would be put off forever, never sent."""
    if worker_slots <= 1:
        return 1
    return min(configured or max(2, worker_slots // 4), worker_slots - 1)


def _slots_from_settings(settings: Settings) -> WorkerSlots:
    sizing = worker_sizing(settings)
    return WorkerSlots(sizing.pool, 1 if sizing.pool == "solo" else sizing.concurrency)


def worker_slots(settings: Settings) -> WorkerSlots:
    """The pool and slots this worker runs with: as Celery started it (`worker_init`; `celery worker` run
    directly may differ from the settings), else as the settings size it."""
    return _worker_slots or _slots_from_settings(settings)


def delivery_slots() -> DeliverySlots:
    """The deliveries this process (under prefork: this worker's children together) sends at once
    (`delivery_slot_count`): a receiver that answers slowly holds a slot for up to the webhook timeout, and
    without a bound one tenant's slow or numerous receivers took every slot and held up every tenant's calls."""
    global _slots
    with _sender_lock:
        if _slots is None:
            settings = get_context().settings
            layout = worker_slots(settings)
            count = delivery_slot_count(layout.slots, settings.webhook_delivery_slots)
            if layout.pool == "prefork" and _shared_slots_dir is not None:
                _slots = SharedDeliverySlots(_shared_slots_dir, count)
            else:
                _slots = threading.BoundedSemaphore(count)
        return _slots


class SharedDeliverySlots:
    """Delivery slots shared by the child processes of one prefork worker, each running one task: a
    semaphore in one child bounds nothing. One lock file per slot, taken with flock: the kernel drops the
    lock of a process that dies, so a child killed mid-send (SIGKILL, the OOM killer) gives its slot back,
    where a counter in shared memory would lose it for good and, slot by slot, put every delivery off."""

    POLL_SECONDS = 0.05

    def __init__(self, directory: str, count: int) -> None:
        self.paths = [os.path.join(directory, f"slot-{n}") for n in range(count)]
        self._held: list[int] = []
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True) -> bool:
        while True:
            for path in self.paths:
                fd = self._open(path)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                with self._lock:
                    self._held.append(fd)
                return True
            if not blocking:
                return False
            time.sleep(self.POLL_SECONDS)

    @staticmethod
    def _open(path: str) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the directory was cleaned away under a long-running worker (tmp cleaners)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def release(self) -> None:
        with self._lock:
            fd = self._held.pop()
        os.close(fd)  # the lock goes with the last descriptor of the open file


def _pool_name(pool_cls: Any) -> str:
    """The alias (prefork, threads, solo, gevent...) of the pool Celery was given as an alias, a path or a class."""
    aliases: dict[str, str] = dict(POOL_ALIASES)  # celery's module is untyped
    if isinstance(pool_cls, str):
        target = aliases.get(pool_cls, pool_cls)
    else:
        target = f"{getattr(pool_cls, '__module__', '')}:{getattr(pool_cls, '__qualname__', '')}"
    return next((alias for alias, path in aliases.items() if path == target), target)


@worker_init.connect
def size_delivery_slots(sender: Any = None, **_: Any) -> None:
    """Take the pool and concurrency from the worker itself (`celery worker` run directly may differ from
    the settings); under prefork, make the directory of the children's shared slots before they fork."""
    global _worker_slots, _shared_slots_dir, _slots
    settings = get_settings()  # not the context: no engine made in the main process, which prefork forks
    pool = _pool_name(getattr(sender, "pool_cls", None) or settings.worker_pool)
    concurrency = getattr(sender, "concurrency", None)
    if not isinstance(concurrency, int) or concurrency < 1:  # "auto", resolved later: the settings' number
        concurrency = worker_sizing(settings).concurrency
    layout = WorkerSlots(pool, 1 if pool == "solo" else concurrency)
    count = delivery_slot_count(layout.slots, settings.webhook_delivery_slots)
    with _sender_lock:
        _worker_slots = layout
        _slots = None
        if pool == "prefork" and _shared_slots_dir is None:
            _shared_slots_dir = tempfile.mkdtemp(prefix="postcall-delivery-slots-")
    if layout.slots == 1:
        logger.warning("this worker runs one task at a time (pool=%s): a webhook delivery holds its only slot for "
                       "up to POSTCALL_WEBHOOK_TIMEOUT_SECONDS (%g s) while calls wait; run it with 2 slots or more",
                       pool, settings.webhook_timeout_seconds)
    elif settings.webhook_delivery_slots and settings.webhook_delivery_slots > count:
        logger.warning("POSTCALL_WEBHOOK_DELIVERY_SLOTS=%d is lowered to %d: deliveries leave at least one of the "
                       "worker's %d slots to calls", settings.webhook_delivery_slots, count, layout.slots)
    logger.info("webhook deliveries: at most %d at once of the worker's %d slot(s) (pool=%s)", count, layout.slots,
                pool)


@worker_shutdown.connect
def remove_shared_slots(**_: Any) -> None:
    global _shared_slots_dir
    with _sender_lock:
        directory, _shared_slots_dir = _shared_slots_dir, None
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


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
