"""Settings (app/config.py): every setting from the environment or `.env`, the OpenAI SDK's names
included; secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import DEV_SECRET_KEY, Settings, check_setting_names
from app.errors import ConfigError
from app.health import check_provider

OPENAI_NAMES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "POSTCALL_OPENAI_API_KEY", "POSTCALL_OPENAI_BASE_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OpenAI or secret-key variable set, and a working directory whose `.env` the test writes."""
    for name in (*OPENAI_NAMES, "POSTCALL_SECRET_KEY", "POSTCALL_LLM_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".env"


def test_openai_key_and_base_url_come_from_dot_env(clean_env: Path) -> None:
    clean_env.write_text("OPENAI_API_KEY=sk-from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:8001/v1\n"
                         "POSTCALL_LLM_PROVIDER=openai\n")
    settings = Settings()
    assert settings.openai_key == "sk-from-dotenv"
    assert settings.openai_base_url == "http://127.0.0.1:8001/v1"
    check = check_provider(settings)
    assert check.ok and "http://127.0.0.1:8001/v1" in check.detail


def test_openai_names_from_the_environment_win_over_dot_env(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env.write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert Settings().openai_key == "sk-from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    clean_env.write_text("")
    monkeypatch.setenv("POSTCALL_OPENAI_API_KEY", "sk-prefixed")
    assert Settings().openai_key == "sk-prefixed"


def test_no_key_is_an_empty_key_and_the_openai_health_check_fails(clean_env: Path) -> None:
    settings = Settings(llm_provider="openai")
    assert settings.openai_key == "" and settings.openai_base_url is None
    check = check_provider(settings)
    assert not check.ok and "OPENAI_API_KEY" in check.detail


def test_secrets_never_show_in_the_settings_repr(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTCALL_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-printed")
    clean_env.write_text("POSTCALL_METRICS_TOKEN=scrape-never-printed\nPOSTCALL_WEBHOOK_SECRETS_KEY=fernet-never\n")
    settings = Settings()
    shown = repr(settings) + str(settings.model_dump())
    for secret in ("k" * 48, "sk-never-printed", "scrape-never-printed", "fernet-never"):
        assert secret not in shown
    assert settings.secret_key.get_secret_value() == "k" * 48
    assert settings.metrics_token is not None and settings.metrics_token.get_secret_value() == "scrape-never-printed"
    assert not settings.secret_key_is_unsafe


@pytest.mark.parametrize("key", [DEV_SECRET_KEY, "", "a", " " * 40, "fifteen-chars-x"])
def test_the_default_and_an_empty_secret_key_are_unsafe(clean_env: Path, key: str) -> None:
    assert Settings(secret_key=key).secret_key_is_unsafe


def test_a_misspelled_setting_is_refused_with_the_nearest_name(clean_env: Path) -> None:
    """A POSTCALL_* variable no setting reads would be ignored and the default used in its place (a
    misspelled database URL: every call stored in a local SQLite file)."""
    with pytest.raises(ConfigError, match=r"POSTCALL_DATABSE_URL is not a setting \(did you mean "
                                          r"POSTCALL_DATABASE_URL\?\)"):
        check_setting_names({"POSTCALL_DATABSE_URL": "postgresql+psycopg://db/postcall"})
    with pytest.raises(ConfigError, match=r"POSTCALL_NOTHING_LIKE_IT is not a setting$"):
        check_setting_names({"POSTCALL_NOTHING_LIKE_IT": "1"})
    clean_env.write_text("POSTCALL_LLM_PROVDER=openai\n")  # .env is read too
    with pytest.raises(ConfigError, match="POSTCALL_LLM_PROVDER"):
        check_setting_names({})
    clean_env.write_text("POSTCALL_LLM_PROVIDER=openai\n")
    # Every setting by its name in any case, the SDK's names, other programs' variables and the test
    # suite's and benchmarks' own switches pass.
    known = {f"POSTCALL_{name.upper()}": "x" for name in Settings.model_fields}
    check_setting_names({**known, "postcall_database_url": "x", "OPENAI_API_KEY": "x", "PATH": "/bin",
                         "POSTCALL_TEST_PG_PORT": "5432", "POSTCALL_BENCH_PROBE_FILE": "x", "POSTCALL_FAULT_KILLS": "3",
                         "POSTCALL_UPDATE_SCREENSHOTS": "1"})
