"""The dashboard's figures, read from the rollups, on both backends: the fixture's numbers, a supervisor
with a team sees only the team's calls, an agent sees nothing, and the window leaves older days out."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from app.dashboard import build_dashboard
from app.db.session import unit_of_work
from app.models import Call, UserRole
from app.users import authenticate, create_user
from tests.support.analytics import build_world

NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)


def test_dashboard_figures_follow_scope_and_window(session_factory: sessionmaker[Session]) -> None:
    world = build_world(session_factory)
    with unit_of_work(session_factory) as session:
        # acme-2 (the returns call, 03-10) moves to team north; the triggers move its counts.
        returns_call = session.get(Call, world.calls["acme"][1])
        assert returns_call is not None
        returns_call.team = "north"
        tokens = {
            "north": create_user(session, tenant="acme", name="sup-north", role=UserRole.supervisor,
                                 team="north").token,
            "agent": create_user(session, tenant="acme", name="agent-a1", role=UserRole.agent, agent_id="A-1").token,
        }
    with unit_of_work(session_factory) as session:
        analyst = authenticate(session, world.tokens["ana-acme"])
        north = authenticate(session, tokens["north"])
        agent = authenticate(session, tokens["agent"])
        assert analyst is not None and north is not None and agent is not None
        everything = build_dashboard(session, analyst, 30, now=NOW)
        team = build_dashboard(session, north, 30, now=NOW)
        nothing = build_dashboard(session, agent, 30, now=NOW)
        last_two_days = build_dashboard(session, analyst, 2, now=NOW)

    assert everything.total_calls == 4
    assert everything.calls_per_day["2026-03-09"] == {"approved": 1}
    assert everything.calls_per_day["2026-03-11"]["queued"] == 1
    assert everything.review_outcomes["summary"]["rejected"] == 1
    assert everything.claims > 0 and everything.grounding_rate == 1.0
    assert sum(run.runs for run in everything.run_days) == 3
    assert ("the returns team", 1) in everything.owner_names

    assert team.total_calls == 1 and list(team.calls_per_day) == ["2026-03-10"]
    assert team.owner_names == [("the returns team", 1)]
    assert team.claims < everything.claims
    assert [reason for reason, _ in team.top_reasons] != [] and len(team.top_reasons) == 1

    assert nothing.total_calls == 0 and nothing.claims == 0 and nothing.run_days == []

    # Two days back from 03-12: only 03-11's calls (acme-3 processed, acme-4 queued).
    assert last_two_days.total_calls == 2 and set(last_two_days.calls_per_day) == {"2026-03-11"}
