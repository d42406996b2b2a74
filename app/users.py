"""Users, API tokens and what each role may see and do.

A token is shown once, when the user is created or given a new one (`rotate_token_by_name`,
`rotate_token_by_id`), and stored only as its SHA-256 digest: tokens are 256-bit random strings, so a
fast hash is enough (there is nothing to brute-force), and a stolen database holds no usable credential.

A token expires POSTCALL_TOKEN_LIFETIME_DAYS after it is issued (`users.token_expires_at`; NULL: never, as
for tokens issued before migration 0029). Only its holder learns that it expired: the token is looked up
by its hash, so nobody else can present it, and a token that is not a user's current one is just invalid.

Every change to a user (creation, deactivation and reactivation, a new token, the view_pii permission, a
new role, team or agent id) appends a
`user_events` row in the same transaction, naming who made it (`Actor`: an API user, or `cli:<account>`).

Visibility and permission are two separate questions, answered here and nowhere else:
- `visible_calls_clause` says which calls a user can see at all. Everything outside it is answered
  as "not found", so another tenant's call (or, for an agent, a colleague's) never leaks its existence.
- `Principal.can_*` says what a user may do with a call they can see; a refusal there is "forbidden".
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.config import get_settings
from app.db.session import scalar_for_update, scalars_for_update
from app.db.types import as_utc
from app.errors import NotFoundError, PostcallError
from app.models import Call, Tenant, User, UserRole
from app.models.tables import UserEvent, utcnow
from app.pipeline.calls import find_tenant, get_or_create_tenant
from app.pipeline.store import SYSTEM_ACTOR, Actor
from app.text.storable import require_printable

# A recognisable prefix lets secret scanners spot a leaked token.
TOKEN_PREFIX = "pc_"  # noqa: S105 - a prefix, not a secret
# 32 random bytes = 256 bits of entropy, url-safe base64 encoded.
TOKEN_RANDOM_BYTES = 32
SESSION_FINGERPRINT_CHARS = 16


class AccessDeniedError(PostcallError):
    """The user can see the record but their role does not allow the action."""


class UserError(PostcallError):
    """A user cannot be created or changed as asked (missing name or agent id, unknown user)."""


class UserExistsError(UserError):
    """The tenant already has a user of that name."""


class InactiveUserError(UserError):
    """The user was deactivated: nothing they hold can work again, so nothing new is issued to them."""


class TokenExpiredError(PostcallError):
    """The token is an active user's current one, but its lifetime is over. Only the token's holder can be
    told so (nobody else can present it); the web layer answers 401 with this message."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(
            f"this token expired at {as_utc(expired_at):%Y-%m-%d %H:%M:%S} UTC: ask an admin of your tenant for "
            "a new one (`postcall users rotate-token NAME`, or POST /api/users/{id}/rotate-token); a token still "
            "working can rotate itself before it expires (POST /api/me/rotate-token)"
        )
        self.expired_at = expired_at


class UserEventAction(StrEnum):
    """What a `user_events` row records."""

    created = "user_created"
    deactivated = "user_deactivated"
    token_rotated = "token_rotated"  # noqa: S105 - an action's name, not a secret
    view_pii_granted = "view_pii_granted"
    view_pii_revoked = "view_pii_revoked"
    reactivated = "user_reactivated"
    changed = "user_changed"  # role, team or agent id


@dataclass(frozen=True)
class Principal:
    """The signed-in user as the request handlers see it: plain values, no ORM state."""

    user_id: int
    name: str
    tenant_id: int
    tenant: str
    role: UserRole
    team: str | None = None
    agent_id: str | None = None
    view_pii: bool = False
    # When the token signed in with stops working (None: never). A fact about the credential, not about who
    # the user is or may do: two principals of one user compare equal across a rotation.
    token_expires_at: datetime | None = field(default=None, compare=False)

    @property
    def can_review(self) -> bool:
        """Approve, edit, reject and add items; approve or reject a call (within what they see)."""
        return self.role in {UserRole.agent, UserRole.supervisor, UserRole.admin}

    @property
    def can_submit_calls(self) -> bool:
        """Hand over transcripts through the API. Agents and analysts do not feed the pipeline."""
        return self.role in {UserRole.supervisor, UserRole.admin}

    @property
    def can_reopen_calls(self) -> bool:
        """Send an approved or rejected call back to review. A decision stands unless a supervisor says so."""
        return self.role in {UserRole.supervisor, UserRole.admin}

    @property
    def can_delete_calls(self) -> bool:
        return self.role is UserRole.admin

    @property
    def can_view_pii(self) -> bool:
        """Unmask card numbers, SSNs and accounts on request (each time audited). Granted by an admin."""
        return self.view_pii

    @property
    def can_manage_users(self) -> bool:
        return self.role is UserRole.admin

    def require(self, allowed: bool, action: str) -> None:
        if not allowed:
            raise AccessDeniedError(f"role {self.role.value!r} may not {action}")


