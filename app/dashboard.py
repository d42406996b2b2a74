"""The figures of the dashboard page: how the operation is doing, over the calls a user may see.

One query per figure over the rollup tables (app/models/rollups.py, kept by database triggers), scoped
by the call visibility rule (a supervisor with a team sees the team's calls) and by a window of days.
"Current" claims are those of each call's current run. Days are UTC calendar days of the call's start
(its hand-over time when the start is unknown); run figures go by the run's start.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, func, null, select
from sqlalchemy.orm import Session

from app.models import CallRollup, ClaimRollup, OpenItemRollup, ReasonRollup, RunRollup
from app.models.counters import STAGE_DURATION_COLUMNS
from app.models.rollups import NO_DUE_DATE
from app.users import Principal, visibility_clause

TOP_REASONS = 8
TOP_OWNER_NAMES = 8
DUE_BUCKETS = ("overdue", "today", "next 7 days", "later", "no date")
REVIEW_OUTCOMES = ("approved", "edited", "rejected", "pending")
OPEN_REVIEW_STATUSES = ("pending", "approved", "edited")


@dataclass(frozen=True)
class ModelQuality:
    model: str
    prompt_version: str
    claims: int
    grounded: int

    @property
    def grounding_rate(self) -> float:
        return self.grounded / self.claims if self.claims else 0.0


@dataclass(frozen=True)
class RunDay:
    day: str
    model: str
    prompt_version: str
    runs: int
    queue_wait_ms: float | None
    llm_ms: float | None
    verify_ms: float | None
    db_ms: float | None
    total_ms: float | None
    cost_usd: float


@dataclass
class Dashboard:
    since: date
    today: date
    days: list[str]
    calls_per_day: dict[str, dict[str, int]]  # day -> state -> calls
    claims: int
    grounded: int
    quality: list[ModelQuality]
    review_outcomes: dict[str, dict[str, int]]  # kind -> review status -> claims
    top_reasons: list[tuple[str, int]]
    open_items: dict[str, dict[str, int]]  # owner -> due bucket -> items
    owner_names: list[tuple[str, int]]
    run_days: list[RunDay] = field(default_factory=list)

    @property
    def grounding_rate(self) -> float:
        return self.grounded / self.claims if self.claims else 0.0

    @property
    def open_item_count(self) -> int:
        return sum(sum(buckets.values()) for buckets in self.open_items.values())

    @property
    def total_calls(self) -> int:
        return sum(sum(states.values()) for states in self.calls_per_day.values())


def _iso_day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _rows_visible_to(principal: Principal, table: Any) -> ColumnElement[bool]:
    """The call visibility rule on a rollup's tenant and team. Rollups carry no agent: an agent (who
    sees only their own calls) sees no rollup rows."""
    return visibility_clause(principal, table.tenant_id, null().cast(String), table.team)


def build_dashboard(session: Session, principal: Principal, days: int = 30, now: datetime | None = None) -> Dashboard:
    """The figures, read from the rollup tables (migration 0010) rather than from claims and runs."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    since = today - timedelta(days=days - 1)

    calls_per_day: dict[str, dict[str, int]] = defaultdict(dict)
    total = func.sum(CallRollup.calls)
    for day, state, count in session.execute(
        select(CallRollup.day, CallRollup.state, total)
        .where(_rows_visible_to(principal, CallRollup), CallRollup.day >= since)
        .group_by(CallRollup.day, CallRollup.state)
        .having(total != 0)
    ):
        calls_per_day[_iso_day(day)][state] = int(count)

    claims_in_scope = and_(_rows_visible_to(principal, ClaimRollup), ClaimRollup.day >= since)
    claims = func.sum(ClaimRollup.claims)
    grounded = func.sum(case((ClaimRollup.grounding_status == "grounded", ClaimRollup.claims), else_=0))
    quality = [
        ModelQuality(model, prompt_version, int(count), int(grounded_count or 0))
        for model, prompt_version, count, grounded_count in session.execute(
            select(ClaimRollup.model, ClaimRollup.prompt_version, claims, grounded)
            .where(claims_in_scope)
            .group_by(ClaimRollup.model, ClaimRollup.prompt_version)
            .having(claims != 0)
            .order_by(ClaimRollup.model, ClaimRollup.prompt_version)
        )
    ]
    review_outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    for kind, status, count in session.execute(
        select(ClaimRollup.kind, ClaimRollup.review_status, claims)
        .where(claims_in_scope)
        .group_by(ClaimRollup.kind, ClaimRollup.review_status)
        .having(claims != 0)
    ):
        review_outcomes[kind][status] = int(count)

    # By the masked text: the dashboard is read by every role but agents, none of them unmasked (and
    # reasons that differ only in a masked number count as one).
    reasons = func.sum(ReasonRollup.claims)
    top_reasons = [
        (reason, int(count))
        for reason, count in session.execute(
            select(ReasonRollup.reason_masked, reasons)
            .where(_rows_visible_to(principal, ReasonRollup), ReasonRollup.day >= since)
            .group_by(ReasonRollup.reason_masked)
            .having(reasons != 0)
            .order_by(reasons.desc(), ReasonRollup.reason_masked)
            .limit(TOP_REASONS)
        )
    ]

    open_items: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(DUE_BUCKETS, 0))
    named: dict[str, int] = defaultdict(int)
    items = func.sum(OpenItemRollup.items)
    for owner, owner_name, due_date, count in session.execute(
        select(OpenItemRollup.owner, OpenItemRollup.owner_name, OpenItemRollup.due_date, items)
        .where(
            _rows_visible_to(principal, OpenItemRollup),
            OpenItemRollup.day >= since,
            OpenItemRollup.review_status.in_(OPEN_REVIEW_STATUSES),
            OpenItemRollup.call_closed == 0,
        )
        .group_by(OpenItemRollup.owner, OpenItemRollup.owner_name, OpenItemRollup.due_date)
        .having(items != 0)
    ):
        due = None if _as_date(due_date) == NO_DUE_DATE else _as_date(due_date)
        open_items[owner or "unknown"][_due_bucket(due, today)] += int(count)
        if owner_name:
            named[owner_name] += int(count)
    owner_names = sorted(named.items(), key=lambda item: (-item[1], item[0]))[:TOP_OWNER_NAMES]

    runs = func.sum(RunRollup.runs)

    def average(stage: str) -> Any:
        count = func.sum(getattr(RunRollup, f"{stage}_count"))
        return func.sum(getattr(RunRollup, f"{stage}_sum")) / case((count == 0, None), else_=count)

    run_days = [
        RunDay(_iso_day(day), model, prompt_version, int(count), _float(queue), _float(llm), _float(verify),
               _float(db), _float(total_ms), float(cost or 0.0))
        for day, model, prompt_version, count, queue, llm, verify, db, total_ms, cost in session.execute(
            select(
                RunRollup.day, RunRollup.model, RunRollup.prompt_version, runs,
                *(average(stage) for stage in STAGE_DURATION_COLUMNS),
                func.sum(RunRollup.cost_usd),
            )
            .where(_rows_visible_to(principal, RunRollup), RunRollup.day >= since)
            .group_by(RunRollup.day, RunRollup.model, RunRollup.prompt_version)
            .having(runs != 0)
            .order_by(RunRollup.day, RunRollup.model, RunRollup.prompt_version)
        )
    ]

    return Dashboard(
        since=since,
        today=today,
        days=[(since + timedelta(days=offset)).isoformat() for offset in range(days)],
        calls_per_day=dict(calls_per_day),
        claims=sum(q.claims for q in quality),
        grounded=sum(q.grounded for q in quality),
        quality=quality,
        review_outcomes=dict(review_outcomes),
        top_reasons=top_reasons,
        open_items={owner: dict(buckets) for owner, buckets in sorted(open_items.items())},
        owner_names=owner_names,
        run_days=run_days,
    )


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _due_bucket(due_date: Any, today: date) -> str:
    if due_date is None:
        return "no date"
    due = due_date if isinstance(due_date, date) else date.fromisoformat(str(due_date))
    if due < today:
        return "overdue"
    if due == today:
        return "today"
    if due <= today + timedelta(days=7):
        return "next 7 days"
    return "later"
