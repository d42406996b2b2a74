"""The retry wait: exponential backoff with jitter, never sooner than a server's Retry-After."""

from __future__ import annotations

from app.pipeline.retry import retry_countdown


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    waits = [retry_countdown(retries, None, base=2.0, cap=30.0) for retries in range(8) for _ in range(50)]
    assert all(0 < wait <= 30.0 for wait in waits)
    assert max(retry_countdown(1, None, base=2.0, cap=30.0) for _ in range(50)) <= 4.0


def test_a_retry_after_longer_than_the_cap_is_waited_in_full() -> None:
    # A 429 saying "come back in 600 s" was retried every 300 s (the cap), spending the retries against it.
    assert retry_countdown(0, 600.0, base=2.0, cap=300.0) == 600.0
    assert retry_countdown(5, 12.0, base=2.0, cap=300.0) >= 12.0


def test_a_retry_after_is_waited_at_most_an_hour_and_never_forever() -> None:
    assert retry_countdown(0, 86_400.0, base=2.0, cap=300.0) == 3600.0
    for unwaitable in (float("inf"), float("nan")):
        assert 0 < retry_countdown(0, unwaitable, base=2.0, cap=300.0) <= 2.0
