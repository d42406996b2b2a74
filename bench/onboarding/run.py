"""A new tenant's first calls in a database whose statistics know only the tenants it had: what its
lookups cost as its calls pile up, next to an established tenant's, until calls is analyzed again.

    .venv/bin/python -m bench.onboarding.run --existing 300000 --new 20000 --against 0021

What runs, per schema revision (head, and `--against`'s in the same run): a fresh PostgreSQL database
migrated to it; `--existing` calls of one tenant (one stored by the ingest, the rest inserted as rows of
calls alone, which is all the lookups read), analyzed as a production database's tables are; then a
new tenant's calls stored in batches of `--batch` (each batch committed, as the ingest commits). After each
batch: the server's execution time (EXPLAIN ANALYZE: planned for the values, as PostgreSQL plans a
foreign-key check) and shared buffers of the two lookups every stored call and every claim makes on calls,
for a newcomer's call and an established tenant's (median of `--repeat` executions), the index, and whether
calls has been analyzed since the newcomer arrived (by autovacuum: `pg_stat_user_tables.last_autoanalyze`).
The lookups:

- ingest: `SELECT ... FROM calls WHERE tenant_id = ? AND external_id = ? FOR UPDATE`, the statement
  `store_transcript` runs before inserting or replacing a call (app/pipeline/store.py);
- claims' key: `SELECT 1 FROM ONLY calls x WHERE id = ? AND tenant_id = ? FOR KEY SHARE OF x`, the
  statement PostgreSQL runs to check each inserted claim's foreign key (call_id, tenant_id) on calls.

Why: for a tenant the column statistics do not list, PostgreSQL estimates `tenant_id = <new>` at about one
row, and a narrow index leading with tenant_id then looks as cheap as a unique lookup: both lookups scan
every call of the newcomer, slower with each call it stores, until calls is analyzed again. By default
autovacuum analyzes a table once 10% of it changed (100,000 rows at a million calls); migration 0022 makes
that 0.2% for calls. Autovacuum looks once a minute (`autovacuum_naptime`), so a run must last longer than
that to show it; a server with autovacuum off (as this machine's, on 5432) never analyzes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.pipeline.store import store_transcript
from bench.burst.run import sample_transcripts
from tests.support.call_rows import insert_call_rows
from tests.support.services import temporary_pg_database

EXISTING_TENANT = "established"
NEW_TENANT = "newcomer"
LAST_ANALYZED = text("SELECT greatest(last_autoanalyze, last_analyze) FROM pg_stat_user_tables "
                     "WHERE relname = 'calls'")
INGEST_LOOKUP = ("SELECT * FROM calls WHERE tenant_id = %(tenant)s AND external_id = %(external)s "
                 "FOR UPDATE")
CLAIM_KEY_CHECK = ("SELECT 1 FROM ONLY calls x WHERE id::text = %(id)s::text AND tenant_id = %(tenant)s "
                   "FOR KEY SHARE OF x")


def _last_analyzed(engine: Engine) -> datetime | None:
    with engine.connect() as connection:
        value: datetime | None = connection.execute(LAST_ANALYZED).scalar()
        return value


def _lookup(connection: Connection, sql: str, values: dict[str, Any]) -> tuple[float, int, str]:
    """The server's execution time (ms), the shared buffers read and the index of one lookup, planned by
    PostgreSQL for these values (as it plans the foreign-key check and a statement not yet prepared)."""
    plan = [row[0] for row in connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, values)]
    connection.rollback()  # the row lock
    execution = next(float(line.split()[2]) for line in plan if line.startswith("Execution Time"))
    buffers = next((int(word.split("=")[1]) for line in plan if line.strip().startswith("Buffers:")
                    for word in line.split() if word.startswith("hit=")), 0)
    index = next((word for line in plan for word in line.split() if word.startswith(("ix_", "uq_", "pk_"))),
                 "(no index)")
    return execution, buffers, index


def _lookups(engine: Engine, tenant: str, external_id: str, repeat: int) -> dict[str, tuple[float, int, str]]:
    """Each lookup's median execution time, buffers and index, for the call `external_id` of `tenant`."""
    with engine.connect() as connection:
        tenant_id, call_id = connection.execute(text(
            "SELECT c.tenant_id, c.id FROM calls c JOIN tenants t ON t.id = c.tenant_id "
            "WHERE t.slug = :slug AND c.external_id = :external"), {"slug": tenant, "external": external_id}).one()
        connection.rollback()
        result = {}
        for name, sql, values in (("ingest", INGEST_LOOKUP, {"tenant": tenant_id, "external": external_id}),
                                  ("claim key", CLAIM_KEY_CHECK, {"tenant": tenant_id, "id": call_id})):
            runs = [_lookup(connection, sql, values) for _ in range(repeat)]
            result[name] = (statistics.median(ms for ms, _, _ in runs), runs[-1][1], runs[-1][2])
        return result


