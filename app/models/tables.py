"""The data model: tenants, users, calls and their extractions, the review audit, hand-off and batches.

Columns are documented for analysts in docs/data-model.md."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.db.base import Base
from app.db.types import UTCDateTime
from app.privacy.mask import mask_text


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_call_id() -> str:
    return uuid.uuid4().hex


def _masked_copy_of(column: str) -> Any:
    """A column default: the masked copy of `column`'s value in the same INSERT (bulk inserts too)."""

    def default(context: DefaultExecutionContext) -> str | None:
        value = context.get_current_parameters().get(column)  # type: ignore[no-untyped-call]
        return None if value is None else mask_text(value)

    return default


def _enum(enum_cls: type[StrEnum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable across SQLite and PostgreSQL,
    # and readable for analysts writing SQL.
    return Enum(enum_cls, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class CallState(StrEnum):
    queued = "queued"
    processing = "processing"
    ready_for_review = "ready_for_review"
    needs_attention = "needs_attention"
    failed = "failed"
    approved = "approved"
    rejected = "rejected"


# The review order: `needs_attention` (unverified items) first, then `ready_for_review`, then every other
# state. Stored on the call (`review_rank`) so an index serves the queue's order.
REVIEW_RANKS = {CallState.needs_attention: 0, CallState.ready_for_review: 1}
OTHER_REVIEW_RANK = len(REVIEW_RANKS)


def review_rank(state: CallState) -> int:
    return REVIEW_RANKS.get(state, OTHER_REVIEW_RANK)


def _review_rank_of_state(context: DefaultExecutionContext) -> int:
    """A column default: the rank of the `state` in the same INSERT."""
    state = context.get_current_parameters().get("state")  # type: ignore[no-untyped-call]
    return review_rank(CallState(state)) if state is not None else review_rank(CallState.queued)


REVIEWED_STATES = frozenset({CallState.approved, CallState.rejected})
TERMINAL_PROCESSING_STATES = frozenset(
    {CallState.ready_for_review, CallState.needs_attention, CallState.approved, CallState.rejected}
)


class RunStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    # A try cut short by a transient failure (429, 5xx, timeout) after the model server had already
    # answered part of it: kept for the tokens and cost it spent; the call is retried.
    interrupted = "interrupted"


class LlmMode(StrEnum):
    """How a call's extraction reaches the model: one request at a time, or through the Batch API."""

    sync = "sync"
    batch = "batch"


class BatchStatus(StrEnum):
    """A batch's lifecycle: `preparing` is ours (assigned, not yet accepted by the provider), `exported`
    too (written for an offline runner such as `vllm run-batch`); the rest are the provider's own
    statuses, stored as it reports them."""

    preparing = "preparing"
    exported = "exported"
    validating = "validating"
    in_progress = "in_progress"
    finalizing = "finalizing"
    completed = "completed"
    failed = "failed"
    expired = "expired"
    cancelling = "cancelling"
    cancelled = "cancelled"


# The provider will not change these any more: their output and error files are final.
FINISHED_BATCH_STATUSES = frozenset(
    {BatchStatus.completed, BatchStatus.failed, BatchStatus.expired, BatchStatus.cancelled}
)


class ReviewStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    edited = "edited"
    rejected = "rejected"


class UserRole(StrEnum):
    agent = "agent"
    supervisor = "supervisor"
    analyst = "analyst"
    admin = "admin"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Calls older than this many days are purged; None uses POSTCALL_RETENTION_DAYS, 0 keeps them.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    # IANA name ("Europe/Berlin"): the zone spoken due phrases ("by Friday") are resolved in.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "user_role"))
    team: Mapped[str | None] = mapped_column(String(200))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Signing out increments it: every browser session issued before stops working (revocable sessions).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Granted by an admin: may unmask card numbers, SSNs and accounts (each unmasking is audited).
    view_pii: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the API token stops working: set at every issue (creation, rotation) from
    # POSTCALL_TOKEN_LIFETIME_DAYS. NULL: it never expires (a lifetime of 0, or a token issued before
    # migration 0029, so that no integration broke at the upgrade).
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class UserEvent(Base):
    """Append-only audit trail of changes to users (who created, deactivated, re-tokened or granted whom
    what), written in the transaction of the change (app/users.py). Never a token or its hash in `detail`.
    No foreign key to users: like review events, an event outlives what it is about. Migration 0029's
    triggers and app/models/guards.py refuse UPDATE and DELETE."""

    __tablename__ = "user_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The user changed, by id and by the name they had then.
    user_id: Mapped[int] = mapped_column(Integer)
    user_name: Mapped[str] = mapped_column(String(200))
    # Who changed it: a user of the API (id and name), or a command (`cli:<OS account>`, no id).
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    # What changed, as {"field": {"from": old, "to": new}} (at creation: the new user's fields).
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Read by tenant (an admin's trail), by tenant and user (one user's history), in id order.
    __table_args__ = (Index("ix_user_events_tenant_user", "tenant_id", "user_id", "id"),)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_call_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    # No index of its own: every query by agent names the tenant (ix_calls_agent_review_order), and an index
    # led by the agent would count other tenants' calls for an analyst's EXPLAIN ANALYZE (migration 0027).
    agent_id: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    language: Mapped[str | None] = mapped_column(String(20))
    source_format: Mapped[str] = mapped_column(String(50))
    source_name: Mapped[str | None] = mapped_column(String(500))
    transcript_hash: Mapped[str] = mapped_column(String(64))
    vendor_hints: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ingest_warnings: Mapped[list[str] | None] = mapped_column(JSON)
    state: Mapped[CallState] = mapped_column(_enum(CallState, "call_state"), default=CallState.queued)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The agent's wording of the case note; NULL: derived from the current items (app/pipeline/note.py).
    case_note: Mapped[str | None] = mapped_column(Text)
    # Batch mode: `llm_mode` is chosen at ingest; `llm_batch_id` is the batch the call waits in (NULL
    # while it waits to be collected, and again once its result is handled). Not a foreign key: batches
    # are never deleted, and SQLite could add one to an existing table only by rebuilding it.
    llm_mode: Mapped[LlmMode] = mapped_column(
        _enum(LlmMode, "llm_mode"), default=LlmMode.sync, server_default=LlmMode.sync.value
    )
    llm_batch_id: Mapped[int | None] = mapped_column(Integer)
    # The latest succeeded run (the "current" extraction), kept by the pipeline so analysts' views need
    # no per-claim "latest run" subquery. No foreign key: runs already reference calls.
    current_run_id: Mapped[int | None] = mapped_column(Integer)
    # `review_rank(state)`, kept with every assignment of `state` (below): the queue's order.
    review_rank: Mapped[int] = mapped_column(
        SmallInteger, default=_review_rank_of_state, server_default=str(OTHER_REVIEW_RANK)
    )
    # Unverified items of the current run nobody has decided on yet: set at persist and on each item
    # decision, so the queue's `flagged` filter is a column test.
    flagged_items: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    utterances: Mapped[list[Utterance]] = relationship(
        back_populates="call", order_by="Utterance.index", cascade="all, delete-orphan", passive_deletes=True
    )
    runs: Mapped[list[ExtractionRun]] = relationship(
        back_populates="call", order_by="ExtractionRun.id", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("state")
    def _keep_review_rank(self, _key: str, value: CallState) -> CallState:
        self.review_rank = review_rank(CallState(value))
        return value

    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id"),
        # What a claim's key to its call and the call's tenant refers to (Claim): the primary key makes the
        # pair unique already, but a foreign key needs a unique index of exactly its columns.
        Index("ix_calls_id_tenant_id", "id", "tenant_id", unique=True),
        # A tenant's calls in one state, oldest-waiting first (a queue filtered on one state, its counts).
        Index("ix_calls_tenant_state_waiting", "tenant_id", "state", "state_changed_at", "id"),
        # The review queue's order (keyset pagination walks it).
        Index("ix_calls_review_order", "tenant_id", "review_rank", "state_changed_at", "id"),
        # An agent's own queue (and the agent filter) in review order; with the state on PostgreSQL, so the
        # agent's per-state counts are an index-only scan.
        Index("ix_calls_agent_review_order", "tenant_id", "agent_id", "review_rank", "state_changed_at", "id",
              postgresql_include=["state"]),
        # The queue's date filter: the call's start, or its ingestion when the start is unknown. On PostgreSQL
        # it carries the state, so the filter's per-state counts are an index-only scan.
        Index("ix_calls_tenant_moment", "tenant_id", text("coalesce(started_at, created_at)"),
              postgresql_include=["started_at", "created_at", "state"]),
        # Pending calls by state and LLM mode, oldest first: the reconciler (sync), the batch collector
        # (batch) and /metrics read their own mode's calls only; attempts and the batch ride along for the
        # scrape's index-only reads (migration 0023).
        Index("ix_calls_state_mode_changed", "state", "llm_mode", "state_changed_at",
              postgresql_include=["attempts", "llm_batch_id"]),
        # Analysts' windows (dashboard, export --since/--until) select a tenant's calls by start, and an
        # analyst's newest calls (ORDER BY started_at DESC LIMIT n) walk it backwards: an analyst's tenant is a
        # constant in the plan (migration 0025). No index leads with the start: its scan would read every
        # tenant's calls and EXPLAIN ANALYZE would count the others' (migration 0027).
        Index("ix_calls_tenant_started", "tenant_id", "started_at"),
        # A batch's calls. Only calls in a batch have an entry: every other call's inserts and state changes
        # (never HOT updates: the state is indexed) skip this index (migration 0016).
        Index("ix_calls_llm_batch_id", "llm_batch_id", postgresql_where=text("llm_batch_id IS NOT NULL"),
              sqlite_where=text("llm_batch_id IS NOT NULL")),
    )


class Utterance(Base):
    __tablename__ = "utterances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    role_confidence: Mapped[float | None] = mapped_column(Float)
    start_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)

    call: Mapped[Call] = relationship(back_populates="utterances")

    __table_args__ = (UniqueConstraint("call_id", "index"),)


class ExtractionRun(Base):
    __tablename__ = "extraction_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    # The call's tenant, copied by every writer: the runs row policy compares it with an analyst's tenant
    # (migration 0025). No foreign key: the call key ties the run to its tenant already, and analytics_runs
    # shows a run only with its call, whose own policy applies.
    tenant_id: Mapped[int] = mapped_column(Integer)
    # call id + transcript hash + prompt version + provider + model: the same work done twice
    # (a redelivered task) collides on the partial unique index below instead of duplicating claims.
    idempotency_key: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(50))
    transcript_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    error: Mapped[str | None] = mapped_column(Text)
    # Deferred: read paths never need it, and it is the widest column of the row.
    raw_response: Mapped[str | None] = mapped_column(Text, deferred=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    queue_wait_ms: Mapped[float | None] = mapped_column(Float)
    llm_ms: Mapped[float | None] = mapped_column(Float)
    verify_ms: Mapped[float | None] = mapped_column(Float)
    db_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float | None] = mapped_column(Float)
    # The worker thread's CPU time for the call (total_ms is wall time: it also counts waits).
    cpu_ms: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The batch (llm_batches.id) whose answer this run used; NULL for a synchronous run.
    llm_batch_id: Mapped[int | None] = mapped_column(Integer)

    call: Mapped[Call] = relationship(back_populates="runs")
    claims: Mapped[list[Claim]] = relationship(
        back_populates="run", order_by="Claim.position", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        # A tenant's runs by start (an analyst's window, its newest runs): led by the tenant, so an analyst's
        # scan never reads another tenant's entries (migration 0027).
        Index("ix_extraction_runs_tenant_started", "tenant_id", "started_at"),
        Index(
            "uq_extraction_runs_succeeded_key",
            "idempotency_key",
            unique=True,
            postgresql_where=text("status = 'succeeded'"),
            sqlite_where=text("status = 'succeeded'"),
        ),
    )


# Outside the class: inside it, `text` is the claim's column.
HAS_DUE_DATE = text("due_date IS NOT NULL")


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("extraction_runs.id", ondelete="CASCADE"), index=True)
    # With `tenant_id`, a foreign key to the call's (id, tenant_id): see `__table_args__`.
    call_id: Mapped[str] = mapped_column(String(32), index=True)
    # The call's tenant, copied: an analyst's count by tenant and time reads claims alone (no join to calls),
    # and the claims row policy compares it with an analyst's tenant.
    tenant_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(20))
    due: Mapped[str | None] = mapped_column(String(200))
    # `due` resolved against the call's start in the tenant's time zone; NULL when it names no date.
    due_date: Mapped[date | None] = mapped_column(Date)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when a time of day was said
    # The person or team the transcript names for the item ("the returns team", "Maria").
    owner_name: Mapped[str | None] = mapped_column(String(200))
    grounding_status: Mapped[str] = mapped_column(String(20))
    grounding_reason: Mapped[str | None] = mapped_column(String(64))
    review_status: Mapped[ReviewStatus] = mapped_column(
        _enum(ReviewStatus, "review_status"), default=ReviewStatus.pending
    )
    # "model" for extracted claims, "reviewer" for items a reviewer added from a transcript selection.
    origin: Mapped[str] = mapped_column(String(20), default="model")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # `text` with card numbers, SSNs and accounts masked: what the analyst views show.
    text_masked: Mapped[str | None] = mapped_column(Text, default=_masked_copy_of("text"))

    run: Mapped[ExtractionRun | None] = relationship(back_populates="claims")
    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="claim", order_by="Evidence.position", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("text")
    def _keep_masked_copy(self, _key: str, value: str) -> str:
        self.text_masked = mask_text(value)
        return value

    __table_args__ = (
        # The claim's tenant is its call's tenant, always: the database refuses anything else (a claim
        # filed under another tenant would show in that tenant's analyst views), and follows a call moved
        # to another tenant. Its call's tenant exists (calls -> tenants), so no key to tenants is needed.
        ForeignKeyConstraint(["call_id", "tenant_id"], ["calls.id", "calls.tenant_id"], ondelete="CASCADE",
                             onupdate="CASCADE"),
        # "What falls due this week", "what is overdue": only action items have a date, so a partial index.
        # Led by the tenant, as the next one, so an analyst's scan reads its own tenant's entries only and
        # EXPLAIN ANALYZE counts no other tenant's items (migration 0027).
        Index(
            "ix_claims_tenant_due_date",
            "tenant_id",
            "due_date",
            postgresql_where=HAS_DUE_DATE,
            sqlite_where=HAS_DUE_DATE,
        ),
        # An analyst's newest items (ORDER BY created_at DESC LIMIT n, or one day's), as for calls.
        Index("ix_claims_tenant_created", "tenant_id", "created_at"),
    )


