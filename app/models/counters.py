"""Counters kept by database triggers (migration 0009), so /metrics and the queue's per-state counts read
a few rows instead of scanning every call and run.

Each table is keyed by a shard (PostgreSQL: the writing backend's pid modulo COUNTER_SHARDS, 16 before
migration 0018; SQLite: 0) and holds one column per counted value, so a transition updates exactly one
row: concurrent writers rarely meet on a row (a pool's backends have consecutive pids, which never share a
shard below COUNTER_SHARDS sessions), and a transaction of one call never holds two counter rows of one
tenant or model that another could take in the opposite order. A group commit's statements change several
calls (app/pipeline/group_commit.py) and so several counter rows of their backend's shard: two backends on one
shard (more sessions than shards) may take two of them in opposite orders, and PostgreSQL then ends one
transaction after `deadlock_timeout`; its group's calls are stored one by one instead, nothing lost. Readers
sum the shards.

A SQLite table rebuild (alembic's batch mode recreating `calls` or `extraction_runs`) drops that table's
triggers: a migration that rebuilds one must create the triggers again (migration 0009 shows them).
On PostgreSQL, migration 0012 moved the update triggers into the ones that keep the rollups (one row
trigger per update of a call or a run), with the same counts.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, SmallInteger, String, Table

from app.db.base import Base
from app.models.tables import CallState, RunStatus

COUNTER_SHARDS = 256
# Upper bounds in seconds of the per-stage latency histogram. Queue wait spans milliseconds (idle) to an
# hour (a burst on few workers). Changing them needs a migration: the triggers bucket at write time.
LATENCY_BUCKETS_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Per-stage timings recorded on every run (milliseconds): stage label -> extraction_runs column.
STAGE_COLUMNS = {"queue_wait": "queue_wait_ms", "llm": "llm_ms", "verify": "verify_ms", "db": "db_ms",
                 "total": "total_ms"}
# The per-stage duration columns of a run, in display order (counters, rollups and the dashboard).
STAGE_DURATION_COLUMNS = tuple(STAGE_COLUMNS.values())
# The key column for calls without a team (a primary key column cannot be NULL).
NO_TEAM = ""


def calls_column(state: CallState) -> str:
    return f"calls_{state.value}"


def flagged_column(state: CallState) -> str:
    return f"flagged_{state.value}"


def runs_column(status: RunStatus) -> str:
    return f"runs_{status.value}"


def stage_count_column(stage: str) -> str:
    return f"{stage}_count"


def stage_sum_column(stage: str) -> str:
    return f"{stage}_sum_ms"


def stage_bucket_column(stage: str, bucket: int) -> str:
    return f"{stage}_le_{bucket}"


# Calls per (tenant, team): how many are in each state, how many of those are flagged (an unverified
# item nobody decided on), and the attempts beyond each call's first.
call_counts = Table(
    "call_counts",
    Base.metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("team", String(200), primary_key=True),
    Column("shard", SmallInteger, primary_key=True, autoincrement=False),
    *(Column(calls_column(s), BigInteger, nullable=False, server_default="0") for s in CallState),
    *(Column(flagged_column(s), BigInteger, nullable=False, server_default="0") for s in CallState),
    Column("retries", BigInteger, nullable=False, server_default="0"),
)

# Runs per (provider, model): runs by status, tokens, requests and cost of every run; the per-stage
# latency histogram (count, sum, cumulative buckets) of succeeded runs only.
run_totals = Table(
    "run_totals",
    Base.metadata,
    Column("provider", String(50), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("shard", SmallInteger, primary_key=True, autoincrement=False),
    *(Column(runs_column(s), BigInteger, nullable=False, server_default="0") for s in RunStatus),
    Column("prompt_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cached_tokens", BigInteger, nullable=False, server_default="0"),
    Column("llm_requests", BigInteger, nullable=False, server_default="0"),
    Column("cost_usd", Float, nullable=False, server_default="0"),
    *(
        column
        for stage in STAGE_COLUMNS
        for column in (
            Column(stage_count_column(stage), BigInteger, nullable=False, server_default="0"),
            Column(stage_sum_column(stage), Float, nullable=False, server_default="0"),
            *(
                Column(stage_bucket_column(stage, i), BigInteger, nullable=False, server_default="0")
                for i in range(len(LATENCY_BUCKETS_SECONDS))
            ),
        )
    ),
)
