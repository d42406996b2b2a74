"""ORM tables only. Every query on tenant data filters by `tenant_id`."""

from app.models import guards as _guards  # noqa: F401  (registers the append-only audit guards)
from app.models.tables import (
    BatchStatus,
    Call,
    CallState,
    Claim,
    Evidence,
    ExtractionRun,
    LlmBatch,
    LlmMode,
    ReviewEvent,
    ReviewStatus,
    RunStatus,
    Tenant,
    User,
    UserRole,
    Utterance,
)

__all__ = [
    "BatchStatus",
    "Call",
    "CallState",
    "Claim",
    "Evidence",
    "ExtractionRun",
    "LlmBatch",
    "LlmMode",
    "ReviewEvent",
    "ReviewStatus",
    "RunStatus",
    "Tenant",
    "User",
    "UserRole",
    "Utterance",
]
