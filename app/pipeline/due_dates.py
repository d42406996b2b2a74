"""A spoken due phrase as a calendar date, counted from the call's start: enough to sort by.

"within 5 to 7 business days" is the latest day of its range (the promise is kept until then),
"tomorrow between 8 and 12" the next day, "by Friday" the next Friday, "by March 3rd" that date.
Phrases with no day in them ("as soon as it arrives") resolve to None and sort last.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15, "twenty": 20, "thirty": 30,
    "couple": 2, "few": 3,
}  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_COUNT = re.compile(
    r"(?P<n>\d+|" + "|".join(_NUMBER_WORDS) + r")(?:\s*(?:-|–|to|or)\s*(?P<m>\d+|" + "|".join(_NUMBER_WORDS)
    + r"))?\s+(?P<kind>business |working )?(?P<unit>hour|day|week|month)s?\b"
)
_DATE = re.compile(r"\b(?P<month>" + "|".join(_MONTHS) + r")[a-z]*\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b")


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _add_business_days(start: date, days: int) -> date:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def resolve_due(phrase: str | None, start: date) -> date | None:
    """The date `phrase` names, counted from `start` (the call's day), or None."""
    if not phrase:
        return None
    text = phrase.lower()
    if re.search(r"\b(?:today|tonight|this (?:morning|afternoon|evening)|end of (?:the )?(?:business )?day|eod|"
                 r"within the hour|right away|immediately|shortly|as soon as possible|asap)\b", text):
        return start
    if "day after tomorrow" in text:
        return start + timedelta(days=2)
    if "tomorrow" in text or "next business day" in text:
        return start + timedelta(days=1)
    if re.search(r"\bend of (?:the |this )?week\b", text):
        return start + timedelta(days=(4 - start.weekday()) % 7)
    if re.search(r"\bnext week\b", text):
        return start + timedelta(days=7)
    if re.search(r"\b(?:end of (?:the |this )?month|next month)\b", text):
        return start + timedelta(days=30)
    count = _COUNT.search(text)
    if count:
        amount = _number(count.group("m") or count.group("n"))
        unit = count.group("unit")
        if unit == "hour":
            return start + timedelta(hours=amount) if amount < 24 else start + timedelta(days=amount // 24)
        if unit == "day":
            return _add_business_days(start, amount) if count.group("kind") else start + timedelta(days=amount)
        return start + timedelta(days=amount * (7 if unit == "week" else 30))
    when = _DATE.search(text)
    if when:
        month = _MONTHS.index(when.group("month")[:3]) + 1
        try:
            found = date(start.year, month, int(when.group("day")))
        except ValueError:
            return None
        return found if found >= start else date(start.year + 1, month, found.day)
    for offset, name in enumerate(_WEEKDAYS):
        if re.search(rf"\b{name}\b", text):
            return start + timedelta(days=(offset - start.weekday()) % 7 or 7)
    return None
