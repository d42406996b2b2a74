"""`postcall users ...`: users of the review app and API, their tokens and their personal-data permission.

Every change is recorded in the tenant's user audit trail (`postcall users history`) as made by
`cli:<OS account>`, the command line's actor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from app.cli.common import (
    CLI_ACTOR,
    JsonOpt,
    TenantOpt,
    checked_context,
    require_tenant_id,
    tenant_context,
    transaction,
)
from app.cli.render import print_json, print_secret, print_table, safe, say
from app.db.types import as_utc
from app.models import UserRole
from app.users import (
    KEEP,
    change_user,
    create_user,
    deactivate_user,
    find_user_id,
    list_users,
    reactivate_user,
    rotate_token_by_name,
    set_view_pii,
    user_history,
)

# `postcall users history` shows at most this many events unless --limit says otherwise (newest kept).
DEFAULT_HISTORY_LIMIT = 200

users_app = typer.Typer(help="Users of the review app and API, and their tokens.", no_args_is_help=True)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name, unique within the tenant.")],
    role: Annotated[UserRole, typer.Option("--role", help="What the user may see and do.")],
    tenant: TenantOpt = None,
    team: Annotated[str | None, typer.Option("--team", help="A supervisor with a team sees only that team.")] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="Required for agents: their calls.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print their API token. The token is shown this once; only its hash is stored."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        created = create_user(session, tenant=slug, name=name, role=role, team=team, agent_id=agent_id,
                              actor=CLI_ACTOR, token_lifetime_days=ctx.settings.token_lifetime_days)
        user_id, expires_at = created.user.id, created.user.token_expires_at
    if as_json:
        print_json({"id": user_id, "name": name, "tenant": slug, "role": role.value, "team": team,
                    "agent_id": agent_id, "token_expires_at": _iso(expires_at), "token": created.token})
        return
    say(f"created {role.value} [bold]{safe(name)}[/bold] in tenant {safe(slug)} (id {user_id}); "
        f"the token {_expiry_phrase(expires_at)}")
    print_secret("API token (shown once; store it now):", created.token)


@users_app.command("list")
def users_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List users (never their tokens)."""
    ctx = checked_context()
    with transaction(ctx) as session:
        rows = [
            {"id": user.id, "name": user.name, "tenant": slug, "role": user.role.value, "team": user.team,
             "agent_id": user.agent_id, "active": user.active, "token_expires_at": _iso(user.token_expires_at)}
            for user, slug in list_users(session, tenant)
        ]
    if as_json:
        print_json({"users": rows})
        return
    print_table(("id", "tenant", "name", "role", "team", "agent id", "active", "token expires"),
                ([r["id"], r["tenant"], r["name"], r["role"], r["team"], r["agent_id"], r["active"],
                  r["token_expires_at"] or "never"] for r in rows))


@users_app.command("rotate-token")
def users_rotate_token(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a user a new API token and print it once: the old token and their browser sessions stop at once."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        issued = rotate_token_by_name(session, slug, name, actor=CLI_ACTOR,
                                      token_lifetime_days=ctx.settings.token_lifetime_days)
        user_id, expires_at = issued.user.id, issued.user.token_expires_at
    _print_new_token(issued.token, user_id, name, slug, expires_at, as_json=as_json,
                     what=f"new token for [bold]{safe(name)}[/bold]",
                     old="the old token and its browser sessions no longer work")


