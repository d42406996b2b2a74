"""Webhook deliveries never hold every slot of a worker: with the default two slots, two receivers that
answer slowly held both and every new call waited for one of them (an integrator probe measured 5-9 s).
Deliveries get at most all slots but one (a quarter of a larger pool), across the children of a prefork
worker too; a worker with one slot still sends, and a put-off delivery is asked for again, never lost."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

import app.worker.webhooks as webhook_tasks
from app.config import PROJECT_ROOT, get_settings
from app.context import reset_context
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.handoff.outbox import install_delivery_notifier
from app.models import Call, CallState, DeliveryStatus, WebhookDelivery
from app.worker.enqueue import enqueue_calls
from tests.handoff.conftest import processed_call, register, store_call
from tests.support.processes import postcall_env, wait_until, worker_process
from tests.support.receiver import Received, Reply, running_receiver
from tests.support.services import redis_url

BROKER_DB = 8
SECRET_KEY = "delivery-slots-probe-secret-key-" + "s" * 16
SLOW_SECONDS = 6.0


@pytest.fixture
def fresh_slots(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The module's per-process state as a new worker process has it; settings read again."""
    monkeypatch.setenv("POSTCALL_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.delenv("POSTCALL_WEBHOOK_DELIVERY_SLOTS", raising=False)
    monkeypatch.delenv("POSTCALL_WORKER_POOL", raising=False)
    for name in ("_slots", "_sender", "_worker_slots", "_shared_slots_dir"):
        monkeypatch.setattr(webhook_tasks, name, None)
    get_settings.cache_clear()
    reset_context()
    yield monkeypatch
    get_settings.cache_clear()
    reset_context()


def _free_slots(slots: webhook_tasks.DeliverySlots) -> int:
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        slots.release()
    return taken


@pytest.mark.parametrize(("worker_slots", "configured", "expected"), [
    (1, None, 1),   # the only slot: deliveries must still go out
    (2, None, 1),   # was 2: both slots
    (3, None, 2),
    (4, None, 2),
    (8, None, 2),
    (12, None, 3),
    (40, None, 10),
    (2, 2, 1),      # a setting of every slot is lowered
    (4, 8, 3),
    (40, 4, 4),
    (1, 4, 1),
])
def test_deliveries_leave_a_slot_to_the_calls(worker_slots: int, configured: int | None, expected: int) -> None:
    assert webhook_tasks.delivery_slot_count(worker_slots, configured) == expected


def test_the_default_two_slot_worker_sends_one_delivery_at_a_time(fresh_slots: pytest.MonkeyPatch) -> None:
    fresh_slots.setenv("POSTCALL_WORKER_CONCURRENCY", "2")
    get_settings.cache_clear()
    reset_context()
    assert _free_slots(webhook_tasks.delivery_slots()) == 1


def test_a_configured_bound_never_takes_every_slot(fresh_slots: pytest.MonkeyPatch) -> None:
    fresh_slots.setenv("POSTCALL_WORKER_CONCURRENCY", "4")
    fresh_slots.setenv("POSTCALL_WEBHOOK_DELIVERY_SLOTS", "8")
    get_settings.cache_clear()
    reset_context()
    assert _free_slots(webhook_tasks.delivery_slots()) == 3


class _FakeWorker:
    """What `worker_init` hands its receivers: the worker, with its pool and concurrency."""

    def __init__(self, pool_cls: Any, concurrency: Any) -> None:
        self.pool_cls = pool_cls
        self.concurrency = concurrency


def test_a_solo_worker_sends_in_its_only_slot(fresh_slots: pytest.MonkeyPatch, sqlite_url: str) -> None:
    """Solo runs one task at a time whatever the concurrency says: a bound of 0 would put every delivery off
    for ever; it gets the slot (the worker warns at start that calls wait meanwhile)."""
    fresh_slots.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    fresh_slots.setenv("POSTCALL_WORKER_CONCURRENCY", "4")
    get_settings.cache_clear()
    reset_context()
    install_delivery_notifier(None)
    put_off: list[int] = []
    fresh_slots.setattr(webhook_tasks, "enqueue_put_off_delivery",
                        lambda delivery_id, **_: put_off.append(delivery_id))
    webhook_tasks.size_delivery_slots(sender=_FakeWorker("solo", 4))
    assert webhook_tasks._worker_slots == webhook_tasks.WorkerSlots("solo", 1)
    factory = make_session_factory(create_db_engine(sqlite_url))
    with running_receiver() as receiver:
        register(factory, receiver.url)
        call_id = processed_call(factory, "solo-1")
        with unit_of_work(factory) as session:
            delivery_id = session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.call_id == call_id)).one()
        assert webhook_tasks.deliver_webhook_task(delivery_id) == "succeeded"
        assert len(receiver.accepted_requests()) == 1
    assert put_off == []


