"""/healthz and /metrics: content-free, honest about what is down; /metrics behind a token when one is set."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
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
