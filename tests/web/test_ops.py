"""/healthz and /metrics: content-free, honest about what is down; /metrics behind a token when one is set."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.db.migrate import downgrade, head_revision, upgrade
from app.health import broker_client, check_database
from app.web.app import create_app
from tests.support.services import redis_url

BROKER_DB = 12


def _client(database_url: str, broker_url: str) -> TestClient:
    settings = Settings(database_url=database_url, broker_url=broker_url, secret_key="test-" + "x" * 40)
    return TestClient(create_app(settings))


def test_healthz_ok_when_everything_is_up(db_url: str) -> None:
    with _client(db_url, redis_url(BROKER_DB)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "serving": True,
                               "checks": {"database": True, "broker": True, "provider": True}}


def test_healthz_names_a_broken_broker_without_taking_the_app_out_of_rotation(sqlite_url: str) -> None:
    # Review, the API and the feed work without Redis (a submitted call is stored and waits): a 503 took the
    # whole web app out of its load balancer for a broker outage.
    with _client(sqlite_url, "redis://127.0.0.1:1/0") as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["ok"] is False and response.json()["serving"] is True
    assert response.json()["checks"]["broker"] is False
    assert "127.0.0.1:1" not in response.text  # no connection strings for anonymous callers


def test_healthz_503_when_the_database_is_down(tmp_path: object) -> None:
    with _client("postgresql+psycopg://postgres@127.0.0.1:1/postcall", redis_url(BROKER_DB)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] is False and response.json()["serving"] is False


def test_healthz_reads_the_migration_scripts_once_and_still_refuses_a_schema_behind_them(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /healthz, open to anyone, parsed every migration script on each request (about 80 ms) to learn the
    # head revision, which cannot change while the process runs.
    head = head_revision()
    downgrade(postgres_url, "-1")  # a real database one revision behind the code
    loads: list[Any] = []
    read_scripts = ScriptDirectory.from_config

    def counted(config: Any, *args: Any, **kwargs: Any) -> ScriptDirectory:
        loads.append(config)
        return read_scripts(config, *args, **kwargs)

    monkeypatch.setattr(ScriptDirectory, "from_config", counted)
    head_revision.cache_clear()  # as a fresh process: read on first use
    with _client(postgres_url, redis_url(BROKER_DB)) as client:
        behind = [client.get("/healthz") for _ in range(3)]
        check = check_database(Settings(database_url=postgres_url))
        assert len(loads) == 1
        upgrade(postgres_url)  # reads the scripts itself, once
        current = client.get("/healthz")
    assert [answer.status_code for answer in behind] == [503, 503, 503]
    assert all(answer.json()["checks"]["database"] is False for answer in behind)
    assert not check.ok and f"code expects {head}: run `postcall db upgrade`" in check.detail
    assert current.status_code == 200 and current.json()["checks"]["database"] is True
    assert len(loads) == 2 and head_revision() == head


def test_the_broker_probe_reuses_its_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # A client per probe connected afresh on every /healthz and metrics scrape.
    settings = Settings(broker_url=redis_url(BROKER_DB))
    client = broker_client(settings, 3.0)
    assert broker_client(settings, 3.0) is client
    watched = client.info("stats")["total_connections_received"]
    with _client("sqlite://", settings.broker_url) as app:
        for _ in range(5):
            assert app.get("/healthz").json()["checks"]["broker"] is True
    assert client.info("stats")["total_connections_received"] == watched


def test_metrics_scrape_without_token(db_url: str) -> None:
    with _client(db_url, redis_url(BROKER_DB)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert any(name.startswith("postcall_calls") for name in names)
    assert "openapi" not in response.text


def test_metrics_ask_for_the_token_when_one_is_set(db_url: str) -> None:
    settings = Settings(
        database_url=db_url,
        broker_url=redis_url(BROKER_DB),
        secret_key="test-" + "x" * 40,
        metrics_token="scrape-" + "y" * 30,
    )
    with TestClient(create_app(settings)) as client:
        anonymous = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-" + "z" * 30})
        other_scheme = client.get("/metrics", headers={"Authorization": "Basic scrape-" + "y" * 30})
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-" + "y" * 30})
        health = client.get("/healthz")
    for refused in (anonymous, wrong, other_scheme):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "postcall_calls" not in refused.text
    assert right.status_code == 200
    assert any(family.name.startswith("postcall_calls") for family in text_string_to_metric_families(right.text))
    assert health.status_code == 200  # load balancers probe without credentials
