"""Which way a new call's extraction reaches the model: sync (a worker asks now) or batch (it waits for
the next provider batch, app/pipeline/batch.py). Kept apart from the batch machinery so the web app and
the CLI can resolve a mode without importing the provider SDK."""

from __future__ import annotations

from app.config import Settings
from app.errors import ConfigError
from app.models import LlmMode


def resolve_llm_mode(settings: Settings, requested: str | None) -> LlmMode:
    """The mode a new call is stored with: the request's, else POSTCALL_LLM_MODE. Batch needs `openai`."""
    try:
        mode = LlmMode(requested or settings.llm_mode)
    except ValueError as exc:
        raise ConfigError(f"unknown mode {requested!r}: use sync or batch") from exc
    if mode is LlmMode.batch and settings.llm_provider != "openai":
        raise ConfigError(
            "batch mode needs the openai provider (POSTCALL_LLM_PROVIDER=openai); "
            f"the configured provider is {settings.llm_provider!r}"
        )
    return mode