class Evidence(Base):
    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    # The claim's tenant, copied by every writer: the evidence row policy compares it with an analyst's
    # tenant (migration 0025). No foreign key, as for runs: analytics_evidence shows a span only with its claim.
    tenant_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    cited_utterance: Mapped[int] = mapped_column(Integer)
    utterance_index: Mapped[int | None] = mapped_column(Integer)
    char_start: Mapped[int | None] = mapped_column(Integer)
    char_end: Mapped[int | None] = mapped_column(Integer)
    quote: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str | None] = mapped_column(String(64))
    # `quote` with card numbers, SSNs and accounts masked: what the analyst views show.
    quote_masked: Mapped[str | None] = mapped_column(Text, default=_masked_copy_of("quote"))

    claim: Mapped[Claim] = relationship(back_populates="evidence")

    @validates("quote")
    def _keep_masked_copy(self, _key: str, value: str) -> str:
        self.quote_masked = mask_text(value)
        return value


class AnalystRole(Base):
    """A PostgreSQL login role made by `postcall analysts grant`: the analyst views show it one tenant."""

    __tablename__ = "analyst_roles"

    role_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The role's oid (pg_roles.oid) when it was granted: the binding holds for that role only, not for a
    # later role of the same name (migration 0025). NULL for a binding whose role was gone at the upgrade.
    role_oid: Mapped[int | None] = mapped_column(BigInteger)


