"""Shared fixtures: migrated databases (SQLite and real PostgreSQL), sessions, settings, samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, get_settings
from app.db.session import create_db_engine, make_session_factory
from tests.support.services import REDIS_HOST, REDIS_PORT, migrated_pg_database, migrated_sqlite_database

# The local OpenAI-compatible test server (`fake_openai` fixture), usable from every test folder.
pytest_plugins = ["tests.support.fake_openai"]

SAMPLES_DIR = PROJECT_ROOT / "samples"


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own SQLite file and the offline provider unless it says otherwise."""
    monkeypatch.setenv("POSTCALL_DATABASE_URL", f"sqlite:///{tmp_path / 'postcall.db'}")
    monkeypatch.setenv("POSTCALL_LLM_PROVIDER", "heuristic")
    # The test Redis (POSTCALL_TEST_REDIS_PORT), never a fixed port: runs side by side must not share a broker.
    monkeypatch.setenv("POSTCALL_BROKER_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/9")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite_database(str(tmp_path / "migrated.db"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with migrated_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A freshly migrated database; pipeline tests run on both backends."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES_DIR
