"""ORM tables only. Every query on tenant data filters by `tenant_id`."""

from app.models import guards as _guards  # noqa: F401  (registers the append-only audit guards)
from app.models.tables import (
    AnalystRole,
    Call,
    CallState,
    Claim,
    Evidence,
    ExtractionRun,
    ReviewEvent,
    ReviewStatus,
    RunStatus,
    Tenant,
    User,
    UserRole,
    Utterance,
)

__all__ = [
    "AnalystRole",
    "Call",
    "CallState",
    "Claim",
    "Evidence",
    "ExtractionRun",
    "ReviewEvent",
    "ReviewStatus",
    "RunStatus",
    "Tenant",
    "User",
    "UserRole",
    "Utterance",
]
