"""`postcall` with a CPU probe around `process_call`, for bench/throughput/run.py's workers.

Each call's thread CPU inside process_call is summed and written, with the call count, to the JSON file
named by POSTCALL_BENCH_PROBE_FILE when the worker stops. Under the threads and solo pools a task runs in
one thread from start to end, so thread CPU is exactly that call's; under gevent other greenlets run on
the same thread while one waits, so the probe is not installed there (the run falls back to the pipeline
CPU measured in its own process).

    python -m bench.throughput.probe worker --pool threads ...
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from typing import Any

PROBE_FILE_VARIABLE = "POSTCALL_BENCH_PROBE_FILE"


def install(path: str) -> None:
    import app.worker.tasks as tasks

    measured = tasks.process_call  # type: ignore[attr-defined]
    lock = threading.Lock()
    totals = {"calls": 0, "cpu_seconds": 0.0}

    def probed(*args: Any, **kwargs: Any) -> Any:
        before = time.thread_time()
        try:
            return measured(*args, **kwargs)
        finally:
            spent = time.thread_time() - before
            with lock:
                totals["calls"] += 1
                totals["cpu_seconds"] += spent

    def write() -> None:
        from dataclasses import asdict

        from app.worker import groups

        # What the process's group commits held (app/worker/groups.py): none where it made none.
        made = {name: asdict(group.stats) for name, group in groups.made_groups().items()}
        with lock, open(path, "w", encoding="utf-8") as out:
            json.dump({**totals, "groups": made}, out)

    tasks.process_call = probed  # type: ignore[attr-defined]
    from celery.signals import worker_shutdown

    worker_shutdown.connect(lambda **_: write(), weak=False)
    atexit.register(write)


def main() -> None:
    path = os.environ.get(PROBE_FILE_VARIABLE)
    gevent = any(arg in ("--pool=gevent", "gevent") for arg in sys.argv) or os.environ.get(
        "POSTCALL_WORKER_POOL") == "gevent"
    if gevent:
        from app.worker.sizing import reexec_under_gevent

        reexec_under_gevent()
    if path:
        install(path)
    from app.cli import main as postcall

    postcall()


if __name__ == "__main__":
    main()
