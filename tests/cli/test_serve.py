"""`postcall serve` (app/cli/serve.py): the web app for the configured database, never with a forgeable
session key unless `--dev`."""

from __future__ import annotations

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
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



def session_cookie_secure(served_app: object) -> bool:
    """Whether the app uvicorn was handed marks its session cookie Secure."""
    assert isinstance(served_app, FastAPI)
    (session_middleware,) = [m for m in served_app.user_middleware if m.cls is SessionMiddleware]
    return bool(session_middleware.kwargs["https_only"])


@pytest.fixture
def serving_key(served: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """`served`, with a real secret key and neither a metrics token nor POSTCALL_HTTPS_ONLY in the environment."""
    monkeypatch.setenv("POSTCALL_SECRET_KEY", SERVER_KEY)
    monkeypatch.delenv("POSTCALL_METRICS_TOKEN", raising=False)
    # Set (not deleted) so that what `serve --reload` writes there is undone after the test.
    monkeypatch.setenv("POSTCALL_HTTPS_ONLY", "false")
    get_settings.cache_clear()
    return served


def test_serve_on_every_interface_warns_about_open_metrics_and_a_cookie_without_secure(
    serving_key: dict[str, object],
) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output  # warned, not refused: a TLS proxy in front is a real setup
    assert isinstance(serving_key["app"], FastAPI) and serving_key["host"] == "0.0.0.0"
    warnings = [line for line in result.output.splitlines() if "warning:" in line]
    assert len(warnings) == 2, result.output
    assert "/metrics" in warnings[0] and "POSTCALL_METRICS_TOKEN" in warnings[0]
    assert "Secure" in warnings[1] and "POSTCALL_HTTPS_ONLY" in warnings[1] and "--https-only" in warnings[1]
    assert not session_cookie_secure(serving_key["app"])


def test_serve_on_loopback_or_with_both_settings_warns_about_nothing(
    serving_key: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    local = runner.invoke(app, ["serve"])
    assert local.exit_code == 0, local.output
    assert "warning" not in local.output
    monkeypatch.setenv("POSTCALL_METRICS_TOKEN", "scrape-token")
    monkeypatch.setenv("POSTCALL_HTTPS_ONLY", "true")
    get_settings.cache_clear()
    guarded = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert guarded.exit_code == 0, guarded.output
    assert "warning" not in guarded.output
    # POSTCALL_HTTPS_ONLY is the flag's default: the cookie is Secure without --https-only.
    assert session_cookie_secure(serving_key["app"])
    overridden = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--no-https-only"])
    assert overridden.exit_code == 0 and "Secure" in overridden.output
    assert not session_cookie_secure(serving_key["app"])


def test_serve_with_reload_hands_the_cookie_flag_to_the_reloaded_app(serving_key: dict[str, object]) -> None:
    # The reloader builds the app in a child process from the settings: a flag given here must reach it.
    result = runner.invoke(app, ["serve", "--reload", "--https-only", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert serving_key["app"] == "app.web.app:create_app"
    assert "Secure" not in result.output
    get_settings.cache_clear()
    assert get_settings().https_only is True  # what the reloaded process reads
