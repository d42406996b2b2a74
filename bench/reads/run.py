"""Time every read path a reviewer or a scraper touches, on a loaded database (bench/reads/load.py).

Each path is fetched through the real FastAPI app in-process (TestClient: routing, authentication,
queries, Jinja2), `--runs` times after two warm-up fetches: p50 and p95 wall time, and the app's CPU per
request (the database's work is in the wall time, not the CPU). One more fetch records every SQL
statement with its time; the slowest are printed with EXPLAIN (ANALYZE, BUFFERS) and their parameters.

    python -m bench.reads.run --url postgresql+psycopg://postgres@127.0.0.1/postcall_bench_reads \\
        --broker-url redis://127.0.0.1:6379/0 --runs 20 --explain-out /tmp/reads-explain.txt

`--offsets` pages with offsets only (no cursors), as the code before keyset pagination did: the same
runner measures the baseline when run against that code (PYTHONPATH pointing at an export of it).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, CallState, UserRole
from app.users import authenticate, create_user
from app.web import create_app
from app.web.queue import CallFilters, list_calls

TENANT = "bench-main"
PAGE_SIZE = 50
WARMUP = 2
PERCENTILE_95 = 0.95
EXPLAINED_PER_PATH = 2
TARGET_MS = 100.0


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    params: dict[str, Any]
    user: str = "admin"  # admin | supervisor | agent
    api: bool = False


class StatementLog:
    """Every statement the app sends while recording, with its wall time."""

    def __init__(self) -> None:
        self.recording = False
        self.statements: list[tuple[float, str, Any]] = []

    def install(self) -> None:
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if self.recording:
            self.statements.append((time.perf_counter() - conn.info.pop("bench_started"), statement, parameters))

    @contextmanager
    def record(self) -> Iterator[list[tuple[float, str, Any]]]:
        self.statements = []
        self.recording = True
        try:
            yield self.statements
        finally:
            self.recording = False


def _users(url: str) -> dict[str, str]:
    """Fresh users of the loaded tenant: an admin (every call), a team supervisor, an agent."""
    suffix = uuid.uuid4().hex[:8]
    factory = make_session_factory(create_db_engine(url))
    with unit_of_work(factory) as session:
        return {
            "admin": create_user(session, tenant=TENANT, name=f"bench-admin-{suffix}", role=UserRole.admin).token,
            "supervisor": create_user(session, tenant=TENANT, name=f"bench-sup-{suffix}", role=UserRole.supervisor,
                                      team="team-3").token,
            "agent": create_user(session, tenant=TENANT, name=f"bench-agent-{suffix}", role=UserRole.agent,
                                 agent_id="agent-7").token,
        }


def _position_params(url: str, token: str, filters: CallFilters, offset: int, *, api: bool,
                     offsets_only: bool) -> dict[str, Any]:
    """Query parameters that open the page starting at `offset`: a cursor (the key of the row before it),
    or the offset itself."""
    if offset == 0:
        return {}
    if offsets_only:
        return {"offset": offset} if api else {"page": offset // PAGE_SIZE + 1}
    from app.web.queue import PageCursor  # absent from the code before keyset pagination

    factory = make_session_factory(create_db_engine(url))
    with factory() as session:
        principal = authenticate(session, token)
        assert principal is not None
        before = list_calls(session, principal, CallFilters(**{**filters.__dict__, "limit": 1, "offset": offset - 1}))
        call = session.get(Call, before.calls[0].call_id)
        assert call is not None
        cursor = PageCursor.of(call, before=False).encode()
    return {"cursor": cursor} if api else {"cursor": cursor, "page": offset // PAGE_SIZE + 1}


def _cases(url: str, tokens: dict[str, str], offsets_only: bool) -> list[Case]:
    factory = make_session_factory(create_db_engine(url))
    with factory() as session:
        admin = authenticate(session, tokens["admin"])
        assert admin is not None
        some_call = session.scalar(
            select(Call.id).where(Call.tenant_id == admin.tenant_id, Call.current_run_id.is_not(None))
            .order_by(Call.external_id).limit(1)
        )

        def total(filters: CallFilters) -> int:
            return list_calls(session, admin, CallFilters(**{**filters.__dict__, "limit": 1})).total

        to_review = CallFilters(states=(CallState.needs_attention, CallState.ready_for_review))
        every = CallFilters()
        flagged = CallFilters(states=to_review.states, flagged=True)
        approved = CallFilters(states=(CallState.approved,))
        sizes = {name: total(f) for name, f in
                 {"to_review": to_review, "every": every, "flagged": flagged, "approved": approved}.items()}
    cases: list[Case] = []

    def pages(name: str, path: str, params: dict[str, Any], filters: CallFilters, size: int, *, api: bool) -> None:
        last = max(0, (size - 1) // PAGE_SIZE * PAGE_SIZE)
        middle = (size // 2) // PAGE_SIZE * PAGE_SIZE
        for where, offset in (("first", 0), ("middle", middle), ("last", last)):
            position = _position_params(url, tokens["admin"], filters, offset, api=api, offsets_only=offsets_only)
            cases.append(Case(f"{name} {where} page", path, {**params, **position}, api=api))

    pages("queue to review", "/", {}, to_review, sizes["to_review"], api=False)
    pages("queue all states", "/", {"state": "all"}, every, sizes["every"], api=False)
    pages("queue flagged=yes", "/", {"flagged": "yes"}, flagged, sizes["flagged"], api=False)
    pages("queue state=approved", "/", {"state": "approved"}, approved, sizes["approved"], api=False)
    cases += [
        Case("queue flagged=no first page", "/", {"flagged": "no", "state": "all"}),
        Case("queue state=queued (none)", "/", {"state": "queued"}),
        Case("queue state=failed", "/", {"state": "failed"}),
        Case("queue agent filter", "/", {"agent": "agent-7", "state": "all"}),
        Case("queue one week", "/", {"state": "all", "date_from": "2026-09-01", "date_to": "2026-09-07"}),
        Case("queue as team supervisor", "/", {"state": "all"}, user="supervisor"),
        Case("queue as agent", "/", {"state": "all"}, user="agent"),
    ]
    pages("GET /api/calls", "/api/calls", {"limit": PAGE_SIZE}, every, sizes["every"], api=True)
    cases += [
        Case("GET /api/calls flagged=true", "/api/calls", {"flagged": "true"}, api=True),
        Case("GET /api/calls state=failed", "/api/calls", {"state": "failed"}, api=True),
        Case("GET /metrics", "/metrics", {}),
        Case("call page", f"/calls/{some_call}", {}),
        Case("GET /api/calls/{id}", f"/api/calls/{some_call}", {}, api=True),
    ]
    return cases


def _login(client: TestClient, token: str) -> None:
    login = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf is not None
    client.post("/login", data={"token": token, "csrf_token": csrf.group(1)})


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _explain(url: str, statements: list[tuple[float, str, Any]], out: list[str]) -> None:
    engine = create_db_engine(url)
    with engine.connect() as connection:
        for seconds, statement, parameters in sorted(statements, key=lambda s: -s[0])[:EXPLAINED_PER_PATH]:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
            out.append(f"-- {seconds * 1000:.1f} ms in the app; parameters {parameters!r}")
            out.append(statement.strip())
            out.extend(row[0] for row in plan)
            out.append("")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the loaded PostgreSQL database")
    parser.add_argument("--broker-url", required=True, help="a Redis URL for /metrics' queue depth")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--offsets", action="store_true", help="page by offset (the code before cursors)")
    parser.add_argument("--explain-out", help="write the EXPLAIN (ANALYZE, BUFFERS) of each path here")
    parser.add_argument("--only", nargs="*", help="run only the cases whose name contains one of these")
    args = parser.parse_args()

    log = StatementLog()
    log.install()
    tokens = _users(args.url)
    cases = _cases(args.url, tokens, args.offsets)
    if args.only:
        cases = [c for c in cases if any(part in c.name for part in args.only)]
    settings = Settings(database_url=args.url, broker_url=args.broker_url,
                        secret_key="bench-secret-key-not-the-default")
    explained: list[str] = []
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{args.runs} runs per path", flush=True)
    print(f"{'path':<40} {'status':>6} {'p50 ms':>8} {'p95 ms':>8} {'app CPU ms':>10} {'SQL':>4}", flush=True)
    clients: dict[str, TestClient] = {}
    app = create_app(settings, enqueue=lambda ids: len(ids))
    with TestClient(app) as admin_client, TestClient(app) as supervisor_client, TestClient(app) as agent_client:
        clients = {"admin": admin_client, "supervisor": supervisor_client, "agent": agent_client}
        for user, client in clients.items():
            _login(client, tokens[user])
        for case in cases:
            client = clients[case.user]
            headers = {"Authorization": f"Bearer {tokens[case.user]}"} if case.api else {}
            for _ in range(WARMUP):
                response = client.get(case.path, params=case.params, headers=headers)
            walls, cpus = [], []
            for _ in range(args.runs):
                wall, cpu = time.perf_counter(), time.process_time()
                response = client.get(case.path, params=case.params, headers=headers)
                cpus.append(time.process_time() - cpu)
                walls.append(time.perf_counter() - wall)
            with log.record() as statements:
                client.get(case.path, params=case.params, headers=headers)
            p50, p95 = statistics.median(walls) * 1000, _percentile(walls, PERCENTILE_95) * 1000
            print(f"{case.name:<40} {response.status_code:>6} {p50:8.1f} {p95:8.1f} "
                  f"{statistics.median(cpus) * 1000:10.1f} {len(statements):>4}"
                  f"{'' if p50 < TARGET_MS else '  over target'}", flush=True)
            if args.explain_out:
                explained.append(f"==== {case.name}: GET {case.path} {case.params}")
                _explain(args.url, statements, explained)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    if args.explain_out:
        Path(args.explain_out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.explain_out, "w", encoding="utf-8") as out:
            out.write("\n".join(explained))
    engine = create_db_engine(args.url)
    with engine.begin() as connection:
        # The bench users are not part of the data set.
        connection.execute(text("DELETE FROM users WHERE name LIKE 'bench-%'"))
    engine.dispose()


if __name__ == "__main__":
    main()