def visible_calls_clause(principal: Principal) -> ColumnElement[bool]:
    """The SQL condition selecting exactly the calls this user may see."""
    return visibility_clause(principal, Call.tenant_id, Call.agent_id, Call.team)


def visibility_clause(
    principal: Principal,
    tenant_id: ColumnElement[int] | InstrumentedAttribute[int],
    agent_id: ColumnElement[str | None] | InstrumentedAttribute[str | None],
    team: ColumnElement[str | None] | InstrumentedAttribute[str | None],
) -> ColumnElement[bool]:
    """The call visibility rule applied to any rows that carry a call's tenant, agent id and team (the
    calls themselves, or hand-off events that outlive their call)."""
    tenant_scope = tenant_id == principal.tenant_id
    if principal.role is UserRole.agent:
        if not principal.agent_id:
            # An agent without an agent id owns no calls; never fall back to "all".
            return false()
        return and_(tenant_scope, agent_id == principal.agent_id)
    if principal.role is UserRole.supervisor and principal.team:
        return and_(tenant_scope, team == principal.team)
    return tenant_scope


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_expiry(issued_at: datetime, lifetime_days: int | None = None) -> datetime | None:
    """When a token issued at `issued_at` stops working; None when tokens do not expire (a lifetime of 0).
    `lifetime_days` None: POSTCALL_TOKEN_LIFETIME_DAYS."""
    days = get_settings().token_lifetime_days if lifetime_days is None else lifetime_days
    return None if days == 0 else issued_at + timedelta(days=days)


