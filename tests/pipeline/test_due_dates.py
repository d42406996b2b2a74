from __future__ import annotations

from datetime import date

import pytest

from app.pipeline.due_dates import resolve_due

THURSDAY = date(2026, 3, 5)


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("today", THURSDAY),
        ("within the hour", THURSDAY),
        ("tomorrow between 8 and 12", date(2026, 3, 6)),
        ("within 5 to 7 business days", date(2026, 3, 16)),  # the latest day of the range, weekends skipped
        ("within 3 business days", date(2026, 3, 10)),
        ("in 24 hours", date(2026, 3, 6)),
        ("by Friday", date(2026, 3, 6)),
        ("on Monday morning", date(2026, 3, 9)),
        ("by March 3rd", date(2027, 3, 3)),  # already past this year: the next one
        ("by the end of the week", date(2026, 3, 6)),
        ("next week", date(2026, 3, 12)),
        ("as soon as it arrives", None),
        (None, None),
    ],
)
def test_resolve_due(phrase: str | None, expected: date | None) -> None:
    assert resolve_due(phrase, THURSDAY) == expected
