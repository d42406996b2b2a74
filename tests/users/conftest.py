"""Fixtures of the user audit-trail and token-expiry tests: a migrated database (SQLite and PostgreSQL),
the web app on it, and the commands pointed at it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory
from tests.web.world import client_for

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    url: str
    factory: sessionmaker[Session]
    client: TestClient


def _no_broker(call_ids: object) -> int:
    return 0  # these tests hand no calls to workers


@pytest.fixture
def site(db_url: str) -> Iterator[Site]:
    """The web app on a freshly migrated database (both backends), and a session factory beside it."""
    engine = create_db_engine(db_url)
    with client_for(db_url, enqueue=_no_broker) as client:
        yield Site(db_url, make_session_factory(engine), client)
        client.app.state.web.session_factory.kw["bind"].dispose()  # type: ignore[attr-defined]
    engine.dispose()


@pytest.fixture
def cli_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database (both backends) that every command of the test uses."""
    monkeypatch.setenv("POSTCALL_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return db_url


def csrf_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)
