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
    assert principal.token_expires_at is not None
    assert json.loads(listed.output)["users"] == [
        {"id": principal.user_id, "name": "sue", "tenant": "acme", "role": "supervisor", "team": "blue",
         "agent_id": None, "active": True, "token_expires_at": principal.token_expires_at.isoformat()}
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



def test_users_rotate_token_prints_the_new_token_once_and_the_old_one_stops(database: str) -> None:
    added = json.loads(runner.invoke(users_app, ["add", "bo", "--role", "analyst", "--tenant", "acme", "--json"]
                                     ).output)
    rotated = runner.invoke(users_app, ["rotate-token", "bo", "--tenant", "acme"])
    assert rotated.exit_code == 0, rotated.output
    assert "shown once" in rotated.output
    new = rotated.output.strip().splitlines()[-1]
    assert rotated.output.count(new) == 1 and added["token"] not in rotated.output
    with make_session_factory(create_db_engine(database))() as session:
        assert authenticate(session, added["token"]) is None
        principal = authenticate(session, new)
    assert principal is not None and principal.user_id == added["id"]
    as_json = json.loads(runner.invoke(users_app, ["rotate-token", "bo", "--tenant", "acme", "--json"]).output)
    assert (as_json["id"], as_json["name"], as_json["tenant"]) == (added["id"], "bo", "acme")
    assert as_json["token"] != new
    assert new not in runner.invoke(users_app, ["list"]).output


def test_users_rotate_token_of_an_unknown_or_deactivated_user_is_a_clear_error(database: str) -> None:
    assert runner.invoke(users_app, ["add", "bo", "--role", "analyst", "--tenant", "acme"]).exit_code == 0
    unknown = runner.invoke(users_app, ["rotate-token", "nobody", "--tenant", "acme"])
    assert unknown.exit_code == 2
    assert unknown.output.strip() == "error: no user 'nobody' in tenant 'acme'"
    hostile = runner.invoke(users_app, ["rotate-token", "eve\x1b[2J[red]", "--tenant", "acme"])
    assert hostile.exit_code == 2 and "\x1b" not in hostile.output and "\\x1b[2J[red]" in hostile.output
    elsewhere = runner.invoke(users_app, ["rotate-token", "bo", "--tenant", "globex"])
    assert elsewhere.exit_code == 2 and "no user 'bo' in tenant 'globex'" in elsewhere.output
    assert runner.invoke(users_app, ["deactivate", "bo", "--tenant", "acme"]).exit_code == 0
    deactivated = runner.invoke(users_app, ["rotate-token", "bo", "--tenant", "acme"])
    assert deactivated.exit_code == 2 and "deactivated" in deactivated.output
    assert "pc_" not in deactivated.output
