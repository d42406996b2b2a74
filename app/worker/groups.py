"""The worker process's group commits (app/pipeline/group_commit.py): of claims (`claim_group_for`) and of new
results (`persist_group_for`), made by the first task that needs them, one of each per process (prefork
children each make their own)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.context import get_context
from app.pipeline.run import ClaimGroup, PersistGroup, claim_group_for, persist_group_for
from app.worker.webhooks import worker_slots

# Pools whose tasks run side by side in one process; in the others (prefork, solo) a process runs one call at
# a time, and a group would only make each call wait for company that never comes.
SHARED_PROCESS_POOLS = frozenset({"threads", "gevent"})

_groups: dict[str, Any] = {}
_groups_pid: int | None = None
_lock = threading.Lock()


def _group(name: str, make: Callable[..., Any]) -> Any:
    global _groups_pid
    with _lock:
        if _groups_pid != os.getpid():
            _groups.clear()
            _groups_pid = os.getpid()
        if name not in _groups:
            ctx = get_context()
            settings = ctx.settings
            # The pool Celery runs (`celery worker -P prefork` started directly overrides the settings).
            layout = worker_slots(settings)
            slots = layout.slots if layout.pool in SHARED_PROCESS_POOLS else 1
            # Never more calls in a group than the process runs at once.
            size = min(settings.group_commit_max_calls, slots)
            _groups[name] = make(ctx.session_factory, max_calls=size,
                                 wait_seconds=settings.group_commit_wait_ms / 1000.0, company=calls_running)
        return _groups[name]


_running = 0
_running_lock = threading.Lock()


def calls_running() -> int:
    """How many calls this process is processing now (`running_a_call`): at most that many can be in a group."""
    return _running


@contextmanager
def running_a_call() -> Iterator[None]:
    """Count a call as running in this process for as long as the block runs (the task's `process_call`)."""
    global _running
    with _running_lock:
        _running += 1
    try:
        yield
    finally:
        with _running_lock:
            _running -= 1


def worker_claim_group() -> ClaimGroup | None:
    """This process's group commit of claims, or None where calls are claimed one by one."""
    group: ClaimGroup | None = _group("claim", claim_group_for)
    return group


def worker_persist_group() -> PersistGroup | None:
    """This process's group commit of new results, or None where they are stored one by one."""
    group: PersistGroup | None = _group("persist", persist_group_for)
    return group


def made_groups() -> dict[str, Any]:
    """The group commits this process has made so far, by name ("claim", "persist"): for the benchmarks."""
    with _lock:
        if _groups_pid != os.getpid():
            return {}
        return {name: group for name, group in _groups.items() if group is not None}
