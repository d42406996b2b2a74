"""ORM tables only. Every query on tenant data filters by `tenant_id`."""

from app.models import guards as _guards  # noqa: F401  (registers the append-only audit guards)
from app.models.tables import (
    Call,
    CallState,
    Claim,
    DeliveryStatus,
    Evidence,
    ExtractionRun,
    OutboxEvent,
    ReviewEvent,
    ReviewStatus,
    RunStatus,
    Tenant,
    User,
    UserRole,
    Utterance,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "Call",
    "CallState",
    "Claim",
    "DeliveryStatus",
    "Evidence",
    "ExtractionRun",
    "OutboxEvent",
    "ReviewEvent",
    "ReviewStatus",
    "RunStatus",
    "Tenant",
    "User",
    "UserRole",
    "Utterance",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
