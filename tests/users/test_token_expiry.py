"""API tokens that expire (users.token_expires_at, POSTCALL_TOKEN_LIFETIME_DAYS): set at every issue, judged
at the exact moment (works before it, not at it), told apart from a wrong token only to the token's holder,
and the browser sessions signed in with a token end with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.users import users_app
from app.config import get_settings
from app.db.session import unit_of_work
from app.models import User, UserRole
from app.users import (
    TokenExpiredError,
    authenticate,
    create_user,
    deactivate_user,
    load_principal,
    rotate_token_by_name,
    signed_in,
    token_principal,
)
from tests.users.conftest import Site, csrf_from
from tests.web.world import bearer

runner = CliRunner()
TICK = timedelta(microseconds=1)


def _user(factory: sessionmaker[Session], name: str = "sam", role: UserRole = UserRole.admin,
          lifetime_days: int | None = None) -> tuple[int, str]:
    with unit_of_work(factory) as session:
        created = create_user(session, tenant="acme", name=name, role=role, token_lifetime_days=lifetime_days)
        return created.user.id, created.token


def _expire_at(factory: sessionmaker[Session], user_id: int, moment: datetime | None) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(User).where(User.id == user_id).values(token_expires_at=moment))


def test_a_token_expires_its_lifetime_after_it_is_issued_and_a_rotation_starts_a_new_one(
    session_factory: sessionmaker[Session],
) -> None:
    before = datetime.now(UTC)
    user_id, token = _user(session_factory, lifetime_days=30)
    after = datetime.now(UTC)
    with session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None and user.token_expires_at is not None
        assert before + timedelta(days=30) <= user.token_expires_at <= after + timedelta(days=30)
    _expire_at(session_factory, user_id, datetime.now(UTC) - timedelta(days=1))
    with unit_of_work(session_factory) as session:
        issued = rotate_token_by_name(session, "acme", "sam", token_lifetime_days=7)
        renewed = issued.user.token_expires_at
    assert renewed is not None
    assert datetime.now(UTC) + timedelta(days=6) < renewed <= datetime.now(UTC) + timedelta(days=7)
    with session_factory() as session:
        assert authenticate(session, issued.token) is not None
        assert authenticate(session, token) is None  # the expired one was replaced
    # A lifetime of 0: tokens that never expire.
    _, forever = _user(session_factory, "eve", lifetime_days=0)
    with session_factory() as session:
        principal = authenticate(session, forever)
        assert principal is not None and principal.token_expires_at is None


def test_the_default_lifetime_is_the_setting(session_factory: sessionmaker[Session],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().token_lifetime_days == 90
    monkeypatch.setenv("POSTCALL_TOKEN_LIFETIME_DAYS", "2")
    get_settings.cache_clear()
    now = datetime.now(UTC)
    user_id, _ = _user(session_factory)
    with session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None and user.token_expires_at is not None
        assert now + timedelta(days=2) <= user.token_expires_at < now + timedelta(days=2, minutes=1)


def test_a_token_works_until_the_moment_it_expires_and_not_at_it(session_factory: sessionmaker[Session]) -> None:
    user_id, token = _user(session_factory)
    with session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None and user.token_expires_at is not None
        expires_at = user.token_expires_at
        signed = signed_in(session, token)
        assert signed is not None
        principal, fingerprint = signed

        assert authenticate(session, token, now=expires_at - TICK) == principal
        assert load_principal(session, user_id, fingerprint, now=expires_at - TICK) == principal
        assert signed_in(session, token, now=expires_at - TICK) is not None

        assert authenticate(session, token, now=expires_at) is None
        assert load_principal(session, user_id, fingerprint, now=expires_at) is None  # its sessions end with it
        with pytest.raises(TokenExpiredError) as expired:
            token_principal(session, token, now=expires_at)
        assert expired.value.expired_at == expires_at
        with pytest.raises(TokenExpiredError):
            signed_in(session, token, now=expires_at + TICK)
        # A wrong token is just not valid, whatever the moment.
        assert token_principal(session, token[:-2] + "xx", now=expires_at) is None


def test_an_expired_token_is_refused_with_401_saying_so_and_how_to_get_a_new_one(site: Site) -> None:
    user_id, token = _user(site.factory)
    _expire_at(site.factory, user_id, datetime.now(UTC) + timedelta(minutes=1))
    assert site.client.get("/api/me", headers=bearer(token)).status_code == 200

    _expire_at(site.factory, user_id, datetime.now(UTC) - timedelta(seconds=1))
    answer = site.client.get("/api/me", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "expired" in answer.json()["detail"] and "rotate-token" in answer.json()["detail"]
    # It cannot give itself a new lifetime: a rotation needs a token that still works.
    assert site.client.post("/api/me/rotate-token", headers=bearer(token)).status_code == 401

    # A wrong token, a replaced one, a deactivated user's expired one: "invalid", never "expired".
    wrong = site.client.get("/api/me", headers=bearer(token[:-2] + "xx"))
    assert wrong.status_code == 401 and "expired" not in wrong.json()["detail"]
    leaver_id, leaver = _user(site.factory, "leaver")
    _expire_at(site.factory, leaver_id, datetime.now(UTC) - timedelta(seconds=1))
    with unit_of_work(site.factory) as session:
        deactivate_user(session, "acme", "leaver")
    gone = site.client.get("/api/me", headers=bearer(leaver))
    assert gone.status_code == 401 and "expired" not in gone.json()["detail"]

    # An admin's rotation gives the holder a working token with a new lifetime.
    _, admin = _user(site.factory, "ada")
    renewed = site.client.post(f"/api/users/{user_id}/rotate-token", headers=bearer(admin))
    assert renewed.status_code == 200
    new_expiry = datetime.fromisoformat(renewed.json()["token_expires_at"])
    assert new_expiry > datetime.now(UTC) + timedelta(days=89)
    me = site.client.get("/api/me", headers=bearer(renewed.json()["token"]))
    assert me.status_code == 200 and datetime.fromisoformat(me.json()["token_expires_at"]) == new_expiry
    replaced = site.client.get("/api/me", headers=bearer(token))
    assert replaced.status_code == 401 and "expired" not in replaced.json()["detail"]


def test_users_show_their_token_expiry_and_an_upgraded_token_none(site: Site) -> None:
    user_id, admin = _user(site.factory)
    _expire_at(site.factory, user_id, None)  # as migration 0029 leaves every existing token
    listed = {u["name"]: u for u in site.client.get("/api/users", headers=bearer(admin)).json()}
    assert listed["sam"]["token_expires_at"] is None
    made = site.client.post("/api/users", json={"name": "new", "role": "analyst"}, headers=bearer(admin)).json()
    assert datetime.fromisoformat(made["token_expires_at"]) > datetime.now(UTC) + timedelta(days=89)
    listed = {u["name"]: u for u in site.client.get("/api/users", headers=bearer(admin)).json()}
    assert listed["new"]["token_expires_at"] == made["token_expires_at"]
    assert site.client.get("/api/me", headers=bearer(admin)).json()["token_expires_at"] is None


def test_a_browser_session_ends_when_its_token_expires_and_sign_in_says_it_expired(site: Site) -> None:
    user_id, token = _user(site.factory, role=UserRole.supervisor)
    page = site.client.get("/login")
    signed = site.client.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)},
                              follow_redirects=False)
    assert signed.status_code == 303
    assert site.client.get("/", follow_redirects=False).status_code == 200

    _expire_at(site.factory, user_id, datetime.now(UTC) - timedelta(seconds=1))
    ended = site.client.get("/", follow_redirects=False)
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")

    page = site.client.get("/login")
    again = site.client.post("/login", data={"token": token, "csrf_token": csrf_from(page.text)},
                             follow_redirects=False)
    assert again.status_code == 401
    assert "expired" in again.text and "rotate-token" in again.text
    page = site.client.get("/login")
    wrong = site.client.post("/login", data={"token": token[:-2] + "xx", "csrf_token": csrf_from(page.text)},
                             follow_redirects=False)
    assert wrong.status_code == 401 and "not valid" in wrong.text and "expired" not in wrong.text


def test_the_cli_shows_expiry_and_applies_the_setting(cli_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTCALL_TOKEN_LIFETIME_DAYS", "10")
    get_settings.cache_clear()
    added = runner.invoke(users_app, ["add", "sue", "--role", "supervisor", "--tenant", "acme", "--json"])
    assert added.exit_code == 0, added.output
    expires = datetime.fromisoformat(json.loads(added.output)["token_expires_at"])
    assert timedelta(days=9, hours=23) < expires - datetime.now(UTC) <= timedelta(days=10)

    monkeypatch.setenv("POSTCALL_TOKEN_LIFETIME_DAYS", "0")
    get_settings.cache_clear()
    rotated = runner.invoke(users_app, ["rotate-token", "sue", "--tenant", "acme"])
    assert rotated.exit_code == 0 and "never expires" in rotated.output
    runner.invoke(users_app, ["add", "bob", "--role", "analyst", "--tenant", "acme"])
    listed = {u["name"]: u for u in json.loads(runner.invoke(users_app, ["list", "--json"]).output)["users"]}
    assert listed["sue"]["token_expires_at"] is None
    assert listed["bob"]["token_expires_at"] is None
    monkeypatch.setenv("POSTCALL_TOKEN_LIFETIME_DAYS", "5")
    get_settings.cache_clear()
    runner.invoke(users_app, ["rotate-token", "bob", "--tenant", "acme"])
    listed = {u["name"]: u for u in json.loads(runner.invoke(users_app, ["list", "--json"]).output)["users"]}
    assert datetime.fromisoformat(listed["bob"]["token_expires_at"]) > datetime.now(UTC) + timedelta(days=4)
    assert "never" in runner.invoke(users_app, ["list"]).output  # sue's, in the table
