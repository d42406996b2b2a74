"""The dashboard page and GET /api/export over HTTP: who may see them, and that they show one tenant."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.models import UserRole
from app.users import create_user
from tests.support.analytics import World, build_world
from tests.web.conftest import sign_in
from tests.web.world import bearer, client_for

# Wide enough to include the fixture's March 2026 calls whatever today is.
DASHBOARD = "/dashboard?days=366"


def _never_enqueues(call_ids: Sequence[str]) -> int:
    raise AssertionError(f"nothing here hands calls to workers: {list(call_ids)}")


@pytest.fixture
def site(db_url: str, session_factory: sessionmaker[Session]) -> Iterator[tuple[TestClient, World]]:
    world = build_world(session_factory)
    with unit_of_work(session_factory) as session:
        world.tokens["agent-acme"] = create_user(session, tenant="acme", name="agent-acme", role=UserRole.agent,
                                                 agent_id="A-1").token
        world.tokens["admin-globex"] = create_user(session, tenant="globex", name="admin-globex",
                                                   role=UserRole.admin).token
    with client_for(db_url, enqueue=_never_enqueues) as client:
        yield client, world


def _tile(html: str, name: str) -> str:
    match = re.search(rf'id="tile-{name}"><span class="muted">[^<]*</span><b>([^<]*)</b>', html)
    assert match, f"no tile {name}"
    return match.group(1)


def test_dashboard_shows_the_tenants_figures(site: tuple[TestClient, World]) -> None:
    client, world = site
    sign_in(client, world.tokens["sup-acme"])
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    html = page.text
    assert _tile(html, "calls") == "4"
    assert html.count('<svg class="chart" viewBox') >= 3
    # The approved first call and the queued fourth show up as bars with their state.
    assert re.search(r'class="state-approved"[^>]*><title>2026-03-09: 1 approved</title>', html)
    assert re.search(r'class="state-queued"[^>]*><title>2026-03-11: 1 queued</title>', html)
    assert "the returns team" in html
    assert "<script" not in html.split("</header>", 1)[1]
    # Review outcomes: the supervisor rejected the first call's summary (heuristic-v2 joins the card story
    # into one summary statement, so there is one to reject).
    assert re.search(r'class="outcome-rejected"[^>]*><title>summary: 1 rejected', html)


def test_dashboard_is_for_supervisors_analysts_and_admins_of_one_tenant(site: tuple[TestClient, World]) -> None:
    client, world = site
    sign_in(client, world.tokens["ana-acme"])
    assert client.get(DASHBOARD).status_code == 200
    sign_in(client, world.tokens["admin-globex"])
    assert _tile(client.get(DASHBOARD).text, "calls") == "2"
    sign_in(client, world.tokens["agent-acme"])
    assert client.get(DASHBOARD).status_code == 403
    client.cookies.clear()
    assert client.get(DASHBOARD, follow_redirects=False).status_code == 303


def test_export_streams_the_analysts_tenant(site: tuple[TestClient, World]) -> None:
    client, world = site
    response = client.get("/api/export", headers=bearer(world.tokens["ana-acme"]))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in response.text.splitlines()]
    assert {r["call_id"] for r in records} == set(world.calls["acme"])

    csv_response = client.get("/api/export?format=csv&since=2026-03-11", headers=bearer(world.tokens["ana-acme"]))
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    assert csv_response.text.splitlines()[0].startswith("call_id,external_id,tenant")
    parquet = client.get("/api/export?format=parquet", headers=bearer(world.tokens["admin-globex"]))
    assert set(pq.read_table(io.BytesIO(parquet.content)).column("tenant").to_pylist()) == {"globex"}


@pytest.mark.parametrize(
    ("user", "query", "status"),
    [("sup-acme", "", 403), ("agent-acme", "", 403), (None, "", 401), ("ana-acme", "?since=someday", 422),
     ("ana-acme", "?format=xlsx", 422), ("ana-acme", "?since=0001-01-01T00:00:00%2B14:00", 422),
     ("ana-acme", "?until=9999-12-31T23:59:59-14:00", 422)],
)
def test_export_refusals(site: tuple[TestClient, World], user: str | None, query: str, status: int) -> None:
    client, world = site
    headers = bearer(world.tokens[user]) if user else {}
    assert client.get(f"/api/export{query}", headers=headers).status_code == status
