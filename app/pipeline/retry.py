"""The retry policy for transient failures (429, 5xx, timeouts), shared by the worker's task retries and
the in-process `postcall process` loop, so both wait the same way."""

from __future__ import annotations

import random


def retry_countdown(retries: int, retry_after: float | None, base: float, cap: float) -> float:
    """Exponential backoff with full jitter up to `cap`, never sooner than the server's Retry-After: a
    server asking for longer than the cap gets its wait (it was cut to the cap, and the retries spent
    themselves against a 429 that said when to come back). A queue's own limit applies on top (a worker
    caps a countdown below the broker's visibility timeout)."""
    backoff = min(cap, base * (2**retries))
    delay = random.uniform(backoff / 2, backoff)
    return max(delay, retry_after) if retry_after is not None else delay
