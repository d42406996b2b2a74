"""`postcall serve` (app/cli/serve.py): the web app for the configured database, never with a forgeable
session key unless `--dev`."""

from __future__ import annotations

import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from app.cli import app
from app.config import DEV_SECRET_KEY, get_settings

runner = CliRunner()
SERVER_KEY = "test-serve-" + "k" * 40


@pytest.fixture
def served(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What uvicorn was asked to run (nothing listens: the test needs no port)."""
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(app=app, **options))
    return seen


def test_serve_runs_the_app_for_the_configured_database(
    served: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTCALL_SECRET_KEY", SERVER_KEY)
    get_settings.cache_clear()
    result = runner.invoke(app, ["serve", "--port", "8123", "--https-only"])
    assert result.exit_code == 0, result.output
    assert isinstance(served.pop("app"), FastAPI)
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--reload"])
    assert result.exit_code == 0, result.output
    assert served.pop("app") == "app.web.app:create_app"
    assert served["factory"] is True and served["reload"] is True


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, ""], ids=["default", "empty"])
def test_serve_refuses_a_default_or_empty_secret_key_unless_dev(
    served: dict[str, object], monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("POSTCALL_SECRET_KEY", key)
    get_settings.cache_clear()
    refused = runner.invoke(app, ["serve"])
    assert refused.exit_code == 2
    assert served == {}
    message = refused.output.strip()
    assert len(message.splitlines()) == 1
    assert "POSTCALL_SECRET_KEY" in message and "--dev" in message
    assert DEV_SECRET_KEY not in message  # the error names the setting, never echoes a secret
    allowed = runner.invoke(app, ["serve", "--dev"])
    assert allowed.exit_code == 0, allowed.output
    assert isinstance(served["app"], FastAPI)

