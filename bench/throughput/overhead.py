"""Celery's own CPU per message: a real worker, with postcall's configuration, running a task that does nothing.

    .venv/bin/python -m bench.throughput.overhead --redis-url redis://127.0.0.1:6394/5 --messages 8000

The messages are queued first; then one worker (threads pool, `--concurrency` slots) is started and its
process CPU (from /proc) is read from the moment it starts consuming until the queue and Redis's `unacked`
hash are empty. What it measures is everything a `process_call` message costs besides `process_call`:
fetching (BRPOP), kombu's unacked bookkeeping, Celery's request and trace, the thread pool hand-off, the
acknowledgement and logging. The Redis database is flushed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from app.config import PROJECT_ROOT
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from bench.throughput.run import cpu_seconds

NOOP_TASK = "bench.noop"
CHILD_VARIABLE = "POSTCALL_BENCH_OVERHEAD_CHILD"
POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 600.0


def run_worker(concurrency: int, loglevel: str) -> None:
    """The worker side, in the child process: postcall's Celery app plus a task that returns at once."""
    from app.logging import configure_logging

    configure_logging(loglevel)
    from app.worker.celery_app import celery_app

    @celery_app.task(name=NOOP_TASK)  # type: ignore[untyped-decorator]
    def noop(value: str) -> str:
        return value

    celery_app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
                            f"--queues={QUEUE_NAME}", "--without-gossip", "--without-mingle"])


def measure(broker_url: str, messages: int, concurrency: int, loglevel: str) -> float:
    """CPU milliseconds the worker spent per message."""
    from kombu import pools

    from app.worker.celery_app import celery_app

    client = redis.Redis.from_url(broker_url)
    client.flushdb()
    with pools.producers[celery_app.connection_for_write(broker_url)].acquire(block=True) as producer:
        for number in range(messages):
            celery_app.send_task(NOOP_TASK, args=[str(number)], producer=producer)
    env = {**os.environ, CHILD_VARIABLE: "1", "POSTCALL_BROKER_URL": broker_url,
           "POSTCALL_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/unused.db", "POSTCALL_LLM_PROVIDER": "heuristic"}
    log = Path(tempfile.mkdtemp(prefix="postcall-overhead-")) / "worker.log"
    argv = [sys.executable, "-m", "bench.throughput.overhead", "--redis-url", broker_url,
            "--concurrency", str(concurrency), "--loglevel", loglevel]
    with log.open("wb") as out:
        worker = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while client.llen(QUEUE_NAME) == messages:  # startup (imports, connecting) is not counted
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the worker did not start consuming; log: " + str(log))
            time.sleep(POLL_SECONDS)
        before = cpu_seconds(worker.pid)
        while client.llen(QUEUE_NAME) or client.hlen(KOMBU_UNACKED_KEY):
            if time.monotonic() > deadline:
                raise SystemExit("the worker did not finish; log: " + str(log))
            time.sleep(POLL_SECONDS)
        return (cpu_seconds(worker.pid) - before) * 1000 / messages
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", required=True, help="a Redis database this run may flush")
    parser.add_argument("--messages", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=315, help="the sizing rule's slots at 125 calls/s")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if os.environ.get(CHILD_VARIABLE):
        run_worker(args.concurrency, args.loglevel)
        return 0
    spent = [measure(args.redis_url, args.messages, args.concurrency, args.loglevel) for _ in range(args.rounds)]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Celery CPU per message, {args.concurrency} threads, --loglevel {args.loglevel}: "
          f"{' / '.join(f'{ms:.2f}' for ms in spent)} ms (median {sorted(spent)[len(spent) // 2]:.2f}); load {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
