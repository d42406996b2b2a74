"""Many rows in one PostgreSQL statement of a fixed shape: the rows travel as one JSON array the server
turns into typed rows (`json_to_recordset`). One `json.dumps` here, where arrays per column cost the driver
Python per element; and one SQL text whatever the number of rows, so the driver parses it once and the
server prepares it once per connection (a multi-row VALUES list is a new text for every row count)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from app.db.types import as_utc

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def sql_type(table: Table, column: str) -> str:
    """The PostgreSQL type of `table.column`, as DDL spells it."""
    return str(table.c[column].type.compile(dialect=_DIALECT))


def column_list(columns: Sequence[str], prefix: str = "") -> str:
    """`columns` quoted and comma-separated, each after `prefix` (an alias: "c.")."""
    quote = _DIALECT.identifier_preparer.quote
    return ", ".join(f"{prefix}{quote(name)}" for name in columns)


def json_record_columns(table: Table, columns: Sequence[str]) -> str:
    """The column definition list of `json_to_recordset(...) AS alias(<this>)` for `columns` of `table`,
    each typed as the table has it."""
    quote = _DIALECT.identifier_preparer.quote
    return ", ".join(f"{quote(name)} {sql_type(table, name)}" for name in columns)


def _json_value(value: Any) -> str:
    """Dates and times in JSON: ISO 8601, which the server reads back into the same value (a time in UTC,
    as the `UTCDateTime` columns store it)."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"no JSON form for {type(value).__name__}")


def json_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as the JSON array `json_to_recordset` reads (keys: column names)."""
    return json.dumps(rows, ensure_ascii=False, allow_nan=False, default=_json_value)
