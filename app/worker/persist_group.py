"""The worker process's group commit of new results (`persist_group_for`, app/pipeline/group_commit.py): made by
the first task that needs it, one per process (prefork children each make their own)."""

from __future__ import annotations

import os
import threading

from app.context import get_context
from app.pipeline.run import PersistGroup, persist_group_for

# Pools whose tasks run side by side in one process; in the others (prefork, solo) a process runs one call at
# a time, and a group would only make each call wait for company that never comes.
SHARED_PROCESS_POOLS = frozenset({"threads", "gevent"})

_group: PersistGroup | None = None
_group_pid: int | None = None
_lock = threading.Lock()


def worker_persist_group() -> PersistGroup | None:
    """This process's group commit, or None where calls are stored one by one."""
    global _group, _group_pid
    with _lock:
        if _group_pid != os.getpid():
            ctx = get_context()
            settings = ctx.settings
            slots = settings.worker_concurrency if settings.worker_pool in SHARED_PROCESS_POOLS else 1
            # Never more calls in a group than the process runs at once (unknown: the setting's size).
            size = min(settings.group_commit_max_calls, slots or settings.group_commit_max_calls)
            _group = persist_group_for(ctx.session_factory, max_calls=size,
                                       wait_seconds=settings.group_commit_wait_ms / 1000.0)
            _group_pid = os.getpid()
        return _group
