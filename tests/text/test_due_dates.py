"""Due phrases resolve to the date they name, relative to the call's start in the tenant's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.text.due_dates import (
    add_business_days,
    add_months,
    normalize,
    numeric_date_parts,
    resolve_due,
    resolve_due_date,
)
from bench.due_dates.run import load_cases, postcall_resolver, score

# Wednesday 2026-03-11, 10:30 UTC.
WEDNESDAY = datetime(2026, 3, 11, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("within 5 business days", date(2026, 3, 18)),
        ("within twenty one days", date(2026, 4, 1)),
        ("in sixty days", date(2026, 5, 10)),
        ("by Friday", date(2026, 3, 13)),
        ("next Monday", date(2026, 3, 16)),
        ("end of the month", date(2026, 3, 31)),
        ("by the end of the week", date(2026, 3, 13)),
        ("tomorrow", date(2026, 3, 12)),
        ("within 3 to 5 business days", date(2026, 3, 18)),
        ("April 17th", date(2026, 4, 17)),
        ("February 1", date(2027, 2, 1)),
    ],
)
def test_determinable_phrases_resolve(phrase: str, expected: date) -> None:
    assert resolve_due_date(phrase, WEDNESDAY) == expected


@pytest.mark.parametrize(
    "phrase",
    ["as soon as possible", "in a few days", "before your next bill", "next Friday", "this Tuesday",
     "at 10 o'clock", "soon", "", "Friday, April 14"],
)
def test_undeterminable_phrases_are_none_never_a_guess(phrase: str) -> None:
    assert resolve_due_date(phrase, WEDNESDAY) is None


def test_the_tenant_time_zone_decides_the_day() -> None:
    # 02:00 UTC on Saturday is still Friday evening in Los Angeles.
    start = datetime(2026, 1, 31, 2, 0, tzinfo=UTC)
    assert resolve_due_date("today", start, "UTC") == date(2026, 1, 31)
    assert resolve_due_date("today", start, "America/Los_Angeles") == date(2026, 1, 30)
    assert resolve_due_date("by Monday", start, "America/Los_Angeles") == date(2026, 2, 2)


def test_a_said_time_gives_the_moment_in_utc() -> None:
    resolved = resolve_due("tomorrow at 3 pm", datetime(2026, 6, 1, 13, 0, tzinfo=UTC), "America/New_York")
    assert resolved is not None
    assert resolved.date == date(2026, 6, 2)
    assert resolved.at == datetime(2026, 6, 2, 19, 0, tzinfo=UTC)
    assert resolve_due("within 5 business days", WEDNESDAY) is not None
    assert resolve_due("within 5 business days", WEDNESDAY).at is None  # type: ignore[union-attr]


def test_unknown_time_zone_resolves_nothing() -> None:
    assert resolve_due_date("tomorrow", WEDNESDAY, "Mars/Olympus") is None


def test_spoken_numbers_and_calendar_helpers() -> None:
    assert normalize("Within a hundred and twenty days") == "within 120 days"
    assert normalize("thirty - five hours") == "35 hours"
    assert add_business_days(date(2026, 3, 13), 1) == date(2026, 3, 16)  # Friday -> Monday
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)


def test_labeled_set_meets_the_bar() -> None:
    cases = load_cases()
    assert len(cases) >= 150
    result = score(cases, postcall_resolver)
    assert result.accuracy >= 0.95
    assert result.invented == 0


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        # Day first, as "the 17th of April" already resolved.
        ("17 April", date(2026, 4, 17)),
        ("by 20 May", date(2026, 5, 20)),
        ("on the 20th May", date(2026, 5, 20)),
        ("20 March", date(2026, 3, 20)),
        ("10 March", date(2027, 3, 10)),  # passed the day before the call: next year's
        ("20 May 2026", date(2026, 5, 20)),
        ("Friday 13 March", date(2026, 3, 13)),
        ("20 May at 3 pm", date(2026, 5, 20)),
    ],
)
def test_a_date_written_day_first_resolves_as_month_first(phrase: str, expected: date) -> None:
    assert resolve_due_date(phrase, WEDNESDAY) == expected


@pytest.mark.parametrize("phrase", ["31 June", "20 May 2024", "Thursday 13 March", "20 Maybe"])
def test_a_day_first_date_that_names_no_date_or_the_wrong_weekday_is_none(phrase: str) -> None:
    assert resolve_due_date(phrase, WEDNESDAY) is None


@pytest.mark.parametrize(
    ("phrase", "at"),
    [
        ("within the hour", datetime(2026, 3, 11, 11, 30, tzinfo=UTC)),
        ("within the next hour", datetime(2026, 3, 11, 11, 30, tzinfo=UTC)),
        ("in an hour", datetime(2026, 3, 11, 11, 30, tzinfo=UTC)),
        ("in the next 60 minutes", datetime(2026, 3, 11, 11, 30, tzinfo=UTC)),
        ("within 2 hours", datetime(2026, 3, 11, 12, 30, tzinfo=UTC)),
    ],
)
def test_an_hour_however_said_is_the_same_moment(phrase: str, at: datetime) -> None:
    resolved = resolve_due(phrase, WEDNESDAY)
    assert resolved is not None
    assert resolved.at == at


@pytest.mark.parametrize(("text", "parts"), [
    ("11/15", (11, 15, None)), ("11/19/17", (11, 19, 2017)), ("8/19/2020", (8, 19, 2020)),
    ("2020-08-19", (8, 19, 2020)), ("14/3", None), ("11/32", None), ("1/2/345", None), ("Nov 15", None),
])
def test_numeric_dates_are_read_month_first_or_iso(text: str, parts: tuple[int, int, int | None] | None) -> None:
    assert numeric_date_parts(text) == parts
