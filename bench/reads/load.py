"""Load a PostgreSQL database with a million synthetic calls for the read-path benchmark, the way a real
deployment gets there: the data is written at the schema before the read-path migration (0009), then
the database is upgraded, so the migration's backfill runs on the loaded rows and is timed.

    python -m bench.reads.load --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench_reads --calls 1000000

The rows come from the analyst benchmark's loader (bench/analysts/load.py): its shape is documented there.
"""

from __future__ import annotations

import argparse
import time

import psycopg
from sqlalchemy import make_url

from app.db.migrate import upgrade
from bench.analysts.load import _statements, tables_with_tenant

# The schema the loader's rows are written at: the revision before the read-path migration.
LOAD_REVISION = "0008"


def _dsn(url: str, database: str) -> str:
    parsed = make_url(url)
    return (f"host={parsed.host or '127.0.0.1'} port={parsed.port or 5432} user={parsed.username or 'postgres'} "
            f"dbname={database}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the PostgreSQL database to (re)create")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--claims-per-call", type=int, default=7)
    parser.add_argument("--skip-load", action="store_true", help="only upgrade an already loaded database")
    parser.add_argument("--skip-upgrade", action="store_true", help="only load, at the revision before 0009")
    args = parser.parse_args()
    database = make_url(args.url).database
    if not args.skip_load:
        with psycopg.connect(_dsn(args.url, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
            conn.execute(f'CREATE DATABASE "{database}"')
        upgrade(args.url, LOAD_REVISION)
        with psycopg.connect(_dsn(args.url, str(database)), autocommit=True) as conn:
            for name, sql in _statements(args.calls, args.claims_per_call, with_tenant=tables_with_tenant(conn)):
                started = time.perf_counter()
                cursor = conn.execute(sql)
                print(f"{name:<14} {cursor.rowcount:>11,} rows  {time.perf_counter() - started:7.1f} s", flush=True)
    if args.skip_upgrade:
        return
    started = time.perf_counter()
    upgrade(args.url)
    print(f"{'upgrade to head (backfill)':<26} {time.perf_counter() - started:7.1f} s", flush=True)
    with psycopg.connect(_dsn(args.url, str(database)), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


if __name__ == "__main__":
    main()
