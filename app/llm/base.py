"""The provider contract: a transcript and a prompt in, an `Extraction` and its costs out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from app.llm.prompt import PromptTemplate
from app.schemas.extraction import Extraction
from app.schemas.grounding import VerificationReport
from app.schemas.transcript import Transcript


@dataclass(frozen=True)
class Usage:
    """Token accounting and LLM wait, summed over every attempt of a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    llm_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            llm_calls=self.llm_calls + other.llm_calls,
            llm_seconds=self.llm_seconds + other.llm_seconds,
        )


@dataclass
class ProviderResult:
    extraction: Extraction
    usage: Usage = field(default_factory=Usage)
    raw_response: str | None = None


class ExtractionProvider(ABC):
    """Base class of every provider.

    `extract` raises `ProviderTransientError` (retry later), `ProviderPermanentError` (fail now)
    or `ExtractionInvalidError` (the answer stayed unusable); it never returns a placeholder.
    """

    name: ClassVar[str]
    # True when transcript text leaves this process (the pipeline then redacts personal data first).
    sends_data_offsite: ClassVar[bool] = False
    # True when `repair` can re-ask for the claims the verifier rejected.
    supports_repair: ClassVar[bool] = False

    @property
    @abstractmethod
    def model(self) -> str:
        """The model identifier stored on every run."""

    @abstractmethod
    def extract(self, transcript: Transcript, prompt: PromptTemplate) -> ProviderResult:
        """Return the extraction for the whole transcript."""

    def repair(
        self,
        transcript: Transcript,
        prompt: PromptTemplate,
        previous: ProviderResult,
        report: VerificationReport,
    ) -> ProviderResult:
        """Re-ask once for the claims `report` marks ungrounded. Only called when `supports_repair`."""
        raise NotImplementedError(f"provider {self.name!r} does not repair")
