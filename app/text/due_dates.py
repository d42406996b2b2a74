"""Resolve a spoken due phrase ("by Friday", "within 5 business days") to a calendar date.

The phrase is read relative to the call's start, in the tenant's time zone. A phrase is resolved only
when every word of it is understood and it names one date; anything else (vague: "in a few days",
"as soon as possible"; tied to an unknown event: "before your next bill"; ambiguous: "next Friday" said
on a Monday, "at 10 o'clock" with no am/pm for a time) is None. A guessed date would be worse than none:
downstream systems treat it as a commitment.

Conventions (docs/data-model.md lists them for analysts):
- a window resolves to its end: "within 3 to 5 business days" is the fifth business day after the call;
- business days are Monday to Friday (no public holidays); "end of the week" and "next week" mean that
  week's Friday; "this weekend" its Sunday; "end of the month" and "this month" its last day;
- a bare weekday ("by Friday", "on Monday") is the first one after the call's day; "this Friday" is this
  week's (None once it has passed); "next Friday" is next week's, and None when said earlier in the same
  week (Monday to Thursday), where listeners disagree whether it means this week's or next week's;
- a bare clock time ("by 5 pm") is its next occurrence after the call's start; a calendar date without a
  year ("April 17", "17 April", "the 29th") is its next occurrence on or after the call's day;
- a date more than a year from the call is None.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.text.lexicon import MONTH_NUMBERS, SMALL_NUMBERS, TENS, WEEKDAY_NAMES

WEEKDAYS = WEEKDAY_NAMES
FRIDAY = 4
SUNDAY = 6
MONTHS = MONTH_NUMBERS
# A commitment made on a call falls within a year; beyond that ("in 44 months") a phrase is more likely
# a misreading or a plan than a due date.
MAX_OFFSET_DAYS = 366


@dataclass(frozen=True)
class DueResolution:
    """The due date (in the tenant's time zone) and, when a time of day was said, the moment (UTC)."""

    date: date
    at: datetime | None = None


def resolve_due_date(phrase: str, call_start: datetime, tz: str = "UTC") -> date | None:
    """The date `phrase` names, said on a call that started at `call_start`; None when not determinable."""
    resolved = resolve_due(phrase, call_start, tz)
    return resolved.date if resolved else None


def resolve_due(phrase: str, call_start: datetime, tz: str = "UTC") -> DueResolution | None:
    """Like resolve_due_date, plus the moment (`at`, UTC) when the phrase says a time of day."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    start = call_start if call_start.tzinfo else call_start.replace(tzinfo=UTC)
    local = start.astimezone(zone)
    text = normalize(phrase)
    if not text:
        return None
    for rule in _RULES:
        match = rule.pattern.fullmatch(text)
        if match is not None:
            result = rule.resolve(match, local)
            if result is None:
                return None
            due_date, due_local = result
            if abs((due_date - local.date()).days) > MAX_OFFSET_DAYS:
                return None
            return DueResolution(due_date, due_local.astimezone(UTC) if due_local else None)
    return None


# --- normalization ---------------------------------------------------------------------------------

_MERIDIEM = re.compile(r"\b([ap])\.?\s?m\b\.?")
_HYPHEN = re.compile(r"\s*[-–]\s*")
_PUNCT = re.compile(r"[^\w:/'\s]")
_LEADING = re.compile(
    r"^(?:(?:by|before|until|till|til|no later than|on|for|due|at the latest by|sometime|some time)\s+)+"
)
_APPROX = re.compile(r"\b(?:about|around|roughly|approximately|approx|just|the next|next)\s+(?=\d)")


def normalize(phrase: str) -> str:
    """Lower case, "p.m." as "pm", spoken numbers as digits, leading "by"/"on"/... and approximations off."""
    text = phrase.lower().strip()
    text = _MERIDIEM.sub(lambda m: f" {m.group(1)}m", text)
    text = _HYPHEN.sub(" - ", text)
    text = _PUNCT.sub(lambda m: " - " if m.group(0) == "-" else " ", text)
    text = " ".join(_spoken_numbers(text.split()))
    text = _LEADING.sub("", text)
    text = _APPROX.sub("", text)
    # "twenty - four" became "24" above; a hyphen left between two numbers is a range.
    return " ".join(text.split())


def _spoken_numbers(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        value, used = _read_number(tokens, i)
        if used:
            out.append(str(value))
            i += used
        else:
            out.append(tokens[i])
            i += 1
    return out


def _read_number(tokens: list[str], i: int) -> tuple[int, int]:
    """A spoken cardinal starting at tokens[i]: ("twenty", "-", "one") -> (21, 3); (0, 0) if none."""
    value = 0
    used = 0
    n = len(tokens)
    # "a hundred", "one hundred (and) ..."
    if i + 1 < n and tokens[i + 1] == "hundred" and (tokens[i] in {"a", "one"} or tokens[i] in SMALL_NUMBERS):
        value = 100 * (1 if tokens[i] in {"a", "one"} else SMALL_NUMBERS[tokens[i]])
        used = 2
        if i + used < n and tokens[i + used] == "and" and i + used + 1 < n and _is_number_word(tokens[i + used + 1]):
            used += 1
        rest, rest_used = _read_tens(tokens, i + used)
        return value + rest, used + rest_used
    return _read_tens(tokens, i)


def _is_number_word(token: str) -> bool:
    return token in SMALL_NUMBERS or token in TENS


def _read_tens(tokens: list[str], i: int) -> tuple[int, int]:
    if i >= len(tokens):
        return 0, 0
    token = tokens[i]
    if token in TENS:
        value = TENS[token]
        # "twenty one", "twenty - one"
        if i + 1 < len(tokens) and tokens[i + 1] in SMALL_NUMBERS and 0 < SMALL_NUMBERS[tokens[i + 1]] < 10:
            return value + SMALL_NUMBERS[tokens[i + 1]], 2
        if (
            i + 2 < len(tokens)
            and tokens[i + 1] == "-"
            and tokens[i + 2] in SMALL_NUMBERS
            and 0 < SMALL_NUMBERS[tokens[i + 2]] < 10
        ):
            return value + SMALL_NUMBERS[tokens[i + 2]], 3
        return value, 1
    if token in SMALL_NUMBERS:
        return SMALL_NUMBERS[token], 1
    return 0, 0


# --- calendar arithmetic ---------------------------------------------------------------------------


def add_business_days(day: date, count: int) -> date:
    """`count` Monday-to-Friday days after `day` (no public holidays)."""
    current = day
    remaining = count
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_month(day: date) -> date:
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def _this_weeks(day: date, weekday: int) -> date:
    return day + timedelta(days=weekday - day.weekday())


# --- rules -----------------------------------------------------------------------------------------

Resolved = tuple[date, datetime | None] | None

_N = r"(\d{1,4})"
_UNIT = r"(business |working |calendar )?(minute|min|hour|hr|day|week|fortnight|month|year)s?"
_WEEKDAY = "(" + "|".join(WEEKDAYS) + ")"
_PART = r"(?: (?:morning|afternoon|evening|night))?"
_MONTH = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + ")"
_ORD = r"(\d{1,2})(?:st|nd|rd|th)?"
_CLOCK = r"(\d{1,2}(?::\d{2})?(?: ?[ap]m)?|\d{1,2}(?::\d{2})? o'?clock|noon|midday|midnight)"


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    resolve: Callable[[re.Match[str], datetime], Resolved]


def _duration(match: re.Match[str], local: datetime) -> Resolved:
    low, high, kind, unit = match.group(1), match.group(2), match.group(3), match.group(4)
    amount = int(high) if high else int(low)
    if amount == 0 or (high and int(high) < int(low)):
        return None  # "within 0 days" names nothing; "5 to 3 days" is a misreading
    return _after(local, amount, kind, unit)


def _one_unit(match: re.Match[str], local: datetime) -> Resolved:
    return _after(local, 1, match.group(1), match.group(2))


def _after(local: datetime, amount: int, kind: str | None, unit: str) -> Resolved:
    business = kind is not None and kind.strip() in {"business", "working"}
    if unit in {"minute", "min", "hour", "hr"}:
        if business:
            return None
        delta = timedelta(minutes=amount) if unit in {"minute", "min"} else timedelta(hours=amount)
        moment = local + delta
        return moment.date(), moment
    if unit == "day":
        if business:
            return add_business_days(local.date(), amount), None
        return local.date() + timedelta(days=amount), None
    if business:
        return None
    if unit in {"week", "fortnight"}:
        return local.date() + timedelta(weeks=amount * (2 if unit == "fortnight" else 1)), None
    if unit == "month":
        return add_months(local.date(), amount), None
    return add_months(local.date(), 12 * amount), None


def _half_hour(match: re.Match[str], local: datetime) -> Resolved:
    moment = local + timedelta(minutes=30)
    return moment.date(), moment


def _within_the(match: re.Match[str], local: datetime) -> Resolved:
    """"within the hour" is an hour; "within the day/week/month" ends with it; "the next day/week/month" is one."""
    unit = match.group(2)
    today = local.date()
    if unit == "hour":
        moment = local + timedelta(hours=1)
        return moment.date(), moment
    if match.group(1):
        return _after(local, 1, None, unit)
    if unit == "day":
        return today, None
    if unit == "week":
        return _end_of_week(today)
    return end_of_month(today), None


def _end_of_week(today: date) -> Resolved:
    if today.weekday() > FRIDAY:
        return None  # said at the weekend: this week's working end has passed; which Friday is meant?
    return _this_weeks(today, FRIDAY), None


def _week(match: re.Match[str], local: datetime) -> Resolved:
    which = match.group(1)
    today = local.date()
    if which == "next":
        return _this_weeks(today, FRIDAY) + timedelta(weeks=1), None
    return _end_of_week(today)


def _weekend(match: re.Match[str], local: datetime) -> Resolved:
    return _this_weeks(local.date(), SUNDAY), None


def _month(match: re.Match[str], local: datetime) -> Resolved:
    today = local.date()
    if match.group(1) == "next":
        return end_of_month(add_months(today.replace(day=1), 1)), None
    return end_of_month(today), None


def _next_business_day(match: re.Match[str], local: datetime) -> Resolved:
    return add_business_days(local.date(), 1), None


def _year(match: re.Match[str], local: datetime) -> Resolved:
    today = local.date()
    year = today.year + (1 if match.group(1) == "next" else 0)
    return date(year, 12, 31), None


# A day expression, then optionally a time: "tomorrow at 3 pm", "friday morning", "april 17 by noon".
_DAY = (
    r"(today|tonight|this (?:morning|afternoon|evening)|later today|later this (?:morning|afternoon|evening)|"
    r"(?:the )?end of (?:the )?(?:business |working )?day|(?:the )?close of (?:business|play)|eod|cob|"
    r"tomorrow" + _PART + r"|(?:the )?day after tomorrow|first thing tomorrow(?: morning)?|"
    r"first thing in the morning|first thing|"
    r"(?:(?:this coming|this|next|coming|first thing) )?" + _WEEKDAY + _PART + r"(?:,? (?:the )?" + _ORD
    + r"|,? " + _MONTH + r" " + _ORD + r")?|"
    r"(?:" + _WEEKDAY + r",? )?(?:" + _MONTH + r" (?:the )?" + _ORD + r"|(?:the )?" + _ORD + r" (?:of )?" + _MONTH
    + r"|the " + _ORD + r"|(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?)(?:,? (\d{4}))?)"
)
_TIME_PREP = r"(?:at|by|before|until|till|around|no later than)"


def _day_then_time(match: re.Match[str], local: datetime) -> Resolved:
    day = _resolve_day(match.group("day"), local)
    if day is None:
        return None
    clock = match.group("clock")
    if clock is None:
        return day, None
    hm = _parse_clock(clock, day_word=match.group("day"))
    return day, (datetime.combine(day, time(*hm), tzinfo=local.tzinfo) if hm else None)


def _time_then_day(match: re.Match[str], local: datetime) -> Resolved:
    clock = match.group("clock")
    day_text = match.group("day")
    after = match.group("prep") == "after"
    if day_text is not None:
        day = _resolve_day(day_text, local)
        if day is None:
            return None
        hm = _parse_clock(clock, day_word=day_text)
        if after or hm is None:
            return day, None
        return day, datetime.combine(day, time(*hm), tzinfo=local.tzinfo)
    hm = _parse_clock(clock, day_word=None)
    if hm is None:
        return None
    midnight = hm == (0, 0)
    moment = _next_occurrence(local, hm, midnight=midnight)
    if after:
        return moment.date(), None
    if midnight:
        # "by midnight" ends the day it is said on.
        return (moment - timedelta(minutes=1)).date(), moment
    return moment.date(), moment


def _range(match: re.Match[str], local: datetime) -> Resolved:
    day_text = match.group("day") or match.group("day2")
    end_clock = match.group("end")
    start_clock = match.group("begin")
    if day_text is not None:
        day = _resolve_day(day_text, local)
        if day is None:
            return None
        hm = _parse_clock(end_clock, day_word=day_text) or _range_end(start_clock, end_clock)
        return day, (datetime.combine(day, time(*hm), tzinfo=local.tzinfo) if hm else None)
    hm = _parse_clock(end_clock, day_word=None) or _range_end(start_clock, end_clock)
    if hm is None:
        return None
    moment = _next_occurrence(local, hm)
    return moment.date(), moment


def _range_end(begin: str, end: str) -> tuple[int, int] | None:
    """"from 9 am to 12": the end takes the start's am/pm when it is still later ("9 am to 12" -> 12:00)."""
    first = _parse_clock(begin, day_word=None)
    if first is None or re.search(r"[ap]m|noon|midnight", end):
        return None
    hm = _clock_parts(end)
    if hm is None:
        return None
    hour, minute = hm
    candidate = hour + (12 if first[0] >= 12 and hour < 12 else 0)
    if hour == 12:
        candidate = 12
    return (candidate, minute) if (candidate, minute) > first else None


def _clock_parts(clock: str) -> tuple[int, int] | None:
    found = re.match(r"(\d{1,2})(?::(\d{2}))?", clock)
    if found is None:
        return None
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def _parse_clock(clock: str, day_word: str | None) -> tuple[int, int] | None:
    """(hour, minute) when the time is unambiguous: am/pm said, noon, midnight, or a 24-hour reading."""
    if clock in {"noon", "midday"}:
        return 12, 0
    if clock == "midnight":
        return 0, 0
    hm = _clock_parts(clock)
    if hm is None:
        return None
    hour, minute = hm
    if "am" in clock or "pm" in clock:
        if hour == 0 or hour > 12:
            return None
        hour = hour % 12 + (12 if "pm" in clock else 0)
        return hour, minute
    if hour >= 13:
        return hour, minute
    # "at 7" is morning or evening; "tonight at 7", "this evening at 8" say which.
    if day_word and re.search(r"tonight|evening|night|afternoon", day_word) and 1 <= hour <= 11:
        return hour + 12, minute
    if day_word and "morning" in day_word and 1 <= hour <= 11:
        return hour, minute
    return None


def _next_occurrence(local: datetime, hm: tuple[int, int], midnight: bool = False) -> datetime:
    candidate = datetime.combine(local.date(), time(*hm), tzinfo=local.tzinfo)
    if midnight or candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def _resolve_day(text: str, local: datetime) -> date | None:
    today = local.date()
    if re.fullmatch(
        r"today|tonight|this (?:morning|afternoon|evening)|later today|later this \w+|(?:the )?end of (?:the )?"
        r"(?:business |working )?day|(?:the )?close of \w+|eod|cob",
        text,
    ):
        return today
    if text.startswith("tomorrow") or text.startswith("first thing tomorrow"):
        return today + timedelta(days=1)
    if text.endswith("day after tomorrow"):
        return today + timedelta(days=2)
    if text in {"first thing in the morning", "first thing"}:
        return today + timedelta(days=1)
    weekday = re.fullmatch(
        r"(?:(this coming|this|next|coming|first thing) )?" + _WEEKDAY + _PART + r"(?:,? (?:the )?" + _ORD
        + r"|,? " + _MONTH + r" " + _ORD + r")?",
        text,
    )
    if weekday is not None:
        modifier, name = weekday.group(1), weekday.group(2)
        if weekday.group(3) or weekday.group(5):
            # "Friday the 14th", "Friday, April 14": the date decides; the weekday must agree with it.
            rest = f"the {weekday.group(3)}" if weekday.group(3) else f"{weekday.group(4)} {weekday.group(5)}"
            day = _calendar_date(rest, today)
            return day if day is not None and day.weekday() == WEEKDAYS.index(name) else None
        return _weekday(today, WEEKDAYS.index(name), modifier)
    prefixed = re.fullmatch(_WEEKDAY + r",? (.+)", text)
    if prefixed is not None:
        day = _calendar_date(prefixed.group(2), today)
        return day if day is not None and day.weekday() == WEEKDAYS.index(prefixed.group(1)) else None
    return _calendar_date(text, today)


def _weekday(today: date, target: int, modifier: str | None) -> date | None:
    ahead = (target - today.weekday()) % 7
    if modifier in {None, "coming", "this coming", "first thing"}:
        return today + timedelta(days=ahead or 7)
    if modifier == "this":
        return today + timedelta(days=ahead) if target >= today.weekday() else None
    # "next": next week's; said earlier in the same week it might mean this week's.
    if target > today.weekday():
        return None
    return today + timedelta(days=ahead or 7)


def _calendar_date(text: str, today: date) -> date | None:
    year: int | None = None
    with_year = re.fullmatch(r"(.+?),? (\d{4})", text)
    if with_year is not None:
        text, year = with_year.group(1), int(with_year.group(2))
    month_day = re.fullmatch(_MONTH + r" (?:the )?" + _ORD, text)
    # Day first, with "of" or without: "the 20th of May", "20 May", "20th May".
    day_of_month = re.fullmatch(r"(?:the )?" + _ORD + r" (?:of )?" + _MONTH, text)
    bare = re.fullmatch(r"the " + _ORD, text)
    numeric = numeric_date_parts(text)
    if month_day is not None:
        month, day = MONTHS[month_day.group(1)], int(month_day.group(2))
    elif day_of_month is not None:
        month, day = MONTHS[day_of_month.group(2)], int(day_of_month.group(1))
    elif numeric is not None:
        month, day, numeric_year = numeric
        year = numeric_year if numeric_year is not None else year
    elif bare is not None:
        day = int(bare.group(1))
        for offset in range(3):
            candidate_month = add_months(today.replace(day=1), offset)
            if day <= calendar.monthrange(candidate_month.year, candidate_month.month)[1]:
                candidate = candidate_month.replace(day=day)
                if candidate >= today:
                    return candidate
        return None
    else:
        return None
    if not 1 <= month <= 12:
        return None
    if year is not None:
        return _safe_date(year, month, day)
    this_year = _safe_date(today.year, month, day)
    if this_year is None:
        return None
    return this_year if this_year >= today else _safe_date(today.year + 1, month, day)


_NUMERIC_DATE = re.compile(r"(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def numeric_date_parts(text: str) -> tuple[int, int, int | None] | None:
    """(month, day, year or None) of a date written in numbers: month first ("11/15", "11/19/17"), the US usage
    of the transcripts and how due phrases are resolved, or ISO ("2020-08-19"); None for anything else, or for
    a month or day that cannot be ("14/3" is refused, not read day first)."""
    numeric = _NUMERIC_DATE.fullmatch(text)
    iso = _ISO_DATE.fullmatch(text) if numeric is None else None
    if numeric is not None:
        month, day = int(numeric.group(1)), int(numeric.group(2))
        written_year = numeric.group(3)
        year = int(written_year) + (2000 if len(written_year) == 2 else 0) if written_year else None
    elif iso is not None:
        year, month, day = int(iso.group(1)), int(iso.group(2)), int(iso.group(3))
    else:
        return None
    return (month, day, year) if 1 <= month <= 12 and 1 <= day <= 31 else None


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _rule(pattern: str, resolve: Callable[[re.Match[str], datetime], Resolved]) -> _Rule:
    return _Rule(re.compile(pattern), resolve)


_RULES: list[_Rule] = [
    # "within 5 business days", "in 3 - 5 days", "21 days", "in 4 or 5 days", "within 72 hours"
    _rule(r"(?:within|in|over|during|after)?\s?(?:the )?" + _N + r"(?: (?:-|to|or) " + _N + r")? " + _UNIT
          + r"(?: from (?:now|today))?", _duration),
    # "within a week", "in an hour", "in a day or two" is vague (no rule)
    _rule(r"(?:within|in|after) (?:a|an|one) " + _UNIT + r"(?: from (?:now|today))?", _one_unit),
    _rule(r"(?:within|in) (?:a )?half (?:an )?hour", _half_hour),
    _rule(r"(?:within|in(?= the next)) the (next )?(hour|day|week|month)", _within_the),
    _rule(r"(?:the )?(?:end of )?(?:the )?(this|next|the) (?:business |working )?week|(?:the )?end of (?:the )?"
          r"(?:business |working )?(week)|(within) the week", _week),
    _rule(r"(?:the )?end of (?:the )?(this|next) week", _week),
    _rule(r"(?:this|the) weekend|(?:the )?end of (?:this|the) weekend", _weekend),
    _rule(r"(?:the )?(?:end of )?(?:the )?(this|next|the) month|(?:the )?end of (?:the )?(month)|(within) the month",
          _month),
    _rule(r"(?:the )?(?:end of )?(?:the )?(this|next) year|(?:the )?end of the (year)", _year),
    _rule(r"(?:the )?next (?:business|working) day|(?:within )?(?:one|1) (?:business|working) day",
          _next_business_day),
    _rule(r"(?P<day>" + _DAY + r")(?: " + _TIME_PREP + r"? ?(?P<clock>" + _CLOCK + r"))?", _day_then_time),
    _rule(r"(?P<prep>at|by|before|until|till|around|after|no later than)? ?(?P<clock>" + _CLOCK + r")"
          r"(?: (?P<day>" + _DAY + r"))?", _time_then_day),
    _rule(r"(?:(?P<day>" + _DAY + r") )?(?:between|from) (?P<begin>" + _CLOCK + r") (?:and|to|-|until|till) "
          r"(?P<end>" + _CLOCK + r")(?: (?P<day2>" + _DAY + r"))?", _range),
]
