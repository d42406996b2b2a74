"""Run `postcall` subcommands as real processes (worker, ingest) with a test environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.config import PROJECT_ROOT

POSTCALL = [sys.executable, "-m", "app.cli"]


def postcall_env(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTCALL_")}
    env.update(
        POSTCALL_DATABASE_URL=database_url,
        POSTCALL_BROKER_URL=broker_url,
        POSTCALL_LLM_PROVIDER="heuristic",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_postcall(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSTCALL, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def worker_process(
    env: dict[str, str], log_path: Path, *, concurrency: int = 4, pool: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker (`postcall worker`) in its own process group; stopped on exit."""
    pool_args = [f"--pool={pool}"] if pool else []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*POSTCALL, "worker", f"--concurrency={concurrency}", *pool_args, "--loglevel=INFO"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
