"""Resolve a spoken due phrase ("by Friday", "within 5 business days") to a calendar date.

Relative to the call's start, in the given time zone. A phrase this module cannot read with certainty
resolves to None: a downstream system must never receive a guessed date as a commitment.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = {name: index for index, name in enumerate(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
)}
WEEKDAY_ABBREVIATIONS = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4,
                         "sat": 5, "sun": 6}
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15, "twenty": 20, "thirty": 30,
    "a couple of": 2, "a couple": 2, "couple of": 2,
}
# Beyond this a phrase is more likely a misreading than a commitment.
MAX_OFFSET_DAYS = 366

_FILLER = re.compile(r"^(?:by|on|before|until|till|no later than|at the latest by|due|for)\s+")
_NUMBER = r"(\d{1,3}|" + "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True)) + r")"
_WITHIN = re.compile(
    r"^(?:in|within|in the next|within the next|over the next)\s+" + _NUMBER
    + r"\s+(business\s+|working\s+)?(hour|hours|day|days|week|weeks)$"
)
_NEXT_WEEKDAY = re.compile(r"^(this|next|coming|this coming)\s+(\w+)$")


def _local_start(call_start: datetime, tz: str) -> datetime | None:
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    if call_start.tzinfo is None:
        # A naive start is taken as UTC, the way the database stores every time.
        call_start = call_start.replace(tzinfo=ZoneInfo("UTC"))
    return call_start.astimezone(zone)


def _normalize(phrase: str) -> str:
    text = re.sub(r"[^\w\s']", " ", phrase.lower())
    text = re.sub(r"\s+", " ", text).strip()
    previous = None
    while previous != text:
        previous = text
        text = _FILLER.sub("", text)
    return text.removeprefix("the ").strip()


def _add_business_days(start: date, days: int) -> date:
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def _weekday(word: str) -> int | None:
    if word in WEEKDAYS:
        return WEEKDAYS[word]
    return WEEKDAY_ABBREVIATIONS.get(word)


def _next_weekday(start: date, weekday: int) -> date:
    ahead = (weekday - start.weekday()) % 7
    # "by Friday" said on a Friday means the next one; the same day would be "today".
    return start + timedelta(days=ahead or 7)


def _end_of_month(start: date) -> date:
    first_of_next = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first_of_next - timedelta(days=1)


def resolve_due_date(phrase: str, call_start: datetime, tz: str = "UTC") -> date | None:
    """The date `phrase` names, counted from the call's start day in `tz`; None when not determinable."""
    local_start = _local_start(call_start, tz)
    if local_start is None or not phrase:
        return None
    start = local_start.date()
    text = _normalize(phrase)
    if text in {"today", "end of day", "end of the day", "end of today", "eod", "tonight", "close of business",
                "cob"}:
        return start
    if text in {"tomorrow", "tomorrow morning", "tomorrow afternoon", "end of day tomorrow"}:
        return start + timedelta(days=1)
    if text in {"end of week", "end of the week", "end of this week", "this week"}:
        # Said on a weekend, "the end of the week" could be today or next Friday: not determinable.
        return start + timedelta(days=4 - start.weekday()) if start.weekday() <= 4 else None
    if text in {"end of month", "end of the month", "end of this month", "this month"}:
        return _end_of_month(start)
    weekday = _weekday(text)
    if weekday is not None:
        return _next_weekday(start, weekday)
    match = _NEXT_WEEKDAY.match(text)
    if match:
        weekday = _weekday(match.group(2))
        if weekday is None:
            return None
        # "next Friday" is ambiguous (this week's or the following); only "this"/"coming" are certain.
        if match.group(1) == "next":
            return None
        return _next_weekday(start, weekday)
    match = _WITHIN.match(text)
    if match:
        raw, business, unit = match.groups()
        count = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
        if count <= 0:
            return None
        if unit.startswith("hour"):
            if business or count > MAX_OFFSET_DAYS * 24:
                return None
            return (local_start + timedelta(hours=count)).date()
        if unit.startswith("week"):
            if business:
                return _add_business_days(start, count * 5)
            days = count * 7
        elif business:
            return _add_business_days(start, count) if count <= MAX_OFFSET_DAYS else None
        else:
            days = count
        return start + timedelta(days=days) if days <= MAX_OFFSET_DAYS else None
    return None
