"""Provider names to provider instances. Imports are lazy: choosing `heuristic` never loads the SDK."""

from __future__ import annotations

from app.config import Settings
from app.errors import ConfigError
from app.llm.base import ExtractionProvider

PROVIDER_NAMES = ("heuristic", "openai")


def build_provider(name: str, settings: Settings) -> ExtractionProvider:
    """The provider called `name`, configured from `settings`. Builds no network client yet."""
    normalized = name.strip().lower()
    if normalized == "heuristic":
        from app.llm.heuristic import HeuristicProvider

        return HeuristicProvider()
    if normalized == "openai":
        from app.llm.openai_provider import OpenAIProvider

        return OpenAIProvider(settings)
    raise ConfigError(f"unknown LLM provider {name!r}; choose one of: {', '.join(PROVIDER_NAMES)}")
