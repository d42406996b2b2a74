"""Migration 0009 backfills the call's review rank and flag count and the trigger-kept counters from the
rows a deployment already has, on both backends, and going down and up again counts nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine
from app.models import Call
from tests.pipeline.test_counts import _check
from tests.support.services import temporary_pg_database

BEFORE = "0008"
# (state, team, attempts): the calls written at revision 0008.
CALLS = [
    ("needs_attention", "red", 1), ("needs_attention", None, 3), ("ready_for_review", "red", 1),
    ("approved", "blue", 2), ("failed", None, 4), ("queued", "blue", 0), ("rejected", "red", 1),
]


@pytest.fixture(params=["sqlite", "postgres"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, BEFORE)
        yield url
    else:
        with temporary_pg_database() as url:
            upgrade(url, BEFORE)
            yield url


def _fill(url: str) -> dict[str, int]:
    """Calls, runs (a superseded one too) and claims at 0008; returns call id -> expected flagged items."""
    engine = create_db_engine(url)
    expected = {}
    with engine.begin() as conn:
        tenant_id = conn.execute(text("INSERT INTO tenants (slug, created_at, time_zone) "
                                      "VALUES ('acme', CURRENT_TIMESTAMP, 'UTC') RETURNING id")).scalar_one()
        for n, (state, team, attempts) in enumerate(CALLS):
            call_id = f"call{n}"
            conn.execute(text(
                "INSERT INTO calls (id, tenant_id, external_id, team, source_format, transcript_hash, state, "
                "state_changed_at, attempts, created_at, llm_mode) VALUES (:id, :tenant, :ext, :team, 'native', 'h', "
                ":state, CURRENT_TIMESTAMP, :attempts, CURRENT_TIMESTAMP, 'sync')"),
                {"id": call_id, "tenant": tenant_id, "ext": f"e{n}", "team": team, "state": state,
                 "attempts": attempts})
            run_ids = []
            for k, (status, llm_ms) in enumerate([("succeeded", 40.0 * (n + 1)), ("failed", None),
                                                  ("succeeded", 900.0 * n)][: 1 + n % 3]):
                run_ids.append(conn.execute(text(
                    "INSERT INTO extraction_runs (call_id, idempotency_key, provider, model, prompt_version, "
                    "transcript_hash, status, prompt_tokens, completion_tokens, cached_tokens, cost_usd, llm_calls, "
                    "llm_ms, total_ms, started_at) VALUES (:call, :key, 'openai', :model, 'v1', 'h', :status, "
                    ":n, 10, 0, 0.001, 1, :llm, :total, CURRENT_TIMESTAMP) RETURNING id"),
                    {"call": call_id, "key": f"k{n}-{k}", "model": "m1" if n % 2 else "m2", "status": status,
                     "n": 100 + n, "llm": llm_ms, "total": None if llm_ms is None else llm_ms + 5}).scalar_one())
            current = max(r for r, (s, _) in zip(run_ids, [("succeeded", 0), ("failed", 0), ("succeeded", 0)],
                                                   strict=False) if s == "succeeded")
            conn.execute(text("UPDATE calls SET current_run_id = :run WHERE id = :id"), {"run": current, "id": call_id})
            flagged = 0
            for run_id in run_ids:
                for position, (grounding, review) in enumerate(
                    [("ungrounded", "pending"), ("ungrounded", "approved"), ("grounded", "pending"),
                     ("ungrounded", "pending")][: n % 5]
                ):
                    conn.execute(text(
                        "INSERT INTO claims (run_id, call_id, position, kind, text, grounding_status, review_status, "
                        "origin, created_at) VALUES (:run, :call, :pos, 'summary', 'x', :grounding, :review, "
                        "'model', CURRENT_TIMESTAMP)"),
                        {"run": run_id, "call": call_id, "pos": position, "grounding": grounding, "review": review})
                    if run_id == current and grounding == "ungrounded" and review == "pending":
                        flagged += 1
            expected[call_id] = flagged
    engine.dispose()
    return expected


def _assert_backfilled(url: str, expected_flags: dict[str, int]) -> None:
    engine = create_db_engine(url)
    try:
        with Session(engine) as session:
            calls = {c.id: c for c in session.query(Call)}
            assert {c.id: c.flagged_items for c in calls.values()} == expected_flags
            ranks = {"needs_attention": 0, "ready_for_review": 1}
            assert {c.id: c.review_rank for c in calls.values()} == {
                c.id: ranks.get(c.state.value, 2) for c in calls.values()
            }
            _check(session, [next(iter(calls.values())).tenant_id])
    finally:
        engine.dispose()


def test_upgrade_backfills_what_the_rows_imply(old_url: str) -> None:
    expected = _fill(old_url)
    assert any(expected.values()) and not all(expected.values())
    upgrade(old_url)
    _assert_backfilled(old_url, expected)
    downgrade(old_url, BEFORE)
    upgrade(old_url)
    _assert_backfilled(old_url, expected)