def token_expired(expires_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether a token expiring at `expires_at` no longer works at `now`: it works up to, not at, that moment."""
    return expires_at is not None and as_utc(now or utcnow()) >= as_utc(expires_at)


def _moment(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _record(session: Session, user: User, actor: Actor, action: UserEventAction, detail: dict[str, Any]) -> None:
    """Append the audit row of a change to `user`, in the change's transaction. `detail` names fields and
    their values, never a token or its hash."""
    session.add(UserEvent(
        tenant_id=user.tenant_id,
        user_id=user.id,
        user_name=user.name,
        actor_user_id=actor.user_id,
        actor_name=actor.name,
        action=action.value,
        detail=detail,
    ))


@dataclass(frozen=True)
class NewUser:
    user: User
    token: str  # the only time the plain token exists outside the caller's hands


def create_user(
    session: Session,
    *,
    tenant: str,
    name: str,
    role: UserRole,
    team: str | None = None,
    agent_id: str | None = None,
    actor: Actor = SYSTEM_ACTOR,
    token_lifetime_days: int | None = None,
) -> NewUser:
    """Create a user (and the tenant, when new) with a fresh API token, expiring after `token_lifetime_days`
    (None: POSTCALL_TOKEN_LIFETIME_DAYS), and record it (`actor`: who asked). Flushes; never commits."""
    name = name.strip()
    if not name:
        raise UserError("a user needs a name")
    # Read on every page, list and line that shows the user, and typed back: checked as an external id is.
    require_printable(name, "the user name", "it names the user on every page and list")
    if agent_id:
        require_printable(agent_id, "the agent id", "it is matched with the agent ids calls carry")
    if team:
        require_printable(team, "the team", "it is matched with the teams calls carry")
    if role is UserRole.agent and not agent_id:
        raise UserError(
            "an agent needs an agent id (--agent-id, or agent_id in the API): agents see only the calls carrying it"
        )
    tenant_row = get_or_create_tenant(session, tenant)
    taken = session.scalar(select(User.id).where(User.tenant_id == tenant_row.id, User.name == name))
    if taken is not None:
        raise UserExistsError(f"user {name!r} already exists in tenant {tenant!r}")
    token = generate_token()
    user = User(
        tenant_id=tenant_row.id,
        name=name,
        role=role,
        team=team or None,
        agent_id=agent_id or None,
        token_hash=hash_token(token),
        token_expires_at=token_expiry(utcnow(), token_lifetime_days),
        active=True,
    )
    try:
        with session.begin_nested():  # a concurrent creation of the same name wins the unique index
            session.add(user)
            session.flush()
            # Inside the savepoint with the user: on SQLite a savepoint opened before any write of the
            # transaction is its outermost one (the driver begins a transaction only at a first write), and
            # its release commits; the user and its event go together either way.
            _record(session, user, actor, UserEventAction.created, {
                "role": user.role.value, "team": user.team, "agent_id": user.agent_id, "view_pii": False,
                "token_expires_at": _moment(user.token_expires_at),
            })
            session.flush()
    except IntegrityError:
        if session.scalar(select(User.id).where(User.tenant_id == tenant_row.id, User.name == name)) is None:
            raise  # another constraint than the name's
        raise UserExistsError(f"user {name!r} already exists in tenant {tenant!r}") from None
    return NewUser(user, token)


@dataclass(frozen=True)
class IssuedToken:
    user: User
    token: str  # the new token, shown this once; the one it replaces no longer works


def principal_of(user: User, tenant_slug: str) -> Principal:
    return Principal(
        user_id=user.id,
        name=user.name,
        tenant_id=user.tenant_id,
        tenant=tenant_slug,
        role=user.role,
        team=user.team,
        agent_id=user.agent_id,
        view_pii=bool(user.view_pii),
        token_expires_at=user.token_expires_at,
    )


def _users_with_slug() -> Select[User, str]:
    return select(User, Tenant.slug).join(Tenant, Tenant.id == User.tenant_id)


def _token_holder(session: Session, token: str, now: datetime | None) -> tuple[User, str] | None:
    """The active user whose current token this is, with their tenant's slug; None for a token that is
    nobody's (never issued, replaced) and for a deactivated user's. TokenExpiredError for an expired one:
    looked up by the token's hash, so only its holder ever hears that."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(
        _users_with_slug().where(User.token_hash == hash_token(token), User.active.is_(True))
    ).first()
    if row is None:
        return None
    user, slug = row
    if token_expired(user.token_expires_at, now):
        assert user.token_expires_at is not None
        raise TokenExpiredError(user.token_expires_at)
    return user, slug


