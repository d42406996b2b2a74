"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, literal_column
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the zone; SQLite stores text without one and hands back naive values, which
    would reach API consumers as local-looking times. Values are normalised to UTC on the way in
    and marked UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive value is taken to be UTC already (how SQLite hands it back)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def sql_constant(member: StrEnum) -> ColumnClause[str]:
    """A fixed value of one of our enums written into the SQL text, not bound as a parameter.

    A driver prepares a statement it runs often (psycopg: after 5 runs), and PostgreSQL may then plan it
    once for any parameter values (a generic plan). A bound state or mode is unknown to that plan: it
    cannot match a partial index on the value, and it estimates the value's rows from averages. Measured:
    the reconciler's lookup (`state IN (..) AND llm_mode = ..`, bound) got a sequential scan of 300,000
    calls as its generic plan, 29 ms, against 0.02 ms with the values written in; the succeeded-run
    lookup scanned every run instead of its partial unique index. Only for enum members, whose values
    are our own constants."""
    if "'" in member.value or "\\" in member.value:
        raise ValueError(f"not a plain SQL constant: {member.value!r}")
    return literal_column(f"'{member.value}'")
