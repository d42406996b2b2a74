"""The ten cookbook queries of docs/data-model.md, read from the page and run as written against a
fixture database (two tenants of real pipeline output, see tests/support/analytics.py), on both backends.

Expected answers follow from the fixture (written out here, not derived from the views): acme has four
calls (started 2026-03-09, -10, -11, -11; the last still queued), the first call approved after a
supervisor approved its items and rejected its summary (one joined statement since heuristic-v2);
globex has two calls.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.llm.heuristic import HEURISTIC_MODEL_VERSION
from bench.analysts.cookbook import cookbook, for_backend
from tests.support.analytics import World, build_world


@pytest.fixture
def answers(session_factory: sessionmaker[Session]) -> tuple[dict[int, list[Any]], World]:
    world = build_world(session_factory)
    results: dict[int, list[Any]] = {}
    with unit_of_work(session_factory) as session:
        dialect = session.get_bind().dialect.name
        for number, (_question, blocks) in cookbook().items():
            results[number] = [tuple(row) for row in session.execute(text(for_backend(blocks, dialect)))]
    return results, world


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def test_the_page_has_ten_questions() -> None:
    assert sorted(cookbook()) == list(range(1, 11))


def test_cookbook_answers(answers: tuple[dict[int, list[Any]], World]) -> None:
    results, _world = answers

    # 1. A-1's open items, soonest first: 5 business days from Monday 03-09 and Wednesday 03-11 (A-2's
    #    "by Friday" and 10 business days from Tuesday 03-10 are not A-1's).
    assert [(row[0], row[1], row[3], _day(row[4])) for row in results[1]] == [
        ("acme-1", "A-1", "within 5 business days", "2026-03-16"),
        ("acme-3", "A-1", "within 5 business days", "2026-03-18"),
    ]

    # 2. Every dated item lies in March 2026, so each is overdue today: the two above plus "tonight"
    #    for A-1's two card calls; A-2's returns call has two.
    assert results[2] == [("A-1", 4), ("A-2", 2)]

    # 3. Due on Friday 2026-03-13: the returns team's label (the customers' "tonight" items fall on 03-09
    #    and 03-11).
    assert [(_day(row[0]), row[1], row[2], row[3]) for row in results[3]] == [
        ("2026-03-13", "acme-2", "agent", "the returns team"),
    ]

    # 4. One model and prompt; the heuristic's items are all grounded.
    assert [(row[0], row[1]) for row in results[4]] == [(HEURISTIC_MODEL_VERSION, "extract-v1")]
    assert float(results[4][0][3]) == 0.0

    # 5. Only the first acme call was reviewed: its summaries rejected, everything else approved.
    decided = {row[0]: row for row in results[5]}
    assert float(decided["summary"][4]) == 1.0
    assert all(float(decided[kind][2]) == 1.0 for kind in ("action_item", "reason", "outcome"))

    # 6. Calls per day and state for acme.
    per_day = {(_day(row[0]), row[1]): row[2] for row in results[6]}
    assert per_day[("2026-03-09", "approved")] == 1
    assert per_day[("2026-03-11", "queued")] == 1
    assert sum(per_day.values()) == 4

    # 7. Reasons: the card story twice (acme-1, acme-3), the blender once.
    reasons = dict(results[7])
    assert sorted(reasons.values(), reverse=True) == [2, 1]

    # 8. Five succeeded heuristic runs, no cost.
    assert [(row[0], row[3]) for row in results[8]] == [("heuristic", 5)]
    assert float(results[8][0][9]) == 0.0

    # 9. The rejected summary (one joined statement), by the supervisor, today.
    assert [(row[1], row[2], row[3], row[4]) for row in results[9]] == [
        ("sup-acme", "claim_rejected", "acme-1", "summary")
    ]

    # 10. The returns team owns the label in each tenant's returns call (globex's started Tuesday 03-10 too).
    assert [(row[0], row[1], row[2], _day(row[3])) for row in results[10]] == [
        ("acme", "the returns team", 1, "2026-03-13"),
        ("globex", "the returns team", 1, "2026-03-13"),
    ]
