"""Shared fixtures: migrated databases (SQLite and real PostgreSQL), sessions, settings, samples."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

# libpq tries GSSAPI encryption first by default, and its Kerberos setup is not safe when threads connect at
# once: a CI run's database-copier thread died in PQconnectPoll with a segmentation fault while the main
# thread connected. The local server has no GSSAPI; every connection of the run (and of the workers and
# servers it starts) skips it.
os.environ.setdefault("PGGSSENCMODE", "disable")

from app.config import PROJECT_ROOT, get_settings
from app.db.session import create_db_engine, make_session_factory
from tests.support.services import (
    drop_pg_database_if_exists,
    migrated_pg_database,
    migrated_sqlite_database,
    redis_address,
    shared_pg_template_name,
    use_worker_redis,
)

# The local OpenAI-compatible test server (`fake_openai` fixture), usable from every test folder.
pytest_plugins = ["tests.support.fake_openai"]

SAMPLES_DIR = PROJECT_ROOT / "samples"


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker gets a Redis server of its own: tests flush databases and count the server's
    connections, which would race with another worker's tests on a shared one."""
    if not hasattr(config, "workerinput"):
        return
    if shutil.which("redis-server") is None:
        use_worker_redis(None, missing="redis-server is not installed; under pytest-xdist (-n) every worker "
                                       "starts its own Redis with it (or run without -n)")
        return
    from tests.support.private_redis import start_private_redis  # after pytest_plugins: asserts rewritten

    server = start_private_redis()
    config.add_cleanup(server.stop)
    use_worker_redis(server.port)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist's controller, for each worker it starts: the workers share one migrated PostgreSQL
    template (tests/support/services.py), dropped here once every worker has finished."""
    name = shared_pg_template_name(node.workerinput["testrunuid"])
    if name not in _shared_templates:
        _shared_templates.add(name)
        node.config.add_cleanup(lambda: drop_pg_database_if_exists(name))


_shared_templates: set[str] = set()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own SQLite file and the offline provider unless it says otherwise."""
    monkeypatch.setenv("POSTCALL_DATABASE_URL", f"sqlite:///{tmp_path / 'postcall.db'}")
    monkeypatch.setenv("POSTCALL_LLM_PROVIDER", "heuristic")
    # The test Redis (POSTCALL_TEST_REDIS_PORT, or the xdist worker's own), never a fixed port: runs side by
    # side must not share a broker.
    host, port = redis_address()
    monkeypatch.setenv("POSTCALL_BROKER_URL", f"redis://{host}:{port}/9")
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
def pg_factory(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on a freshly migrated PostgreSQL database, for tests of PostgreSQL alone."""
    engine = create_db_engine(postgres_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES_DIR