class ReviewEvent(Base):
    """Append-only audit trail. No foreign key to calls: the event outlives a hard-deleted call."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Indexed as the first column of ix_review_events_tenant_created (migration 0027).
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(32), index=True)
    claim_id: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # Analysts ask for the decisions of a time window (their own tenant's: led by the tenant, migration 0027).
    __table_args__ = (Index("ix_review_events_tenant_created", "tenant_id", "created_at"),)


# ------------------------------------------------------------------------------------ hand-off


# The hand-off tables' ids (migration 0026): every event fans out to a delivery per endpoint and every
# delivery to its attempts, so 32 bits run out within years. SQLite's INTEGER PRIMARY KEY is 64-bit already,
# and only it makes the rowid the key (a BIGINT key would not be filled in).
BIG_ID = BigInteger().with_variant(Integer, "sqlite")
# The largest BIG_ID (PostgreSQL's bigint; SQLite's integer keys are 64-bit too): the bound of every API and
# CLI argument naming such a row, beyond which a value is refused (422), never sent to the database.
MAX_BIG_ID = 2**63 - 1


class OutboxEvent(Base):
    """An event written in the same transaction as the state change it reports (transactional outbox).

    No foreign key to calls: `call.deleted` outlives its call. `payload` is the whole webhook body
    (`type`, `timestamp`, `data` = the `postcall.call.v1` record) as it was at the change. The pull feed
    orders by `id`; app/handoff/feed.py explains why that is commit order when it reads.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(32), index=True)
    # Copied from the call so the feed can apply the same visibility rules after the call is gone.
    agent_id: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_outbox_feed", "tenant_id", "id"),)