def _print_new_token(token: str, user_id: int, name: str, slug: str, expires_at: datetime | None, *,
                     as_json: bool, what: str, old: str) -> None:
    """A token just issued, shown once: as JSON, or as a line saying `what` happened and what of `old`."""
    if as_json:
        print_json({"id": user_id, "name": name, "tenant": slug, "token_expires_at": _iso(expires_at),
                    "token": token})
        return
    say(f"{what} in tenant {safe(slug)} (id {user_id}); {old}; the new one {_expiry_phrase(expires_at)}")
    print_secret("API token (shown once; store it now):", token)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOpt = None,
) -> None:
    """Switch a user off: their token and browser sessions stop working at once."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        deactivate_user(session, slug, name, actor=CLI_ACTOR)
    say(f"deactivated {safe(name)} in tenant {safe(slug)}")


@users_app.command("reactivate")
def users_reactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Switch a deactivated user on again with a NEW API token, printed once (the old one never works again)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        tenant_id = require_tenant_id(session, slug)
        issued = reactivate_user(session, tenant_id, find_user_id(session, slug, name), actor=CLI_ACTOR,
                                 token_lifetime_days=ctx.settings.token_lifetime_days)
        user_id, expires_at = issued.user.id, issued.user.token_expires_at
    _print_new_token(issued.token, user_id, name, slug, expires_at, as_json=as_json,
                     what=f"reactivated [bold]{safe(name)}[/bold]", old="their old token stays invalid")


@users_app.command("change")
def users_change(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[UserRole | None, typer.Option("--role", help="A new role.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="A new team (a supervisor with one sees only it).")] = None,
    no_team: Annotated[bool, typer.Option("--no-team", help="Clear the team.")] = False,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="A new agent id (an agent's calls).")] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a user a new role, team or agent id; it holds from their next request. Their token is unchanged."""
    if team is not None and no_team:
        raise typer.BadParameter("give --team or --no-team, not both")
    if role is None and team is None and not no_team and agent_id is None:
        raise typer.BadParameter("nothing to change: give --role, --team, --no-team or --agent-id")
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        tenant_id = require_tenant_id(session, slug)
        # An operator may leave the tenant without an admin (and add one again); an admin's request may not.
        user = change_user(session, tenant_id, find_user_id(session, slug, name), role=role,
                           team=None if no_team else (team if team is not None else KEEP),
                           agent_id=agent_id if agent_id is not None else KEEP, actor=CLI_ACTOR,
                           keep_an_admin=False)
        row = {"id": user.id, "name": user.name, "tenant": slug, "role": user.role.value, "team": user.team,
               "agent_id": user.agent_id, "active": user.active}
    if as_json:
        print_json(row)
        return
    say(f"{safe(name)} in tenant {safe(slug)} is now {row['role']}, team {safe(row['team'] or '-')}, agent id "
        f"{safe(row['agent_id'] or '-')}")


@users_app.command("grant-pii")
def users_grant_pii(
    name: Annotated[str, typer.Argument(help="User name.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the permission away.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Allow a user to unmask card numbers, SSNs and accounts (every unmasked view is audited)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        set_view_pii(session, slug, name, allowed=not revoke, actor=CLI_ACTOR)
    verb = "revoked view_pii from" if revoke else "granted view_pii to"
    say(f"{verb} {safe(name)} in tenant {safe(slug)}")


@users_app.command("history")
def users_history(
    name: Annotated[str | None, typer.Argument(help="Only this user's changes.")] = None,
    tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="Show at most this many, the newest.")] =
        DEFAULT_HISTORY_LIMIT,
    as_json: JsonOpt = False,
) -> None:
    """The tenant's audit trail of user changes, oldest first: who created, deactivated, gave a new token
    to, or granted or revoked view_pii for whom, and when. One tenant's only (--tenant)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        tenant_id = require_tenant_id(session, slug)
        user_id = None if name is None else find_user_id(session, slug, name)
        events = user_history(session, tenant_id, user_id=user_id, limit=limit, newest=True)
        rows = [
            {"id": event.id, "at": _iso(event.created_at), "user_id": event.user_id, "user": event.user_name,
             "actor_user_id": event.actor_user_id, "actor": event.actor_name, "action": event.action,
             "detail": event.detail}
            for event in events
        ]
        lines = [[event.id, _iso(event.created_at), event.user_name, event.actor_name, event.action,
                  _changes(event.detail)] for event in events]
    if as_json:
        print_json({"tenant": slug, "events": rows})
        return
    print_table(("id", "at", "user", "by", "action", "what changed"), lines)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def _expiry_phrase(moment: datetime | None) -> str:
    return "never expires" if moment is None else f"expires {as_utc(moment):%Y-%m-%d %H:%M} UTC"


def _changes(detail: dict[str, Any]) -> str:
    """A change's detail on one line: `field: from -> to`, or `field=value` for a new user's fields."""
    parts = []
    for field, value in detail.items():
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            parts.append(f"{field}: {value['from']} -> {value['to']}")
        else:
            parts.append(f"{field}={value}")
    return ", ".join(parts)
