"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest

from app.config import get_settings


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database that every command of the test uses (POSTCALL_DATABASE_URL)."""
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    return sqlite_url