def token_principal(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    """The active user holding this unexpired token; None when it is nobody's current token or a deactivated
    user's; TokenExpiredError when it is an active user's but expired (`now`: the moment to judge at)."""
    holder = _token_holder(session, token, now)
    return None if holder is None else principal_of(*holder)


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> Principal | None:
    """The active user holding this unexpired token, or None (`token_principal` tells an expired one apart)."""
    try:
        return token_principal(session, token, now=now)
    except TokenExpiredError:
        return None


def session_fingerprint(token_hash: str, session_version: int) -> str:
    """What a browser session remembers of the user: enough to notice a changed token or a sign-out
    (a new session version), useless as a credential."""
    digest = hashlib.sha256(f"{token_hash}:{session_version}".encode()).hexdigest()
    return digest[:SESSION_FINGERPRINT_CHARS]


def load_principal(
    session: Session, user_id: int, fingerprint: str, *, now: datetime | None = None
) -> Principal | None:
    """Re-check a signed-in session: the user still exists, is active, still holds the same token, that
    token has not expired (a session lives no longer than the token it was signed in with) and they have
    not signed out since."""
    row = session.execute(_users_with_slug().where(User.id == user_id)).first()
    if row is None:
        return None
    user, slug = row
    expected = session_fingerprint(user.token_hash, user.session_version)
    if not user.active or not secrets.compare_digest(expected, fingerprint):
        return None
    if token_expired(user.token_expires_at, now):
        return None
    return principal_of(user, slug)


def signed_in(session: Session, token: str, *, now: datetime | None = None) -> tuple[Principal, str] | None:
    """Authenticate a token for a browser sign-in: the principal and the session fingerprint; None for an
    invalid token, TokenExpiredError for an expired one (as `token_principal`)."""
    holder = _token_holder(session, token, now)
    if holder is None:
        return None
    user, slug = holder
    return principal_of(user, slug), session_fingerprint(user.token_hash, user.session_version)


def end_browser_sessions(session: Session, user_id: int) -> None:
    """Sign a user out everywhere: every session cookie issued so far stops working. Flushes."""
    user = session.get(User, user_id)
    if user is not None:
        user.session_version += 1
        session.flush()


def list_users(session: Session, tenant: str | None = None) -> list[tuple[User, str]]:
    """Users with their tenant slug, ordered by tenant then name."""
    query = _users_with_slug().order_by(Tenant.slug, User.name)
    if tenant is not None:
        query = query.where(Tenant.slug == tenant)
    return [(user, slug) for user, slug in session.execute(query).all()]


def set_view_pii(session: Session, tenant: str, name: str, *, allowed: bool, actor: Actor = SYSTEM_ACTOR) -> User:
    """Grant or revoke the `view_pii` permission (an admin's decision), recorded when it changes anything.
    Flushes."""
    user = _find_user(session, tenant, name)
    before = bool(user.view_pii)
    if before != allowed:
        user.view_pii = allowed
        action = UserEventAction.view_pii_granted if allowed else UserEventAction.view_pii_revoked
        _record(session, user, actor, action, {"view_pii": {"from": before, "to": allowed}})
    session.flush()
    return user


def _find_user(session: Session, tenant: str, name: str) -> User:
    tenant_row = find_tenant(session, tenant)
    user = None
    if tenant_row is not None:
        user = session.scalar(select(User).where(User.tenant_id == tenant_row.id, User.name == name))
    if user is None:
        raise UserError(f"no user {name!r} in tenant {tenant!r}")
    return user


class TokenReplacedError(UserError):
    """The token a user asked to replace was replaced meanwhile (by an admin, or another request of theirs)."""


def rotate_token_by_name(
    session: Session, tenant: str, name: str, *, actor: Actor = SYSTEM_ACTOR, token_lifetime_days: int | None = None
) -> IssuedToken:
    """Give user `name` of `tenant` a new API token (an operator's `postcall users rotate-token`). Flushes."""
    found = _find_user(session, tenant, name)
    user = scalar_for_update(session, select(User).where(User.id == found.id))
    assert user is not None  # found in this transaction
    return _rotate_token(session, user, actor, token_lifetime_days)


def rotate_token_by_id(
    session: Session,
    tenant_id: int,
    user_id: int,
    *,
    replacing: str | None = None,
    actor: Actor = SYSTEM_ACTOR,
    token_lifetime_days: int | None = None,
    may_take_pii: bool = True,
) -> IssuedToken:
    """Give user `user_id` a new API token, if they belong to tenant `tenant_id` (an admin's, or the user's
    own, request). Another tenant's user is not found, exactly as one that does not exist. `replacing`: the
    token a user's own request came with, which must still be theirs (TokenReplacedError): an admin who
    rotated a leaked token while its thief asked for a new one leaves the thief nothing. `may_take_pii`:
    whether the one asking may hold a token that unmasks personal data; an admin without view_pii who could
    take the token of a user with it would unmask calls as them (AccessDeniedError). The user's row is
    locked, so two rotations take turns and the second sees the first's token. Flushes."""
    user = _locked_tenant_user(session, tenant_id, user_id)
    _refuse_taking_a_pii_token(user, may_take_pii)
    if replacing is not None and user.token_hash != hash_token(replacing):
        raise TokenReplacedError("the token this request came with was replaced meanwhile: nothing was issued")
    return _rotate_token(session, user, actor, token_lifetime_days)


def _rotate_token(session: Session, user: User, actor: Actor, lifetime_days: int | None) -> IssuedToken:
    """The old token stops working at once (only the new one's hash is kept), and so does every browser
    session signed in with it. The new one expires after `lifetime_days` (None: the setting)."""
    if not user.active:
        raise InactiveUserError(f"user {user.name!r} is deactivated: a new token would not sign in either")
    return _issue_token(session, user, actor, lifetime_days, UserEventAction.token_rotated, {})


def _issue_token(session: Session, user: User, actor: Actor, lifetime_days: int | None, action: UserEventAction,
                 detail: dict[str, Any]) -> IssuedToken:
    """Give `user` a new token, expiring after `lifetime_days` (None: the setting), recorded as `action` with
    `detail` and the old and new expiry; only its hash is kept. Flushes."""
    token = generate_token()
    previous_expiry = user.token_expires_at
    user.token_hash = hash_token(token)
    user.token_expires_at = token_expiry(utcnow(), lifetime_days)
    _record(session, user, actor, action, {
        **detail, "token_expires_at": {"from": _moment(previous_expiry), "to": _moment(user.token_expires_at)},
    })
    # The session fingerprint covers the token hash, so the new hash alone ends the sessions; the version is
    # raised too so that ending them does not rest on what the fingerprint happens to be made of.
    user.session_version += 1
    session.flush()
    return IssuedToken(user, token)


def _locked_tenant_user(session: Session, tenant_id: int, user_id: int) -> User:
    """User `user_id` of tenant `tenant_id`, row-locked; another tenant's user is not found, as a missing one."""
    user = scalar_for_update(session, select(User).where(User.id == user_id, User.tenant_id == tenant_id))
    if user is None:
        raise NotFoundError(f"no user {user_id}")
    return user


def _refuse_taking_a_pii_token(user: User, may_take_pii: bool) -> None:
    """An admin without view_pii who could take the token of a user with it would unmask calls as them."""
    if user.view_pii and not may_take_pii:
        raise AccessDeniedError(
            f"user {user.name!r} may see personal data unmasked: only an admin who may too can issue their token "
            "(or they rotate it themselves, or an operator with `postcall users rotate-token`)")


def deactivate_user(session: Session, tenant: str, name: str, *, actor: Actor = SYSTEM_ACTOR) -> User:
    """Switch a user off: their token and any signed-in session stop working at the next request. Recorded
    when the user was active. Flushes."""
    return _deactivate(session, _find_user(session, tenant, name), actor)


def _deactivate(session: Session, user: User, actor: Actor) -> User:
    if user.active:
        user.active = False
        _record(session, user, actor, UserEventAction.deactivated, {"active": {"from": True, "to": False}})
    session.flush()
    return user


class ActiveUserError(UserError):
    """The user to switch on again is active."""


class LastAdminError(UserError):
    """The change would leave the tenant without an active admin, so nobody could manage its users."""


class _Keep:
    """A field a change leaves as it is (None clears a team or an agent id)."""


KEEP = _Keep()


def change_user(
    session: Session,
    tenant_id: int,
    user_id: int,
    *,
    role: UserRole | None = None,
    team: str | _Keep | None = KEEP,
    agent_id: str | _Keep | None = KEEP,
    actor: Actor = SYSTEM_ACTOR,
    keep_an_admin: bool = True,
) -> User:
    """Give user `user_id` of tenant `tenant_id` a new role, team or agent id (a promotion, a move to another
    team; None clears a team or an agent id), recorded when it changes anything. The role is read from the
    database on every request, so the change holds from the user's next one. An agent needs an agent id, as at
    creation. `keep_an_admin`: refuse to leave the tenant without an active admin (an admin's own request; an
    operator's command may, and can add one again); the tenant's admins are locked first, in id order, so two
    admins demoting each other take turns. Another tenant's user is not found. Flushes."""
    if role is not None and keep_an_admin and role is not UserRole.admin:
        _lock_active_admins(session, tenant_id)
    user = _locked_tenant_user(session, tenant_id, user_id)
    new_team = user.team if isinstance(team, _Keep) else (team.strip() or None if team is not None else None)
    new_agent_id = user.agent_id if isinstance(agent_id, _Keep) else (
        agent_id.strip() or None if agent_id is not None else None)
    new_role = role or user.role
    if new_agent_id and new_agent_id != user.agent_id:
        require_printable(new_agent_id, "the agent id", "it is matched with the agent ids calls carry")
    if new_team and new_team != user.team:
        require_printable(new_team, "the team", "it is matched with the teams calls carry")
    if new_role is UserRole.agent and not new_agent_id:
        raise UserError("an agent needs an agent id (--agent-id, or agent_id in the API): agents see only the calls "
                        "carrying it")
    if keep_an_admin and new_role is not UserRole.admin:
        _refuse_removing_the_last_admin(session, tenant_id, user)
    changes: dict[str, Any] = {}
    for column, value in (("role", new_role), ("team", new_team), ("agent_id", new_agent_id)):
        before = getattr(user, column)
        if before != value:
            changes[column] = {"from": _plain(before), "to": _plain(value)}
            setattr(user, column, value)
    if changes:
        _record(session, user, actor, UserEventAction.changed, changes)
    session.flush()
    return user


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, UserRole) else value


