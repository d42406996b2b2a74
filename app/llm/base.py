"""The provider contract: a transcript and a prompt in, an `Extraction` and its costs out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from app.llm.prompt import PromptTemplate
from app.schemas.extraction import Extraction
from app.schemas.grounding import VerificationReport
from app.schemas.transcript import Transcript
from app.schemas.usage import Usage


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
