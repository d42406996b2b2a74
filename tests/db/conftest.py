"""Fixtures of the migration tests: empty databases, and analyst role names dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.services import PG_HOST, PG_PORT, PG_USER, temporary_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet (the shared fixtures' are migrated to the head)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with temporary_pg_database() as url:
        yield url


@pytest.fixture
def role_name() -> Iterator[str]:
    """An analyst role's name (roles are cluster-wide: dropped afterwards, whatever happened)."""
    name = f"pc_test_analyst_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP ROLE IF EXISTS "{name}"')
