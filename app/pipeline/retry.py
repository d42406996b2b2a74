"""The retry policy for transient failures (429, 5xx, timeouts), shared by the worker's task retries and
the in-process `postcall process` loop, so both wait the same way."""

from __future__ import annotations

import random


def retry_countdown(retries: int, retry_after: float | None, base: float, cap: float) -> float:
    """Exponential backoff with full jitter, never sooner than the server's Retry-After."""
    backoff = min(cap, base * (2**retries))
    delay = random.uniform(backoff / 2, backoff)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)
