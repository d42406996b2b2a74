"""The due-date resolver: certain phrases resolve relative to the call's start, anything else is None."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.text.due_dates import resolve_due_date

# Wednesday 2026-03-04, 15:00 UTC.
WEDNESDAY = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("today", date(2026, 3, 4)),
        ("by end of day", date(2026, 3, 4)),
        ("tomorrow", date(2026, 3, 5)),
        ("by tomorrow", date(2026, 3, 5)),
        ("Friday", date(2026, 3, 6)),
        ("by Friday", date(2026, 3, 6)),
        ("on Monday", date(2026, 3, 9)),
        ("Wednesday", date(2026, 3, 11)),  # said on a Wednesday: the next one
        ("this Friday", date(2026, 3, 6)),
        ("within 5 business days", date(2026, 3, 11)),
        ("in 3 business days", date(2026, 3, 9)),
        ("within five business days", date(2026, 3, 11)),
        ("within 2 days", date(2026, 3, 6)),
        ("in two weeks", date(2026, 3, 18)),
        ("within a week", date(2026, 3, 11)),
        ("in 10 working days", date(2026, 3, 18)),
        ("by the end of the week", date(2026, 3, 6)),
        ("end of the month", date(2026, 3, 31)),
        ("by the end of this month", date(2026, 3, 31)),
        ("within 24 hours", date(2026, 3, 5)),
        ("in 2 hours", date(2026, 3, 4)),
        ("within 10 hours", date(2026, 3, 5)),  # 15:00 + 10 h is past midnight
    ],
)
def test_resolves_certain_phrases(phrase: str, expected: date) -> None:
    assert resolve_due_date(phrase, WEDNESDAY) == expected


@pytest.mark.parametrize(
    "phrase",
    ["", "soon", "as soon as possible", "next Friday", "later", "in a few days", "shortly", "next time",
     "within 0 days", "in 900 days", "within 4 business hours", "at some point this year"],
)
def test_anything_uncertain_is_none(phrase: str) -> None:
    assert resolve_due_date(phrase, WEDNESDAY) is None


def test_the_start_day_is_taken_in_the_given_time_zone() -> None:
    late_utc = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # still Wednesday evening in New York
    assert resolve_due_date("tomorrow", late_utc) == date(2026, 3, 6)
    assert resolve_due_date("tomorrow", late_utc, tz="America/New_York") == date(2026, 3, 5)


def test_end_of_february_and_weekend_end_of_week() -> None:
    assert resolve_due_date("end of the month", datetime(2028, 2, 10, tzinfo=UTC)) == date(2028, 2, 29)
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert resolve_due_date("end of the week", saturday) is None


def test_unknown_time_zone_is_none_not_a_guess() -> None:
    assert resolve_due_date("tomorrow", WEDNESDAY, tz="Mars/Olympus") is None
