"""Helpers for the hand-off tests: calls processed by the real pipeline (offline provider), users, endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.session import unit_of_work
from app.handoff.endpoints import add_endpoint
from app.handoff.outbox import install_delivery_notifier
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import OutboxEvent, UserRole
from app.pipeline.calls import get_or_create_tenant
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.users import Principal, create_user, principal_of
from tests.support.transcripts import make_transcript

# Wednesday 2026-03-04: "within 5 business days" in the test call resolves to Wednesday 2026-03-11.
CALL_START = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
TENANT = "acme"


@pytest.fixture(autouse=True)
def _no_delivery_notifier() -> Iterator[None]:
    """No test here publishes to a broker after commit unless it installs a notifier itself."""
    install_delivery_notifier(None)
    yield
    install_delivery_notifier(None)


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("POSTCALL_PUBLIC_URL", "https://postcall.example.test/")
    get_settings.cache_clear()
    return get_settings()


def prompt() -> PromptTemplate:
    settings = get_settings()
    return PromptTemplate.load(settings.prompts_dir, settings.prompt_version)


def store_call(factory: sessionmaker[Session], external_id: str, *, tenant: str = TENANT,
               agent_id: str = "A-7", team: str | None = None) -> str:
    transcript = make_transcript(external_id=external_id, agent_id=agent_id)
    metadata = transcript.metadata.model_copy(update={"started_at": CALL_START, "team": team})
    transcript = transcript.model_copy(update={"metadata": metadata})
    with unit_of_work(factory) as session:
        return store_transcript(session, transcript, tenant=tenant, external_id=external_id).call_id


def processed_call(factory: sessionmaker[Session], external_id: str, **kwargs: str | None) -> str:
    call_id = store_call(factory, external_id, **kwargs)  # type: ignore[arg-type]
    process_call(factory, call_id, HeuristicProvider(), prompt())
    return call_id


def make_principal(factory: sessionmaker[Session], name: str, role: UserRole, *, tenant: str = TENANT,
                   agent_id: str | None = None, team: str | None = None) -> tuple[Principal, str]:
    with unit_of_work(factory) as session:
        created = create_user(session, tenant=tenant, name=name, role=role, agent_id=agent_id, team=team)
        return principal_of(created.user, tenant), created.token


def register(factory: sessionmaker[Session], url: str, *, tenant: str = TENANT,
             events: list[str] | None = None) -> tuple[int, str]:
    with unit_of_work(factory) as session:
        tenant_row = get_or_create_tenant(session, tenant)
        created = add_endpoint(session, get_settings(), tenant_id=tenant_row.id, url=url, event_types=events)
        return created.endpoint.id, created.secret


def events_of(factory: sessionmaker[Session], call_id: str) -> list[OutboxEvent]:
    with unit_of_work(factory) as session:
        rows = list(session.scalars(select(OutboxEvent).where(OutboxEvent.call_id == call_id)
                                    .order_by(OutboxEvent.id)).all())
        session.expunge_all()
        return rows
