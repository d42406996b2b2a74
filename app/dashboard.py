"""The figures of the dashboard page: how the operation is doing, over the calls a user may see.

Plain queries, one per figure, scoped by `visible_calls_clause` (a supervisor with a team sees the
team's calls) and by a window of days. "Current" claims are those of each call's current run. Days are
UTC calendar days of the call's start (its hand-over time when the start is unknown).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Select, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from app.models import Call, Claim, ExtractionRun
from app.users import Principal, visible_calls_clause

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


def _day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as a value both backends group by."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _iso_day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def build_dashboard(session: Session, principal: Principal, days: int = 30, now: datetime | None = None) -> Dashboard:
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    since = today - timedelta(days=days - 1)
    since_instant = datetime(since.year, since.month, since.day, tzinfo=UTC)
    call_moment = func.coalesce(Call.started_at, Call.created_at)
    # Spelled out rather than `call_moment >= since`, so (tenant_id, started_at) can serve both branches.
    in_window = or_(Call.started_at >= since_instant, and_(Call.started_at.is_(None), Call.created_at >= since_instant))
    in_scope = and_(visible_calls_clause(principal), in_window)
    call_day = _day(session, call_moment)

    calls_per_day: dict[str, dict[str, int]] = defaultdict(dict)
    for day, state, count in session.execute(
        select(call_day, Call.state, func.count()).where(in_scope).group_by(call_day, Call.state)
    ):
        calls_per_day[_iso_day(day)][state.value] = count

    def current_claims(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Claim)
            # By run id alone (a run belongs to one call): joining on call id too makes PostgreSQL multiply
            # the two columns' selectivities and plan for one row.
            .join(Call, Claim.run_id == Call.current_run_id)
            .where(in_scope)
        )

    grounded_flag = case((Claim.grounding_status == "grounded", 1), else_=0)
    quality = [
        ModelQuality(model, prompt_version, total, int(grounded or 0))
        for model, prompt_version, total, grounded in session.execute(
            current_claims(ExtractionRun.model, ExtractionRun.prompt_version, func.count(), func.sum(grounded_flag))
            .join(ExtractionRun, ExtractionRun.id == Claim.run_id)
            .group_by(ExtractionRun.model, ExtractionRun.prompt_version)
            .order_by(ExtractionRun.model, ExtractionRun.prompt_version)
        )
    ]

    # Review outcomes, reasons and open items in one pass over the window's current claims: one row per
    # distinct (kind, review status, reason text, owner, owner name, due date, call closed).
    reason_text = case((Claim.kind == "reason", func.lower(Claim.text)), else_=None)
    call_closed = case((Call.state.in_(["rejected", "failed"]), 1), else_=0)
    review_outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    reasons: dict[str, int] = defaultdict(int)
    open_items: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(DUE_BUCKETS, 0))
    named: dict[str, int] = defaultdict(int)
    group = (Claim.kind, Claim.review_status, reason_text, Claim.owner, Claim.owner_name, Claim.due_date, call_closed)
    for kind, status, reason, owner, owner_name, due_date, closed, count in session.execute(
        current_claims(*group, func.count()).group_by(*group)
    ):
        outcomes = review_outcomes[kind]
        outcomes[status.value] = outcomes.get(status.value, 0) + count
        if reason is not None:
            reasons[reason] += count
        if kind == "action_item" and status.value in OPEN_REVIEW_STATUSES and not closed:
            open_items[owner or "unknown"][_due_bucket(due_date, today)] += count
            if owner_name:
                named[owner_name] += count
    top_reasons = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    owner_names = sorted(named.items(), key=lambda item: (-item[1], item[0]))[:TOP_OWNER_NAMES]

    run_day = _day(session, ExtractionRun.started_at)
    run_days = [
        RunDay(_iso_day(day), model, prompt_version, runs, queue, llm, verify, db, total, float(cost or 0.0))
        for day, model, prompt_version, runs, queue, llm, verify, db, total, cost in session.execute(
            select(
                run_day, ExtractionRun.model, ExtractionRun.prompt_version, func.count(),
                func.avg(ExtractionRun.queue_wait_ms), func.avg(ExtractionRun.llm_ms),
                func.avg(ExtractionRun.verify_ms), func.avg(ExtractionRun.db_ms), func.avg(ExtractionRun.total_ms),
                func.sum(ExtractionRun.cost_usd),
            )
            .join(Call, Call.id == ExtractionRun.call_id)
            .where(visible_calls_clause(principal), ExtractionRun.started_at >= since_instant)
            .group_by(run_day, ExtractionRun.model, ExtractionRun.prompt_version)
            .order_by(run_day, ExtractionRun.model, ExtractionRun.prompt_version)
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
