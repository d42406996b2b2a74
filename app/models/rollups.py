"""Summary tables for analysts and the dashboard, kept by database triggers (migration 0011; on PostgreSQL
rewritten by 0012 and 0016 to write the same rows with fewer and smaller statements).

Counts of calls, current claims, open action items and runs per tenant x UTC day x team x ...; readers
sum them. Each table is a ledger: the triggers on calls, claims and extraction_runs INSERT signed delta
rows in the writer's transaction (never an update, so concurrent writers never wait on each other), and
app/rollups.py folds each key's rows into one now and then. Key columns are never NULL (rows of one key
must group together on both backends): a missing team, model, owner or owner name is '' and a missing
due date is NO_DUE_DATE.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Boolean, Date, Float, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from app.db.base import Base

NO_DUE_DATE = date(9999, 12, 31)


def _key(type_: String | Text | Integer | Date) -> Mapped:  # type: ignore[type-arg]
    return mapped_column(type_)


def _measure(type_: Integer | Float) -> Mapped:  # type: ignore[type-arg]
    return mapped_column(type_, server_default="0")


class Ledger:
    """A surrogate id, the `folded` flag, and the indexes readers and the fold use."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folded: Mapped[bool] = mapped_column(Boolean, server_default=false())

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        second = "agent_id" if name == "rollup_agent_due" else "day"
        return (
            Index(f"ix_{name}_tenant_id_{second}", "tenant_id", second),
            Index(f"ix_{name}_unfolded", "id", postgresql_where=text("NOT folded"), sqlite_where=text("NOT folded")),
        )


class CallRollup(Ledger, Base):
    """Calls by state, per day of the call's start (its hand-over when the start is unknown)."""

    __tablename__ = "rollup_calls"

    tenant_id: Mapped[int] = _key(Integer())
    day: Mapped[date] = _key(Date())
    team: Mapped[str] = _key(String(200))
    state: Mapped[str] = _key(String(32))
    calls: Mapped[int] = _measure(Integer())


class ClaimRollup(Ledger, Base):
    """Current claims by model, prompt version, kind, review status and grounding status."""

    __tablename__ = "rollup_claims"

    tenant_id: Mapped[int] = _key(Integer())
    day: Mapped[date] = _key(Date())
    team: Mapped[str] = _key(String(200))
    model: Mapped[str] = _key(String(200))
    prompt_version: Mapped[str] = _key(String(200))
    kind: Mapped[str] = _key(String(20))
    review_status: Mapped[str] = _key(String(20))
    grounding_status: Mapped[str] = _key(String(20))
    claims: Mapped[int] = _measure(Integer())


class ReasonRollup(Ledger, Base):
    """Current call reasons by lower-cased text (and lower-cased masked text, what analysts see)."""

    __tablename__ = "rollup_reasons"

    tenant_id: Mapped[int] = _key(Integer())
    day: Mapped[date] = _key(Date())
    team: Mapped[str] = _key(String(200))
    reason: Mapped[str] = _key(Text())
    reason_masked: Mapped[str] = _key(Text())
    claims: Mapped[int] = _measure(Integer())


class OpenItemRollup(Ledger, Base):
    """Current action items not rejected, by owner, owner name, due date, review status and whether
    the call is closed (rejected or failed)."""

    __tablename__ = "rollup_open_items"

    tenant_id: Mapped[int] = _key(Integer())
    day: Mapped[date] = _key(Date())
    team: Mapped[str] = _key(String(200))
    owner: Mapped[str] = _key(String(20))
    owner_name: Mapped[str] = _key(String(200))
    due_date: Mapped[date] = _key(Date())
    review_status: Mapped[str] = _key(String(20))
    call_closed: Mapped[int] = _key(Integer())
    items: Mapped[int] = _measure(Integer())


class AgentDueRollup(Ledger, Base):
    """Current dated action items not rejected, by agent and due date (all days)."""

    __tablename__ = "rollup_agent_due"

    tenant_id: Mapped[int] = _key(Integer())
    agent_id: Mapped[str] = _key(String(200))
    due_date: Mapped[date] = _key(Date())
    items: Mapped[int] = _measure(Integer())


class RunRollup(Ledger, Base):
    """Runs per day of the run's start, with stage time sums and counts (averages skip NULLs) and cost."""

    __tablename__ = "rollup_runs"

    tenant_id: Mapped[int] = _key(Integer())
    day: Mapped[date] = _key(Date())
    team: Mapped[str] = _key(String(200))
    provider: Mapped[str] = _key(String(200))
    model: Mapped[str] = _key(String(200))
    prompt_version: Mapped[str] = _key(String(200))
    status: Mapped[str] = _key(String(20))
    runs: Mapped[int] = _measure(Integer())
    cost_usd: Mapped[float] = _measure(Float())
    queue_wait_ms_sum: Mapped[float] = _measure(Float())
    llm_ms_sum: Mapped[float] = _measure(Float())
    verify_ms_sum: Mapped[float] = _measure(Float())
    db_ms_sum: Mapped[float] = _measure(Float())
    total_ms_sum: Mapped[float] = _measure(Float())
    queue_wait_ms_count: Mapped[int] = _measure(Integer())
    llm_ms_count: Mapped[int] = _measure(Integer())
    verify_ms_count: Mapped[int] = _measure(Integer())
    db_ms_count: Mapped[int] = _measure(Integer())
    total_ms_count: Mapped[int] = _measure(Integer())
