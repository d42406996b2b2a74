"""Latency of the analyst views, the cookbook's queries and the dashboard on a loaded PostgreSQL database.

    python -m bench.analysts.load --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench --calls 1000000
    python -m bench.analysts.queries --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench [--explain FILE]

Runs each query --repeat times (after one warm-up) as the database owner and reports the median. The
cookbook's queries are read from docs/data-model.md with the fixture's tenant ('acme'), agent ('A-1')
and due date replaced by the loaded tenant, one of its agents and a day 90 days into the load. `--explain` writes
EXPLAIN (ANALYZE, BUFFERS) of each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Tenant, UserRole
from app.users import Principal
from bench.analysts.cookbook import cookbook, for_backend

VIEW_QUERIES = {
    "analytics_calls: a page of one agent's calls": (
        "SELECT * FROM analytics_calls WHERE tenant = :tenant AND agent_id = 'agent-7' "
        "ORDER BY started_at DESC LIMIT 50"
    ),
    "analytics_runs: one call's runs": (
        "SELECT * FROM analytics_runs WHERE call_id = md5('call123457') ORDER BY run_id"
    ),
    "analytics_claims: one call's current items": (
        "SELECT * FROM analytics_claims WHERE call_id = md5('call123457') AND is_current = 1"
    ),
    "analytics_evidence: one call's evidence": (
        "SELECT * FROM analytics_evidence WHERE call_id = md5('call123457') AND is_current = 1"
    ),
    "analytics_review_events: a page of the newest decisions": (
        "SELECT * FROM analytics_review_events WHERE tenant = :tenant ORDER BY created_at DESC LIMIT 50"
    ),
    "analytics_review_events: the last day's decisions": (
        "SELECT * FROM analytics_review_events WHERE tenant = :tenant "
        "AND created_at >= CURRENT_TIMESTAMP - INTERVAL '1 day' ORDER BY created_at DESC"
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
    args = parser.parse_args()
    engine = create_db_engine(args.url)
    factory = make_session_factory(engine)
    explains: list[str] = []
    with unit_of_work(factory) as session:
        tenant_id = session.scalar(select(Tenant.id).where(Tenant.slug == args.tenant))
        assert tenant_id is not None, f"no tenant {args.tenant}"
        first = session.scalar(text("SELECT MIN(started_at) FROM calls WHERE tenant_id = :t"), {"t": tenant_id})
        assert isinstance(first, datetime)
        # A day in the middle of the loaded half-year, when items fall due at their usual rate.
        due_day = (first.astimezone(UTC).date() + timedelta(days=90)).isoformat()
        queries = {**VIEW_QUERIES, **cookbook_queries(args.tenant)}
        for name, sql in queries.items():
            sql = sql.replace("'2026-03-13'", f"'{due_day}'")
            statement = text(sql)
            params = {"tenant": args.tenant} if ":tenant" in sql else {}

            def run(statement: object = statement, params: dict[str, str] = params) -> None:
                session.execute(statement, params).all()  # type: ignore[call-overload]

            print(f"{_median_ms(run, args.repeat):9.1f} ms  {name}", flush=True)
            if args.explain:
                plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).scalars().all()
                explains.append(f"-- {name}\n" + "\n".join(plan))
        from app.dashboard import build_dashboard

        principal = Principal(user_id=0, name="bench", tenant_id=tenant_id, tenant=args.tenant,
                              role=UserRole.analyst)
        latest = session.scalar(text("SELECT MAX(started_at) FROM calls WHERE tenant_id = :t"), {"t": tenant_id})
        for days in (30, 365):
            ms = _median_ms(lambda days=days: build_dashboard(session, principal, days, now=latest), args.repeat)
            print(f"{ms:9.1f} ms  dashboard, {days} days", flush=True)
    engine.dispose()
    if args.explain:
        args.explain.write_text("\n\n".join(explains) + "\n")


if __name__ == "__main__":
    main()
