"""Analysts' routes: the dashboard page (supervisors, analysts, admins) and GET /api/export (analysts,
admins). Both read only the caller's tenant; a supervisor with a team sees the team's calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from app.dashboard import DUE_BUCKETS, REVIEW_OUTCOMES, Dashboard, build_dashboard
from app.export import (
    MEDIA_TYPES,
    ExportError,
    ExportFormat,
    ExportWindow,
    export_bytes,
    parquet_available,
    parse_instant,
)
from app.models import CallState, UserRole
from app.users import Principal
from app.web.api import ERRORS, FORBIDDEN
from app.web.charts import share_bars, stacked_columns
from app.web.deps import ApiUser, DbSession, PageUser, check_api_query_parameters, web_state
from app.web.pages import render
from app.web.schemas import NO_NUL_PATTERN

DASHBOARD_ROLES = frozenset({UserRole.supervisor, UserRole.analyst, UserRole.admin})
EXPORT_ROLES = frozenset({UserRole.analyst, UserRole.admin})
MAX_DASHBOARD_DAYS = 366
CALL_STATE_ORDER = [state.value for state in CallState]

pages_router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", dependencies=[Depends(check_api_query_parameters)])


@pages_router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    principal: PageUser,
    db: DbSession,
    days: Annotated[int, Query(ge=1, le=MAX_DASHBOARD_DAYS)] = 30,
) -> Response:
    principal.require(principal.role in DASHBOARD_ROLES, "see the dashboard")
    data = build_dashboard(db, principal, days)
    return render(request, "dashboard.html", {
        "user": principal,
        "data": data,
        "days": days,
        "calls_chart": stacked_columns(data.days, data.calls_per_day, CALL_STATE_ORDER, class_prefix="state-",
                                       label_every=max(days // 6, 1)),
        "review_chart": share_bars(data.review_outcomes, REVIEW_OUTCOMES),
        "latency_chart": stacked_columns(data.days, _stage_latency(data), list(STAGES), class_prefix="series-",
                                         by_position=True, unit=" ms", label_every=max(days // 6, 1), height=160),
        "cost_chart": stacked_columns(
            data.days, _per_day(data, "cost_usd"), sorted({f"{r.model} {r.prompt_version}" for r in data.run_days}),
            class_prefix="series-", by_position=True, unit=" $", label_every=max(days // 6, 1), height=160,
        ),
        "due_buckets": DUE_BUCKETS,
    })  # fmt: skip


STAGES = {"queue wait": "queue_wait_ms", "llm": "llm_ms", "verify": "verify_ms", "db": "db_ms"}


def _stage_latency(data: Dashboard) -> dict[str, dict[str, float]]:
    """Per day, the mean time a run spent in each stage (runs of every model weighted by their count)."""
    sums: dict[str, dict[str, float]] = {}
    runs: dict[str, int] = {}
    for run_day in data.run_days:
        runs[run_day.day] = runs.get(run_day.day, 0) + run_day.runs
        day = sums.setdefault(run_day.day, dict.fromkeys(STAGES, 0.0))
        for stage, attribute in STAGES.items():
            day[stage] += float(getattr(run_day, attribute) or 0.0) * run_day.runs
    return {day: {stage: total / runs[day] for stage, total in stages.items()} for day, stages in sums.items()}


def _per_day(data: Dashboard, attribute: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for run_day in data.run_days:
        series = f"{run_day.model} {run_day.prompt_version}"
        out.setdefault(run_day.day, {})[series] = float(getattr(run_day, attribute) or 0.0)
    return out


@api_router.get(
    "/export",
    tags=["analysts"],
    summary="Stream the tenant's current extraction (calls, claims, evidence, review decisions)",
    response_class=StreamingResponse,
    responses={**ERRORS, **FORBIDDEN,
               200: {"content": {media: {} for media in MEDIA_TYPES.values()},
                     "description": "One record per current claim (CSV, JSON Lines or Parquet)."}},
)
def export_route(
    request: Request,
    principal: ApiUser,
    fmt: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.jsonl,
    since: Annotated[
        str | None, Query(description="Calls started at or after (ISO 8601).", pattern=NO_NUL_PATTERN)
    ] = None,
    until: Annotated[str | None, Query(description="Calls started before (ISO 8601).", pattern=NO_NUL_PATTERN)] = None,
) -> Response:
    principal.require(principal.role in EXPORT_ROLES, "export")
    window = ExportWindow(parse_instant(since, "since"), parse_instant(until, "until"))
    if fmt is ExportFormat.parquet and not parquet_available():
        raise ExportError("Parquet export needs pyarrow on the server: pip install 'postcall[parquet]'")
    factory = web_state(request).session_factory
    chunks = _stream(factory, principal, fmt, window)
    suffix = {ExportFormat.csv: "csv", ExportFormat.jsonl: "jsonl", ExportFormat.parquet: "parquet"}[fmt]
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPES[fmt],
        headers={"content-disposition": f'attachment; filename="postcall-{principal.tenant}.{suffix}"'},
    )


def _stream(
    factory: sessionmaker[Session], principal: Principal, fmt: ExportFormat, window: ExportWindow
) -> Iterator[bytes]:
    """Its own session, open for as long as the response streams (the request's closes before)."""
    session = factory()
    try:
        yield from export_bytes(session, principal.tenant_id, fmt, window)
    finally:
        session.close()