def side(revision: str, existing: int, new: int, batch: int, repeat: int) -> list[dict[str, Any]]:
    transcripts = sample_transcripts()
    rows: list[dict[str, Any]] = []
    with temporary_pg_database() as url:
        upgrade(url)
        if revision != "head":
            downgrade(url, revision)
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        with unit_of_work(factory) as session:
            # One call through the ingest (the tenant row with it), the rest as rows of calls only: the
            # lookups read nothing else, and a million calls go in within minutes.
            store_transcript(session, transcripts[0], tenant=EXISTING_TENANT, external_id="e0")
            tenant_id = session.scalar(text("SELECT id FROM tenants WHERE slug = :slug"), {"slug": EXISTING_TENANT})
        insert_call_rows(engine, tenant_id, "e", existing - 1)
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
        analyzed_before = _last_analyzed(engine)
        started = time.monotonic()
        stored = 0
        while stored < new:
            with unit_of_work(factory) as session:
                for number in range(stored, min(new, stored + batch)):
                    store_transcript(session, transcripts[number % len(transcripts)], tenant=NEW_TENANT,
                                     external_id=f"n{number}")
            stored = min(new, stored + batch)
            newcomer = _lookups(engine, NEW_TENANT, "n0", repeat)
            established = _lookups(engine, EXISTING_TENANT, "e0", repeat)
            analyzed = _last_analyzed(engine) != analyzed_before
            row = {"stored": stored, "seconds": round(time.monotonic() - started), "analyzed": analyzed,
                   "newcomer": newcomer, "established": established}
            rows.append(row)
            print(f"  {revision}: {stored:6d} newcomer calls, {row['seconds']:4d} s: "
                  + "; ".join(f"{name} {newcomer[name][0]:.3f} ms {newcomer[name][1]} buffers ({newcomer[name][2]}) "
                              f"vs established {established[name][0]:.3f} ms {established[name][1]} buffers "
                              f"({established[name][2]})" for name in newcomer)
                  + ("  [calls analyzed since the newcomer arrived]" if analyzed else ""), file=sys.stderr)
        engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--existing", type=int, default=300000, help="calls of the established tenant")
    parser.add_argument("--new", type=int, default=20000, help="calls of the new tenant, stored in batches")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=50, help="executions of each lookup per measurement")
    parser.add_argument("--revision", default="head")
    parser.add_argument("--against", help="also measure this schema revision (e.g. 0021)")
    args = parser.parse_args(argv)
    for revision in [args.revision] + ([args.against] if args.against else []):
        rows = side(revision, args.existing, args.new, args.batch, args.repeat)
        analyzed_at = next((row["stored"] for row in rows if row["analyzed"]), None)
        worst = max(rows, key=lambda row: row["newcomer"]["claim key"][0])
        last = rows[-1]
        print(f"{revision}: calls analyzed after "
              f"{'never' if analyzed_at is None else f'{analyzed_at} newcomer calls'}; claim key check on a "
              f"newcomer's call: worst {worst['newcomer']['claim key'][0]:.3f} ms "
              f"({worst['newcomer']['claim key'][1]} buffers) at {worst['stored']} calls, last "
              f"{last['newcomer']['claim key'][0]:.3f} ms ({last['newcomer']['claim key'][2]}); established "
              f"{last['established']['claim key'][0]:.3f} ms ({last['established']['claim key'][1]} buffers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
