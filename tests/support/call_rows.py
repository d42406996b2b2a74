"""Calls as rows of `calls` alone (no utterances, runs or claims), many at once: for tests and benchmarks
of lookups on calls, which read nothing else."""

from __future__ import annotations

from sqlalchemy import Engine, text

CALL_ROWS = text(
    "INSERT INTO calls (id, tenant_id, external_id, source_format, transcript_hash, state, state_changed_at, "
    "attempts, created_at, started_at) "
    "SELECT :prefix || n, :tenant, :prefix || n, 'json', md5(n::text), 'queued', now(), 0, now(), "
    "now() - n * interval '1 minute' FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS n"
)
# Each inserted call updates its tenant's counter row, and PostgreSQL walks every version of a row that the
# same transaction made on each update: one transaction of 100,000s of calls would be quadratic.
CHUNK_CALLS = 5_000


def insert_call_rows(engine: Engine, tenant_id: int, prefix: str, count: int, *, first: int = 1) -> None:
    """Calls `<prefix><n>` (id and external id) of the tenant for n = first .. first + count - 1, committed
    `CHUNK_CALLS` at a time, each transaction's row counts flushed to the statistics views at its commit
    (a backend flushes them lazily otherwise, and an ANALYZE run meanwhile would see them counted after it)."""
    last = first + count - 1
    for start in range(first, last + 1, CHUNK_CALLS):
        with engine.begin() as connection:
            connection.execute(CALL_ROWS, {"prefix": prefix, "tenant": tenant_id, "first": start,
                                           "last": min(last, start + CHUNK_CALLS - 1)})
            connection.execute(text("SELECT pg_stat_force_next_flush()"))


CALL_ROWS_AGED = text(
    "INSERT INTO calls (id, tenant_id, external_id, source_format, transcript_hash, state, state_changed_at, "
    "attempts, created_at, llm_mode) "
    "SELECT :prefix || n, :tenant, :prefix || n, 'json', md5(n::text), :state, now() - CAST(:age AS interval) "
    "- n * interval '10 ms', 1, now(), :mode FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) n"
)


def insert_aged_call_rows(
    engine: Engine, tenant_id: int, prefix: str, count: int, *, state: str, mode: str, age: str
) -> None:
    """Calls `<prefix><n>` of the tenant in `state` and LLM `mode`, entered `age` ago (a PostgreSQL interval,
    each 10 ms older than the one before), `CHUNK_CALLS` per transaction."""
    for first in range(1, count + 1, CHUNK_CALLS):
        with engine.begin() as connection:
            connection.execute(CALL_ROWS_AGED, {"prefix": prefix, "tenant": tenant_id, "state": state, "mode": mode,
                                                "age": age, "first": first,
                                                "last": min(count, first + CHUNK_CALLS - 1)})
