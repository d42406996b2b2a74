"""`postcall users ...` (app/cli/users.py), driven through its Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli.users import users_app
from app.db.session import create_db_engine, make_session_factory
from app.users import authenticate

runner = CliRunner()


def test_users_add_prints_a_working_token_once_and_list_never_shows_it(database: str) -> None:
    added = runner.invoke(users_app, ["add", "sue", "--role", "supervisor", "--tenant", "acme", "--team", "blue"])
    assert added.exit_code == 0, added.output
    token = added.output.strip().splitlines()[-1]
    assert "shown once" in added.output
    with make_session_factory(create_db_engine(database))() as session:
        principal = authenticate(session, token)
    assert principal is not None and principal.team == "blue" and principal.tenant == "acme"
    listed = runner.invoke(users_app, ["list", "--json"])
    assert listed.exit_code == 0
    assert json.loads(listed.output)["users"] == [
        {"id": principal.user_id, "name": "sue", "tenant": "acme", "role": "supervisor", "team": "blue",
         "agent_id": None, "active": True}
    ]
    assert token not in listed.output
    assert token not in runner.invoke(users_app, ["list"]).output


def test_users_add_refuses_an_agent_without_agent_id_and_duplicates(database: str) -> None:
    refused = runner.invoke(users_app, ["add", "al", "--role", "agent", "--tenant", "acme"])
    assert refused.exit_code == 2
    assert "--agent-id" in refused.output
    assert runner.invoke(users_app, ["add", "al", "--role", "agent", "--agent-id", "a7"]).exit_code == 0
    again = runner.invoke(users_app, ["add", "al", "--role", "agent", "--agent-id", "a7"])
    assert again.exit_code == 2
    assert "already exists" in again.output
    assert runner.invoke(users_app, ["add", "zed", "--role", "root"]).exit_code == 2


def test_users_add_refuses_control_characters_and_prints_none(database: str) -> None:
    # The name went to the database and back to the terminal as given: ESC sequences drove it.
    refused = runner.invoke(users_app, ["add", "eve\x1b[2J", "--role", "analyst", "--tenant", "acme"])
    assert refused.exit_code == 2
    assert "control character" in refused.output and "\x1b" not in refused.output
    agent = runner.invoke(users_app, ["add", "al", "--role", "agent", "--agent-id", "\u202e7-A"])
    assert agent.exit_code == 2 and "control character" in agent.output
    assert json.loads(runner.invoke(users_app, ["list", "--json"]).output)["users"] == []


def test_users_deactivate_stops_the_token(database: str) -> None:
    token = json.loads(runner.invoke(users_app, ["add", "bo", "--role", "analyst", "--json"]).output)["token"]
    assert runner.invoke(users_app, ["deactivate", "bo"]).exit_code == 0
    with make_session_factory(create_db_engine(database))() as session:
        assert authenticate(session, token) is None
    assert runner.invoke(users_app, ["deactivate", "nobody"]).exit_code == 2