# A process standing in for a prefork child sending a delivery: it takes a slot, says whether it got one,
# and holds it until its stdin closes (or it is killed).
HOLD_A_SLOT = """
import sys
from app.worker.webhooks import SharedDeliverySlots
slots = SharedDeliverySlots(sys.argv[1], int(sys.argv[2]))
print(slots.acquire(blocking=False), flush=True)
sys.stdin.read()
slots.release()
"""


def _holder(directory: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLD_A_SLOT, directory, str(count)], cwd=PROJECT_ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_prefork_children_share_the_bound_and_a_killed_child_gives_its_slot_back(
    fresh_slots: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Under prefork every child runs one task: a semaphore per child bounded nothing, and four children
    could all be sending. The worker makes the shared slots before it forks; each child finds them."""
    fresh_slots.setenv("POSTCALL_WORKER_CONCURRENCY", "4")
    get_settings.cache_clear()
    reset_context()
    webhook_tasks.size_delivery_slots(sender=_FakeWorker("prefork", 4))
    directory = webhook_tasks._shared_slots_dir
    holders: list[subprocess.Popen[str]] = []
    try:
        assert directory is not None and webhook_tasks._worker_slots == webhook_tasks.WorkerSlots("prefork", 4)
        mine = webhook_tasks.delivery_slots()
        assert isinstance(mine, webhook_tasks.SharedDeliverySlots) and len(mine.paths) == 2
        holders = [_holder(directory, 2) for _ in range(2)]
        assert [holder.stdout.readline().strip() for holder in holders if holder.stdout] == ["True", "True"]
        assert not mine.acquire(blocking=False)  # two children send: a third waits its turn
        holders[0].kill()  # killed mid-send: the kernel drops its lock
        holders[0].wait(10)
        assert _free_slots(mine) == 1
        assert holders[1].stdin is not None
        holders[1].stdin.close()  # done sending
        holders[1].wait(10)
        assert _free_slots(mine) == 2
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.kill()
                holder.wait(10)
            for stream in (holder.stdin, holder.stdout):
                if stream is not None:
                    stream.close()
        webhook_tasks.remove_shared_slots()
    assert not Path(directory).exists()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_slow_receivers_do_not_hold_up_new_calls(
    pool: str, fresh_slots: pytest.MonkeyPatch, postgres_url: str, tmp_path: Path
) -> None:
    """A real worker with two slots (two threads, or two prefork children), two endpoints that answer after
    6 s: a call enqueued while they are being sent to is processed at once, and both deliveries still arrive."""
    broker = redis_url(BROKER_DB)
    redis.Redis.from_url(broker).flushdb()
    get_settings.cache_clear()
    engine = create_db_engine(postgres_url)
    factory = make_session_factory(engine)
    env = postcall_env(postgres_url, broker, POSTCALL_SECRET_KEY=SECRET_KEY, POSTCALL_WEBHOOK_ALLOW_PRIVATE="true",
                       POSTCALL_WEBHOOK_SWEEP_EVERY_SECONDS="1")

    before, after = store_call(factory, "slow-before"), store_call(factory, "slow-after")

    def slow(request: Received, _seen: int) -> Reply:
        # Slow for the first call's events only: the test waits for every delivery at the end.
        return Reply(delay=SLOW_SECONDS if request.call_id == before else 0.0)

    log = tmp_path / "worker.log"
    try:
        with running_receiver(slow) as first, running_receiver(slow) as second:
            register(factory, first.url)
            register(factory, second.url)
            with worker_process(env, log, concurrency=2, pool=pool):
                enqueue_calls([before], broker_url=broker)
                # The first call's call.processed is being sent to a slow receiver.
                sending = wait_until(lambda: len(first.received) + len(second.received) >= 1, timeout=60)
                assert sending, log.read_text()[-3000:]
                enqueued_at = time.monotonic()
                enqueue_calls([after], broker_url=broker)

                def processed() -> bool:
                    with unit_of_work(factory) as session:
                        return session.get(Call, after).state in {CallState.ready_for_review,
                                                                   CallState.needs_attention}

                assert wait_until(processed, timeout=SLOW_SECONDS * 3), log.read_text()[-3000:]
                waited = time.monotonic() - enqueued_at
                assert waited < SLOW_SECONDS / 2, f"a new call waited {waited:.1f} s for the slow receivers"

                def all_sent() -> bool:
                    with unit_of_work(factory) as session:
                        statuses = list(session.scalars(select(WebhookDelivery.status)))
                    return len(statuses) == 4 and set(statuses) == {DeliveryStatus.succeeded}

                # Put off, never lost: every delivery of both calls reaches both receivers.
                assert wait_until(all_sent, timeout=90), log.read_text()[-3000:]
            assert {r.call_id for r, _ in first.accepted} == {before, after}
            assert {r.call_id for r, _ in second.accepted} == {before, after}
        assert "put off" in log.read_text()
    finally:
        engine.dispose()