def _lock_active_admins(session: Session, tenant_id: int) -> None:
    scalars_for_update(session, select(User.id).where(
        User.tenant_id == tenant_id, User.role == UserRole.admin, User.active.is_(True)).order_by(User.id), of=User)


def _refuse_removing_the_last_admin(session: Session, tenant_id: int, user: User) -> None:
    """LastAdminError when `user` is the tenant's only active admin (the caller locked the admins first)."""
    if not (user.active and user.role is UserRole.admin):
        return
    others = session.scalars(select(User.id).where(
        User.tenant_id == tenant_id, User.role == UserRole.admin, User.active.is_(True), User.id != user.id)).first()
    if others is None:
        raise LastAdminError(f"{user.name!r} is the tenant's only active admin: make another user admin first")


def deactivate_user_by_id(
    session: Session, tenant_id: int, user_id: int, *, actor: Actor = SYSTEM_ACTOR, keep_an_admin: bool = True
) -> User:
    """Switch user `user_id` of tenant `tenant_id` off (an admin's request): as `deactivate_user`, refusing to
    switch off the tenant's last active admin (`keep_an_admin`). Another tenant's user is not found. Flushes."""
    if keep_an_admin:
        _lock_active_admins(session, tenant_id)
    user = _locked_tenant_user(session, tenant_id, user_id)
    if keep_an_admin:
        _refuse_removing_the_last_admin(session, tenant_id, user)
    return _deactivate(session, user, actor)


