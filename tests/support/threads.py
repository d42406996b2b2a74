"""Actions run in threads released together, for tests of concurrent entry points."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_at_once(count: int, action: Callable[[], object]) -> None:
    """`action` in `count` threads released together; a thread's failure fails the test."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            action()
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
