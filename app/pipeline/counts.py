"""Reads of the trigger-kept counters (app/models/counters.py): calls per state, runs per model.

Each counter is summed over its shards; the sums equal a COUNT(*) / SUM() over the counted rows
(tests/pipeline/test_counts.py checks this after random transitions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.orm import Session

from app.models import CallState, RunStatus, call_counts, run_totals
from app.models.counters import (
    LATENCY_BUCKETS_SECONDS,
    NO_TEAM,
    STAGE_COLUMNS,
    calls_column,
    flagged_column,
    runs_column,
    stage_bucket_column,
    stage_count_column,
    stage_sum_column,
)


def _sum(column: str, table: Table = call_counts) -> ColumnElement[Any]:
    return func.coalesce(func.sum(table.c[column]), 0)


def state_counts(session: Session, tenant_id: int, *, team: str | None = None,
                 flagged: bool | None = None) -> dict[str, int]:
    """Calls per state of one tenant (of one team when given): all of them, only the flagged ones
    (`flagged=True`) or only the others (`flagged=False`)."""
    states = list(CallState)
    query = select(*(_sum(calls_column(s)) for s in states), *(_sum(flagged_column(s)) for s in states))
    query = query.where(call_counts.c.tenant_id == tenant_id)
    if team is not None:
        query = query.where(call_counts.c.team == (team or NO_TEAM))
    row = session.execute(query).one()
    calls, flagged_calls = row[: len(states)], row[len(states):]
    counts = {}
    for state, total, with_flag in zip(states, calls, flagged_calls, strict=True):
        if flagged is None:
            counts[state.value] = int(total)
        else:
            counts[state.value] = int(with_flag) if flagged else int(total) - int(with_flag)
    return counts


def call_totals(session: Session) -> tuple[dict[str, int], int]:
    """Calls per state across tenants, and the attempts spent beyond each call's first."""
    states = list(CallState)
    row = session.execute(select(*(_sum(calls_column(s)) for s in states), _sum("retries"))).one()
    return {s.value: int(n) for s, n in zip(states, row, strict=False)}, int(row[-1])


@dataclass(frozen=True)
class ModelTotals:
    provider: str
    model: str
    runs: dict[str, int]  # per run status
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    llm_requests: int
    cost_usd: float


@dataclass(frozen=True)
class StageHistogram:
    """One stage's latency over succeeded runs: how many have a value, their sum, cumulative buckets."""

    count: int
    sum_ms: float
    buckets: list[int]  # runs at or under each bound of LATENCY_BUCKETS_SECONDS


def model_totals(session: Session) -> list[ModelTotals]:
    """Runs, tokens, requests and cost per (provider, model) that has any run, ordered by provider, model."""
    statuses = list(RunStatus)
    sums = ("prompt_tokens", "completion_tokens", "cached_tokens", "llm_requests", "cost_usd")
    rows = session.execute(
        select(run_totals.c.provider, run_totals.c.model,
               *(_sum(runs_column(s), run_totals) for s in statuses), *(_sum(c, run_totals) for c in sums))
        .group_by(run_totals.c.provider, run_totals.c.model)
        .order_by(run_totals.c.provider, run_totals.c.model)
    ).all()
    totals = []
    for provider, model, *values in rows:
        runs = {s.value: int(n) for s, n in zip(statuses, values, strict=False)}
        prompt, completion, cached, requests, cost = values[len(statuses):]
        if sum(runs.values()):
            totals.append(ModelTotals(provider, model, runs, int(prompt), int(completion), int(cached),
                                      int(requests), float(cost)))
    return totals


def stage_histograms(session: Session) -> dict[str, StageHistogram]:
    """Per stage (STAGE_COLUMNS' labels): the latency histogram of succeeded runs."""
    columns = []
    for stage in STAGE_COLUMNS:
        columns += [_sum(stage_count_column(stage), run_totals), _sum(stage_sum_column(stage), run_totals)]
        columns += [_sum(stage_bucket_column(stage, i), run_totals) for i in range(len(LATENCY_BUCKETS_SECONDS))]
    row = session.execute(select(*columns)).one()
    width = 2 + len(LATENCY_BUCKETS_SECONDS)
    histograms = {}
    for position, stage in enumerate(STAGE_COLUMNS):
        values = row[position * width : (position + 1) * width]
        histograms[stage] = StageHistogram(int(values[0]), float(values[1]), [int(n) for n in values[2:]])
    return histograms
