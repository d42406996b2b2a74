"""Per-process resources for workers and CLI commands (database sessions, provider, prompt), built lazily and once."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.session import get_engine, make_session_factory
from app.llm.base import ExtractionProvider
from app.llm.prompt import PromptTemplate


@dataclass
class AppContext:
    settings: Settings
    provider_name: str | None = None

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_session_factory(get_engine(self.settings.database_url))

    @cached_property
    def provider(self) -> ExtractionProvider:
        from app.llm.registry import build_provider

        return build_provider(self.provider_name or self.settings.llm_provider, self.settings)

    @cached_property
    def prompt(self) -> PromptTemplate:
        return PromptTemplate.load(self.settings.prompts_dir, self.settings.prompt_version)


_context: AppContext | None = None
_context_lock = threading.Lock()


def get_context() -> AppContext:
    """The worker process's context (threads share it; the provider's client is thread-safe)."""
    global _context
    with _context_lock:
        if _context is None:
            _context = AppContext(get_settings())
            # Resolve eagerly under the lock so concurrent threads never build two providers.
            _ = _context.session_factory, _context.provider, _context.prompt
        return _context


def reset_context() -> None:
    global _context
    with _context_lock:
        _context = None