class OutboxPurgeMark(Base):
    """Per tenant, the id of the newest event of that tenant the hand-off's retention purge deleted: a feed
    reader of the tenant whose cursor is older may have missed events (410); one at or past it missed none,
    whatever other tenants' events were deleted and whatever gaps the id sequence has (migration 0028)."""

    __tablename__ = "outbox_purge_marks"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    purged_through: Mapped[int] = mapped_column(BIG_ID)


class WebhookEndpoint(Base):
    """A tenant's receiver. The signing secret is stored encrypted (HMAC needs the plain secret)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    # NULL: every event type.
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # After a rotation the old secret signs too, until it expires, so receivers can switch without a gap.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    # Given up (retry period over, a client error repeated, endpoint gone): visible and replayable.
    dead = "dead"


class WebhookDelivery(Base):
    """One event to one endpoint. Its webhook-id is the event's id, the same on every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("outbox.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"),
                                                   default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Retries stop here (the event's time plus the retry period; a replay starts a new period).
    retry_until: Mapped[datetime] = mapped_column(UTCDateTime())
    # A worker sending this delivery holds it until then; a worker killed mid-send lets it lapse.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the sweep last handed it to the workers (so one sweep does not queue it again and again).
    swept_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("outbox_id", "endpoint_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "call_id", "status", "outbox_id"),
    )


class WebhookAttempt(Base):
    """Every HTTP attempt: written before the request goes out, completed when it returns."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BIG_ID, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                             index=True)
    # in_flight | succeeded | retry | dead | lost (the worker died mid-send)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LlmBatch(Base):
    """One provider batch job: a JSONL file of chat-completion requests and what became of it.

    The database is the batch's memory: a collector or poller killed between steps resumes from here.
    """

    __tablename__ = "llm_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(50))
    # A BatchStatus value; a plain string so an unknown status from the provider is stored, not refused.
    status: Mapped[str] = mapped_column(String(20), default=BatchStatus.preparing.value)
    provider_batch_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    input_file_id: Mapped[str | None] = mapped_column(String(200))
    output_file_id: Mapped[str | None] = mapped_column(String(200))
    error_file_id: Mapped[str | None] = mapped_column(String(200))
    call_count: Mapped[int] = mapped_column(Integer, default=0)
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    input_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # The provider's request_counts, as last polled.
    completed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A collector or poller working on the batch holds it until then; a killed one's lease runs out.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every call of the batch handled (stored, failed or put back for the next batch).
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
