"""The retry policy for transient failures (429, 5xx, timeouts), shared by the worker's task retries and
the in-process `postcall process` loop, so both wait the same way."""

from __future__ import annotations

import math
import random

# The longest Retry-After waited in full: a day asked for (or 1e10 s) held `postcall process` for as long.
MAX_RETRY_AFTER_SECONDS = 3600.0


def retry_countdown(retries: int, retry_after: float | None, base: float, cap: float) -> float:
    """Exponential backoff with full jitter up to `cap`, never sooner than the server's Retry-After: a
    server asking for longer than the cap gets its wait (it was cut to the cap, and the retries spent
    themselves against a 429 that said when to come back). A queue's own limit applies on top (a worker
    caps a countdown below the broker's visibility timeout)."""
    backoff = min(cap, base * (2**retries))
    delay = random.uniform(backoff / 2, backoff)
    if retry_after is None or not math.isfinite(retry_after):
        return delay  # no wait asked, or none that can be waited ("inf" parses to one)
    return max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
