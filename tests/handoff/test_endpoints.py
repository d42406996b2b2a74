"""Endpoint registration (app/handoff/endpoints.py): the limit under concurrency, allowed networks."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.session import unit_of_work
from app.handoff.endpoints import WebhookInputError, add_endpoint
from app.handoff.urls import WebhookUrlError
from app.models import WebhookEndpoint
from app.pipeline.calls import get_or_create_tenant
from tests.handoff.conftest import store_call


@pytest.fixture
def two_endpoints_at_most(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("POSTCALL_WEBHOOK_MAX_ENDPOINTS", "2")
    get_settings.cache_clear()
    return get_settings()


def test_two_admins_adding_at_once_never_pass_the_endpoint_limit(
    session_factory: sessionmaker[Session], two_endpoints_at_most: Settings
) -> None:
    # Both counted one endpoint below the limit before either committed, and both added one: the limit
    # was passed by one per concurrent admin (on SQLite still, after the first fix, until the count took the
    # database's write lock first).
    pg_factory = session_factory
    with unit_of_work(pg_factory) as session:
        tenant_id = get_or_create_tenant(session, "acme").id
        add_endpoint(session, two_endpoints_at_most, tenant_id=tenant_id, url="http://127.0.0.1:9/first")
    outcome: list[object] = []
    first = pg_factory()
    add_endpoint(first, two_endpoints_at_most, tenant_id=tenant_id, url="http://127.0.0.1:9/second")  # not committed

    def second_admin() -> None:
        try:
            with unit_of_work(pg_factory) as session:
                add_endpoint(session, two_endpoints_at_most, tenant_id=tenant_id, url="http://127.0.0.1:9/third")
            outcome.append("added")
        except WebhookInputError as error:
            outcome.append(error)

    other = threading.Thread(target=second_admin)
    other.start()
    other.join(1.0)
    assert other.is_alive(), "the second admin counted while the first one's endpoint was uncommitted"
    first.commit()
    first.close()
    other.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], WebhookInputError), outcome
    assert "POSTCALL_WEBHOOK_MAX_ENDPOINTS" in str(outcome[0])
    with unit_of_work(pg_factory) as session:
        active = session.scalar(select(func.count()).select_from(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.active.is_(True)))
    assert active == 2


def test_the_limit_lock_leaves_the_tenants_other_writes_alone(
    pg_factory: sessionmaker[Session], two_endpoints_at_most: Settings
) -> None:
    # The lock is FOR NO KEY UPDATE: a call stored for the tenant (its key check takes FOR KEY SHARE on
    # the tenant's row) goes on while an admin's registration is open.
    with unit_of_work(pg_factory) as session:
        tenant_id = get_or_create_tenant(session, "acme").id
    admin = pg_factory()
    add_endpoint(admin, two_endpoints_at_most, tenant_id=tenant_id, url="http://127.0.0.1:9/first")
    stored: list[str] = []
    writer = threading.Thread(target=lambda: stored.append(store_call(pg_factory, "while-admin-adds")))
    writer.start()
    writer.join(10)
    admin.rollback()
    admin.close()
    assert stored, "storing a call waited for the admin's open registration"


def test_an_endpoint_in_an_allowed_network_is_registered_and_no_other_private_one(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    get_settings.cache_clear()
    settings = get_settings()
    with unit_of_work(session_factory) as session:
        tenant_id = get_or_create_tenant(session, "acme").id
        added = add_endpoint(session, settings, tenant_id=tenant_id, url="https://127.0.0.1:8443/crm")
        assert added.endpoint.url == "https://127.0.0.1:8443/crm"
        with pytest.raises(WebhookUrlError, match="POSTCALL_WEBHOOK_ALLOWED_NETWORKS"):
            add_endpoint(session, settings, tenant_id=tenant_id, url="https://10.1.2.3/crm")