def reactivate_user(
    session: Session,
    tenant_id: int,
    user_id: int,
    *,
    actor: Actor = SYSTEM_ACTOR,
    token_lifetime_days: int | None = None,
    may_take_pii: bool = True,
) -> IssuedToken:
    """Switch a deactivated user on again, with a NEW API token (returned, shown once): the token they held
    when switched off never works again, since it may be why they were. Their role, team, agent id and
    view_pii are as they were. `may_take_pii` as for `rotate_token_by_id`. UserError when the user is active.
    Another tenant's user is not found. Flushes."""
    user = _locked_tenant_user(session, tenant_id, user_id)
    if user.active:
        raise ActiveUserError(f"user {user.name!r} is active: a token rotation gives them a new token")
    _refuse_taking_a_pii_token(user, may_take_pii)
    user.active = True
    return _issue_token(session, user, actor, token_lifetime_days, UserEventAction.reactivated,
                        {"active": {"from": False, "to": True}})


def user_history(
    session: Session,
    tenant_id: int,
    *,
    user_id: int | None = None,
    after: int | None = None,
    limit: int | None = None,
    newest: bool = False,
) -> list[UserEvent]:
    """Tenant `tenant_id`'s user events, oldest first: one user's (`user_id`) or every user's, after event id
    `after` (the last of the previous page), at most `limit` (the oldest of them, or with `newest` the
    newest). Only ever one tenant's: the caller says whose."""
    statement = select(UserEvent).where(UserEvent.tenant_id == tenant_id)
    if user_id is not None:
        statement = statement.where(UserEvent.user_id == user_id)
    if after is not None:
        statement = statement.where(UserEvent.id > after)
    statement = statement.order_by(UserEvent.id.desc() if newest else UserEvent.id)
    if limit is not None:
        statement = statement.limit(limit)
    events = list(session.scalars(statement))
    return events[::-1] if newest else events


def find_user_id(session: Session, tenant: str, name: str) -> int:
    """The id of user `name` of `tenant`; UserError when there is none."""
    return _find_user(session, tenant, name).id


def require_tenant_user(session: Session, tenant_id: int, user_id: int) -> None:
    """NotFoundError unless user `user_id` belongs to tenant `tenant_id` (another tenant's user is not
    found, exactly as one that does not exist)."""
    found = session.scalar(select(User.id).where(User.id == user_id, User.tenant_id == tenant_id))
    if found is None:
        raise NotFoundError(f"no user {user_id}")
