"""Fixed statements run on the driver's cursor (PostgreSQL).

Every processed call runs the same few prebuilt Core statements. Executing one through a SQLAlchemy
`Connection` costs about as much Python again as the driver's own work (an execution context, parameter
processing, a result with its metadata: ~0.1 ms per statement on a 2-core box, against ~0.1 ms for the
driver), and a call runs five of them. `FixedStatement` compiles its statement once for the connection's
dialect and runs it on the psycopg connection under the SQLAlchemy `Connection`, in the same transaction,
passing the parameters and the result columns through the column types' own processors for that dialect:
the values sent and returned are the ones `Connection.execute` sends and returns.

A driver error goes through the `Connection`'s own error handling: it is raised as the same SQLAlchemy
exception (`OperationalError`, `IntegrityError`, ... with `connection_invalidated` set), and a lost
connection invalidates the pool's connections, as with `Connection.execute`. What this path skips are
the engine's statement events (`before_cursor_execute`, ...): nothing in the application listens to them.

Any other backend (SQLite) runs the statement through `Connection.execute`, as before.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.selectable import ExecutableReturnsRows

Processor = Callable[[Any], Any]


@dataclass
class _Plan:
    """A statement compiled for one dialect, with what running it on the cursor needs."""

    dialect: Dialect
    sql: str
    fixed: dict[str, Any]  # the values the statement itself binds (constants), already processed
    # The caller's parameters: each one's name, its name in the SQL (escaped if need be) and its processor.
    processors: tuple[tuple[str, str, Processor | None], ...]
    row: Any  # the named tuple type of a result row (None: the statement returns no rows)
    result_types: tuple[Any, ...]  # the result columns' types, as the dialect implements them
    # The result columns' processors, by index: known once a result's column types were seen (a type's
    # processor may depend on the type the server sends: `Float`'s, on float8 or numeric).
    result_processors: tuple[tuple[int, Processor], ...] | None = None

    def rows_of(self, rows: list[Any], description: Any) -> list[Any]:
        """The driver's rows as named tuples of processed values (`description`: the cursor's, needed the
        first time only)."""
        make = self.row._make
        processors = self.result_processors
        if processors is None:
            processors = self.result_processors = tuple(
                (index, processor)
                for index, (kind, column) in enumerate(zip(self.result_types, description, strict=True))
                if (processor := kind.result_processor(self.dialect, column.type_code)) is not None
            )
        if not processors:
            return [make(row) for row in rows]
        processed = []
        for row in rows:
            cells = list(row)
            for index, processor in processors:
                cells[index] = processor(cells[index])
            processed.append(make(cells))
        return processed


def _plan(statement: ExecutableReturnsRows, dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
        # A column default computed in Python at each execution: `Connection.execute` adds it, the cursor would not.
        raise TypeError("a statement with Python-side column defaults cannot run as a fixed statement")
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise TypeError("a statement with expanding parameters cannot run as a fixed statement")
    fixed: dict[str, Any] = {}
    processors: list[tuple[str, str, Processor | None]] = []
    for bind, name in compiled.bind_names.items():
        in_sql = compiled.escaped_bind_names.get(name, name)
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.required:
            processors.append((name, in_sql, processor))
        else:
            value = bind.effective_value
            fixed[in_sql] = processor(value) if processor is not None else value
    columns = list(statement.exported_columns)
    # Invalid or repeated names (an unlabelled expression) become positional ones, `_<index>`.
    names = [getattr(column, "key", None) or f"_{index}" for index, column in enumerate(columns)]
    row = namedtuple("FixedRow", names, rename=True) if columns else None
    return _Plan(dialect, compiled.string, fixed, tuple(processors), row,
                 tuple(column.type.dialect_impl(dialect) for column in columns))


class FixedStatement:
    """A prebuilt Core statement (no Python-side column defaults, no expanding parameters) run on the
    driver's cursor on PostgreSQL (the module's docstring says why), through `Connection.execute`
    elsewhere. Rows come back as named tuples with the attributes a `Row` of the statement has."""

    def __init__(self, statement: ExecutableReturnsRows) -> None:
        self.statement = statement
        # Compiled on first use, for the dialect of the connection it runs on (one per driver: the SQL and
        # the processors depend on the driver's dialect only).
        self._plans: dict[type[Dialect], _Plan] = {}

    def _run(self, connection: Connection, parameters: Mapping[str, Any], fetch: bool) -> list[Any]:
        plan = self._plans.get(type(connection.dialect))
        if plan is None:
            plan = self._plans[type(connection.dialect)] = _plan(self.statement, connection.dialect)
        values = dict(plan.fixed)
        try:
            for name, in_sql, processor in plan.processors:
                value = parameters[name]
                values[in_sql] = processor(value) if processor is not None else value
        except KeyError as exc:
            raise TypeError(f"missing parameter {exc.args[0]!r} of a fixed statement") from None
        fetch = fetch and plan.row is not None
        # The result's column types are read once per plan (psycopg builds the description on each access).
        describe = fetch and plan.result_processors is None
        rows, description = _on_cursor(connection, plan.sql, values, fetch=fetch, describe=describe)
        return plan.rows_of(rows, description) if fetch else []

    def all(self, connection: Connection, parameters: Mapping[str, Any]) -> list[Any]:
        if connection.dialect.name != "postgresql":
            return list(connection.execute(self.statement, parameters).all())
        return self._run(connection, parameters, fetch=True)

    def one_or_none(self, connection: Connection, parameters: Mapping[str, Any]) -> Any:
        if connection.dialect.name != "postgresql":
            return connection.execute(self.statement, parameters).one_or_none()
        rows = self._run(connection, parameters, fetch=True)
        if len(rows) > 1:
            raise ValueError("a fixed statement expected to return at most one row returned several")
        return rows[0] if rows else None

    def scalar(self, connection: Connection, parameters: Mapping[str, Any]) -> Any:
        """The first column of the first row (None without a row), as `Connection.scalar`."""
        if connection.dialect.name != "postgresql":
            return connection.scalar(self.statement, parameters)
        rows = self._run(connection, parameters, fetch=True)
        return rows[0][0] if rows else None

    def execute(self, connection: Connection, parameters: Mapping[str, Any]) -> None:
        """Run the statement; any rows it returns are dropped."""
        if connection.dialect.name != "postgresql":
            connection.execute(self.statement, parameters)
            return
        self._run(connection, parameters, fetch=False)


def run_on_driver(connection: Connection, sql: str, parameters: Mapping[str, Any], *, fetch: bool) -> list[Any]:
    """Run driver-level `sql` (its parameters already in the driver's form) on the cursor of `connection`'s
    DBAPI connection, in its transaction; returns the rows as the driver gives them (tuples) when `fetch`.
    Errors are raised, and a lost connection handled, by the `Connection` as its own executions' are."""
    return _on_cursor(connection, sql, parameters, fetch=fetch, describe=False)[0]


def _on_cursor(connection: Connection, sql: str, parameters: Mapping[str, Any], *, fetch: bool,
               describe: bool) -> tuple[list[Any], Any]:
    cursor = _cursor(connection)
    try:
        cursor.execute(sql, parameters)
        rows = cast("list[Any]", cursor.fetchall()) if fetch else []
        description = cursor.description if describe else None
    except BaseException as exc:  # as `Connection` does: an exit exception invalidates the connection too
        connection._handle_dbapi_exception(exc, sql, parameters, cursor, None)
    return rows, description


# The pooled connection's `info` key of its cursor for fixed statements.
_CURSOR = "postcall_fixed_statement_cursor"


def _cursor(connection: Connection) -> Any:
    """One cursor per DBAPI connection, kept with it in the pool (creating one per statement is a fifth of
    the driver's work for these). `info` is cleared when the pool replaces the connection; a cursor closed
    by an error's handling is replaced."""
    pooled = connection.connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed:
        cursor = pooled.info[_CURSOR] = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cursor
