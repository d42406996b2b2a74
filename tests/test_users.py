"""Users, tokens and visibility rules (app/users.py)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.errors import InvalidInputError, NotFoundError
from app.models import User, UserRole
from app.pipeline.store import clean_external_id
from app.users import (
    TOKEN_PREFIX,
    InactiveUserError,
    TokenReplacedError,
    UserError,
    UserExistsError,
    authenticate,
    create_user,
    deactivate_user,
    hash_token,
    list_users,
    load_principal,
    rotate_token_by_id,
    rotate_token_by_name,
    signed_in,
)
from tests.support.threads import run_at_once


@pytest.fixture
def factory(sqlite_url: str) -> sessionmaker[Session]:
    return make_session_factory(create_db_engine(sqlite_url))


def test_token_is_random_shown_once_and_stored_only_as_its_hash(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        first = create_user(session, tenant="acme", name="ana", role=UserRole.analyst)
        second = create_user(session, tenant="acme", name="bob", role=UserRole.analyst)
    assert first.token.startswith(TOKEN_PREFIX)
    assert len(first.token) > 40
    assert first.token != second.token
    with factory() as session:
        stored = session.scalar(select(User).where(User.name == "ana"))
        assert stored is not None
        assert stored.token_hash == hashlib.sha256(first.token.encode()).hexdigest() == hash_token(first.token)
        assert first.token not in {str(value) for value in vars(stored).values()}


def test_authenticate_finds_the_active_user_only(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        token = create_user(session, tenant="acme", name="sue", role=UserRole.supervisor, team="blue").token
    with factory() as session:
        principal = authenticate(session, token)
        assert principal is not None
        assert (principal.name, principal.tenant, principal.role, principal.team) == (
            "sue", "acme", UserRole.supervisor, "blue")
        assert authenticate(session, token + "x") is None
        assert authenticate(session, "not-even-prefixed") is None
    with unit_of_work(factory) as session:
        deactivate_user(session, "acme", "sue")
    with factory() as session:
        assert authenticate(session, token) is None


def test_a_browser_session_ends_when_the_token_changes(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        token = create_user(session, tenant="acme", name="ada", role=UserRole.admin).token
    with factory() as session:
        result = signed_in(session, token)
        assert result is not None
        principal, fingerprint = result
        assert fingerprint not in token and len(fingerprint) < len(hash_token(token))
        assert load_principal(session, principal.user_id, fingerprint) == principal
    with unit_of_work(factory) as session:
        user = session.get(User, principal.user_id)
        assert user is not None
        user.token_hash = hash_token(TOKEN_PREFIX + "rotated")
    with factory() as session:
        assert load_principal(session, principal.user_id, fingerprint) is None


@pytest.mark.parametrize(
    ("kwargs", "error", "problem"),
    [
        ({"name": "al", "role": UserRole.agent}, UserError, "needs an agent id"),
        ({"name": "  ", "role": UserRole.admin}, UserError, "needs a name"),
        ({"name": "taken", "role": UserRole.admin}, UserExistsError, "already exists"),
    ],
)
def test_invalid_users_are_refused(
    factory: sessionmaker[Session], kwargs: dict[str, object], error: type[Exception], problem: str
) -> None:
    with unit_of_work(factory) as session:
        create_user(session, tenant="acme", name="taken", role=UserRole.analyst)
    with pytest.raises(error, match=problem), unit_of_work(factory) as session:
        create_user(session, tenant="acme", **kwargs)  # type: ignore[arg-type]
    with factory() as session:
        assert [user.name for user, _ in list_users(session, "acme")] == ["taken"]


@pytest.mark.parametrize("fields", [
    {"name": "eve\x1b[2J"}, {"name": "eve\x07"}, {"name": "\u202eexe.eve"}, {"name": "e\u200bve"},
    {"agent_id": "A-7\x1b[8m"}, {"agent_id": "\u202e7-A"}, {"team": "blue\nred"},
])
def test_control_and_bidi_characters_in_a_users_fields_are_refused_as_in_external_ids(
    factory: sessionmaker[Session], fields: dict[str, str]
) -> None:
    # The API and `postcall users add` both create users here; each took ESC, BEL and U+202E (which shows the
    # text after it reversed), where a call's external id refuses them with the same check.
    wanted = {"name": "eve", "role": UserRole.agent, "agent_id": "A-7", **fields}
    with pytest.raises(InvalidInputError, match="control character"), unit_of_work(factory) as session:
        create_user(session, tenant="acme", **wanted)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="control character"):
        clean_external_id(next(iter(fields.values())))
    with factory() as session:
        assert list_users(session, "acme") == []


def test_same_name_in_another_tenant_is_another_user(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        create_user(session, tenant="acme", name="sam", role=UserRole.admin)
        create_user(session, tenant="globex", name="sam", role=UserRole.admin)
    with factory() as session:
        assert [(user.name, slug) for user, slug in list_users(session)] == [("sam", "acme"), ("sam", "globex")]
        assert [slug for _, slug in list_users(session, "globex")] == ["globex"]


def test_deactivating_an_unknown_user_says_so(factory: sessionmaker[Session]) -> None:
    with pytest.raises(UserError, match="no user 'ghost' in tenant 'acme'"), unit_of_work(factory) as session:
        deactivate_user(session, "acme", "ghost")


def test_concurrent_creations_of_one_name_make_one_user(session_factory: sessionmaker[Session]) -> None:
    # Both databases: the name check and the insert are not atomic, so the loser used to reach the unique
    # index and fail with an integrity error (a 500 on the API) instead of "already exists" (409).
    outcomes: list[str] = []

    def create() -> None:
        try:
            with unit_of_work(session_factory) as session:
                create_user(session, tenant="acme", name="racer", role=UserRole.analyst)
            outcomes.append("created")
        except UserExistsError:
            outcomes.append("exists")

    run_at_once(8, create)
    assert sorted(outcomes) == ["created"] + ["exists"] * 7
    with unit_of_work(session_factory) as session:
        assert len(session.scalars(select(User).where(User.name == "racer")).all()) == 1


def test_a_rotated_token_replaces_the_old_one_and_ends_its_sessions(session_factory: sessionmaker[Session]) -> None:
    # Both databases. Tokens never expired and could not be replaced: only deactivation revoked one.
    with unit_of_work(session_factory) as session:
        old = create_user(session, tenant="acme", name="ida", role=UserRole.supervisor).token
    with session_factory() as session:
        signed = signed_in(session, old)
        assert signed is not None
        principal, fingerprint = signed
    with unit_of_work(session_factory) as session:
        by_name = rotate_token_by_name(session, "acme", "ida")
    with unit_of_work(session_factory) as session:
        by_id = rotate_token_by_id(session, principal.tenant_id, principal.user_id)
    assert by_name.user.id == by_id.user.id == principal.user_id
    assert len({old, by_name.token, by_id.token}) == 3
    assert by_id.token.startswith(TOKEN_PREFIX) and len(by_id.token) > 40
    with session_factory() as session:
        assert authenticate(session, old) is None
        assert authenticate(session, by_name.token) is None  # each rotation revokes the token before it
        assert authenticate(session, by_id.token) == principal
        assert load_principal(session, principal.user_id, fingerprint) is None
        stored = session.get(User, principal.user_id)
        assert stored is not None and stored.token_hash == hash_token(by_id.token)
        assert by_id.token not in {str(value) for value in vars(stored).values()}


def test_rotating_refuses_another_tenants_unknown_and_deactivated_users(factory: sessionmaker[Session]) -> None:
    with unit_of_work(factory) as session:
        acme = create_user(session, tenant="acme", name="ida", role=UserRole.analyst)
        globex = create_user(session, tenant="globex", name="ida", role=UserRole.analyst)
        acme_tenant_id, globex_user_id = acme.user.tenant_id, globex.user.id
    # Another tenant's user is answered exactly as one that does not exist.
    for user_id in (globex_user_id, globex_user_id + 100):
        with pytest.raises(NotFoundError, match=f"no user {user_id}$"), unit_of_work(factory) as session:
            rotate_token_by_id(session, acme_tenant_id, user_id)
    with pytest.raises(UserError, match="no user 'ghost' in tenant 'acme'"), unit_of_work(factory) as session:
        rotate_token_by_name(session, "acme", "ghost")
    with unit_of_work(factory) as session:
        deactivate_user(session, "acme", "ida")
    with pytest.raises(InactiveUserError, match="deactivated"), unit_of_work(factory) as session:
        rotate_token_by_name(session, "acme", "ida")
    with factory() as session:
        assert authenticate(session, globex.token) is not None
        assert authenticate(session, acme.token) is None


def test_concurrent_rotations_take_turns_and_a_replaced_token_gets_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    # Both databases. Rotations read the user unlocked: two at once both committed, the first caller's token
    # was dead on arrival and the session version counted one. And a thief rotating the leaked token while an
    # admin rotated it kept a working token.
    with unit_of_work(session_factory) as session:
        created = create_user(session, tenant="acme", name="ida", role=UserRole.analyst)
        tenant_id, user_id, leaked = created.user.tenant_id, created.user.id, created.token
    issued: list[str] = []

    def rotate() -> None:
        with unit_of_work(session_factory) as session:
            issued.append(rotate_token_by_id(session, tenant_id, user_id).token)

    run_at_once(4, rotate)
    with session_factory() as session:
        stored = session.get(User, user_id)
        assert stored is not None and stored.session_version == 4  # every rotation counted
        assert stored.token_hash == hash_token(issued[-1])  # the last to commit is the one that works
    with pytest.raises(TokenReplacedError), unit_of_work(session_factory) as session:
        rotate_token_by_id(session, tenant_id, user_id, replacing=leaked)
    with session_factory() as session:
        assert authenticate(session, issued[-1]) is not None and authenticate(session, leaked) is None


@pytest.mark.parametrize("name", ["Dana\xa0Smith", "山田\u3000太郎", "مهدی\u200cپور", "Zoë O'Brien-Łukasz"])
def test_names_people_write_are_taken(factory: sessionmaker[Session], name: str) -> None:
    # Spaces of every kind and the joiners of Persian and Indic words print, though str.isprintable says not.
    with unit_of_work(factory) as session:
        assert create_user(session, tenant="acme", name=name, role=UserRole.analyst).user.name == name
