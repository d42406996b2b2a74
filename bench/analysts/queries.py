"""Latency of the analyst views, the cookbook's queries and the dashboard on a loaded PostgreSQL database.

    python -m bench.analysts.load --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench --calls 1000000
    python -m bench.analysts.queries --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench [--explain FILE]

Runs each query --repeat times (after one warm-up) as the database owner (or, with --as-analyst, as an
analyst login of the tenant: through the views' tenant filter) and reports the median. The
cookbook's queries are read from docs/data-model.md with the fixture's tenant ('acme'), agent ('A-1')
and due date replaced by the loaded tenant, one of its agents and a day 90 days into the load. `--explain` writes
EXPLAIN (ANALYZE, BUFFERS) of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, make_url, select, text

from app.analysts import grant_analyst, revoke_analyst
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Tenant, UserRole
from app.users import Principal
from bench.analysts.cookbook import cookbook, for_backend

ROLLUP_VIEW_TIMES = {
    "analytics_call_days": "day", "analytics_claim_days": "day", "analytics_reason_days": "day",
    "analytics_open_item_days": "day", "analytics_run_days": "day", "analytics_agent_due": "due_date",
}

# What an analyst types at each view: a lookup with a bound (an agent, a call, a window of time) and, for
# every view, the newest 50 rows with no window and a count for one day (:day, a day of the load, from
# :day_start to :day_end on a timestamp column). The
# rollup views have no call to look up; the evidence has no time of its own (newest = highest id).
VIEW_QUERIES = {
    "analytics_calls: a page of one agent's calls": (
        "SELECT * FROM analytics_calls WHERE tenant = :tenant AND agent_id = 'agent-7' "
        "ORDER BY started_at DESC LIMIT 50"
    ),
    "analytics_calls: the newest 50, no window": (
        "SELECT * FROM analytics_calls WHERE tenant = :tenant ORDER BY started_at DESC LIMIT 50"
    ),
    "analytics_calls: count for one day": (
        "SELECT COUNT(*) FROM analytics_calls WHERE tenant = :tenant "
        "AND started_at >= :day_start AND started_at < :day_end"
    ),
    "analytics_calls: one call": "SELECT * FROM analytics_calls WHERE call_id = md5('call123457')",
    "analytics_runs: one call's runs": (
        "SELECT * FROM analytics_runs WHERE call_id = md5('call123457') ORDER BY run_id"
    ),
    "analytics_runs: the newest 50, no window": (
        "SELECT * FROM analytics_runs WHERE tenant = :tenant ORDER BY started_at DESC LIMIT 50"
    ),
    "analytics_runs: count for one day": (
        "SELECT COUNT(*) FROM analytics_runs WHERE tenant = :tenant "
        "AND started_at >= :day_start AND started_at < :day_end"
    ),
    "analytics_claims: one call's current items": (
        "SELECT * FROM analytics_claims WHERE call_id = md5('call123457') AND is_current = 1"
    ),
    "analytics_claims: the newest 50, no window": (
        "SELECT * FROM analytics_claims WHERE tenant = :tenant ORDER BY created_at DESC LIMIT 50"
    ),
    "analytics_claims: count for one day": (
        "SELECT COUNT(*) FROM analytics_claims WHERE tenant = :tenant "
        "AND created_at >= :day_start AND created_at < :day_end"
    ),
    "analytics_evidence: one call's evidence": (
        "SELECT * FROM analytics_evidence WHERE call_id = md5('call123457') AND is_current = 1"
    ),
    "analytics_evidence: the newest 50, no window": (
        "SELECT * FROM analytics_evidence WHERE tenant = :tenant ORDER BY evidence_id DESC LIMIT 50"
    ),
    "analytics_review_events: a page of the newest decisions": (
        "SELECT * FROM analytics_review_events WHERE tenant = :tenant ORDER BY created_at DESC LIMIT 50"
    ),
    "analytics_review_events: the last day's decisions": (
        "SELECT * FROM analytics_review_events WHERE tenant = :tenant "
        "AND created_at >= CURRENT_TIMESTAMP - INTERVAL '1 day' ORDER BY created_at DESC"
    ),
    "analytics_review_events: count for one day": (
        "SELECT COUNT(*) FROM analytics_review_events WHERE tenant = :tenant "
        "AND created_at >= :day_start AND created_at < :day_end"
    ),
    "analytics_review_events: one call": (
        "SELECT * FROM analytics_review_events WHERE call_id = md5('call123457') ORDER BY created_at"
    ),
    "analytics_call_days: 30 days": (
        "SELECT * FROM analytics_call_days WHERE tenant = :tenant AND day >= CURRENT_DATE - 30"
    ),
    "analytics_claim_days: 30 days": (
        "SELECT * FROM analytics_claim_days WHERE tenant = :tenant AND day >= CURRENT_DATE - 30"
    ),
    "analytics_claim_days: all of a tenant's days": "SELECT * FROM analytics_claim_days WHERE tenant = :tenant",
    "analytics_reason_days: 30 days": (
        "SELECT * FROM analytics_reason_days WHERE tenant = :tenant AND day >= CURRENT_DATE - 30"
    ),
    "analytics_open_item_days: 30 days": (
        "SELECT * FROM analytics_open_item_days WHERE tenant = :tenant AND day >= CURRENT_DATE - 30"
    ),
    "analytics_agent_due: one agent": (
        "SELECT * FROM analytics_agent_due WHERE tenant = :tenant AND agent_id = 'agent-7'"
    ),
    "analytics_run_days: 30 days": (
        "SELECT * FROM analytics_run_days WHERE tenant = :tenant AND day >= CURRENT_DATE - 30"
    ),
    **{
        f"{view}: the newest 50, no window": (
            f"SELECT * FROM {view} WHERE tenant = :tenant ORDER BY {time_column} DESC LIMIT 50"
        )
        for view, time_column in ROLLUP_VIEW_TIMES.items()
    },
    **{
        f"{view}: count for one day": f"SELECT COUNT(*) FROM {view} WHERE tenant = :tenant AND day = :day"
        for view, time_column in ROLLUP_VIEW_TIMES.items() if time_column == "day"
    },
}


def cookbook_queries(tenant: str) -> dict[str, str]:
    return {
        f"cookbook {number}: {question}": for_backend(blocks, "postgresql")
        .replace("'acme'", f"'{tenant}'").replace("'A-1'", "'agent-7'")
        for number, (question, blocks) in cookbook().items()
    }


def _median_ms(run: object, repeat: int) -> float:
    assert callable(run)
    run()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tenant", default="bench-main")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", type=Path)
    parser.add_argument("--as-analyst", action="store_true",
                        help="run the view and cookbook queries as an analyst login bound to --tenant (made by "
                             "`postcall analysts grant` here and dropped at the end); the dashboard runs as the app")
    args = parser.parse_args()
    engine = create_db_engine(args.url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == args.tenant))
        assert tenant_id is not None, f"no tenant {args.tenant}"
        first = session.scalar(text("SELECT MIN(started_at) FROM calls WHERE tenant_id = :t"), {"t": tenant_id})
        assert isinstance(first, datetime)
    # A day in the middle of the loaded half-year, when items fall due at their usual rate.
    day = (first.astimezone(UTC).date() + timedelta(days=90)).isoformat()
    query_url = make_url(args.url)
    analyst = None
    if args.as_analyst:
        with unit_of_work(factory) as session:
            analyst = grant_analyst(session, f"bench_analyst_{os.getpid()}", args.tenant)
        query_url = query_url.set(username=analyst.role_name, password=analyst.password)
    try:
        _run_queries(create_db_engine(query_url.render_as_string(hide_password=False)), args, day)
    finally:
        if analyst is not None:
            with unit_of_work(factory) as session:
                revoke_analyst(session, analyst.role_name)
    with unit_of_work(factory) as session:
        from app.dashboard import build_dashboard

        principal = Principal(user_id=0, name="bench", tenant_id=tenant_id, tenant=args.tenant,
                              role=UserRole.analyst)
        latest = session.scalar(text("SELECT MAX(started_at) FROM calls WHERE tenant_id = :t"), {"t": tenant_id})
        for days in (30, 365):
            ms = _median_ms(lambda days=days: build_dashboard(session, principal, days, now=latest), args.repeat)
            print(f"{ms:9.1f} ms  dashboard, {days} days", flush=True)
    engine.dispose()


def _run_queries(engine: Engine, args: argparse.Namespace, day: str) -> None:
    explains: list[str] = []
    with engine.connect() as connection:
        queries = {**VIEW_QUERIES, **cookbook_queries(args.tenant)}
        for name, sql in queries.items():
            # The window's bounds have the columns' own type: a date compared with a timestamptz is a
            # cross-type operator PostgreSQL does not mark leakproof, so under the views' tenant filter it
            # is applied after the filter, row by row, instead of as an index range.
            next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
            sql = (sql.replace("'2026-03-13'", f"'{day}'").replace(":day_start", f"TIMESTAMPTZ '{day} 00:00+00'")
                   .replace(":day_end", f"TIMESTAMPTZ '{next_day} 00:00+00'").replace(":day", f"DATE '{day}'"))
            statement = text(sql)
            params = {"tenant": args.tenant} if ":tenant" in sql else {}

            def run(statement: object = statement, params: dict[str, str] = params) -> None:
                connection.execute(statement, params).all()  # type: ignore[call-overload]

            print(f"{_median_ms(run, args.repeat):9.1f} ms  {name}", flush=True)
            if args.explain:
                plan = connection.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).scalars().all()
                explains.append(f"-- {name}\n" + "\n".join(plan))
            connection.rollback()
    engine.dispose()
    if args.explain:
        args.explain.write_text("\n\n".join(explains) + "\n")


if __name__ == "__main__":
    main()
