"""The worker process's `TimingsRecorder` (app/pipeline/timings.py): made by the first task that needs it,
written out when the worker stops gracefully.

Prefork children each make their own (a thread does not survive a fork) and write theirs out on
`worker_process_shutdown`; threads, gevent and solo pools run tasks in the worker's own process, which
writes its recorder out on `worker_shutdown`, sent once the pool has finished its tasks."""

from __future__ import annotations

import os
import threading
from typing import Any

from celery.signals import worker_process_shutdown, worker_shutdown

from app.context import get_context
from app.pipeline.timings import TimingsRecorder

_recorder: TimingsRecorder | None = None
_recorder_pid: int | None = None
_lock = threading.Lock()


def worker_timings() -> TimingsRecorder:
    """This process's recorder."""
    global _recorder, _recorder_pid
    with _lock:
        if _recorder is None or _recorder_pid != os.getpid():
            ctx = get_context()
            engine = ctx.session_factory.kw["bind"]
            _recorder = TimingsRecorder(engine, batch_size=ctx.settings.timings_batch_size,
                                        flush_seconds=ctx.settings.timings_flush_seconds)
            _recorder_pid = os.getpid()
        return _recorder


def write_out_timings(**_: Any) -> None:
    """Write the timings still queued in this process (a parent that ran no task has none)."""
    global _recorder
    with _lock:
        recorder = _recorder if _recorder_pid == os.getpid() else None
        _recorder = None
    if recorder is not None:
        recorder.close()


# Connected by a call, not Celery's (untyped) decorator, so the function keeps its type for mypy.
worker_shutdown.connect(write_out_timings)
worker_process_shutdown.connect(write_out_timings)
