"""`postcall users ...`: users of the review app and API, their tokens and their personal-data permission."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import JsonOpt, TenantOpt, checked_context, tenant_context, transaction
from app.cli.render import print_json, print_secret, print_table, safe, say
from app.models import UserRole
from app.users import create_user, deactivate_user, list_users, rotate_token_by_name, set_view_pii

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
        created = create_user(session, tenant=slug, name=name, role=role, team=team, agent_id=agent_id)
        user_id = created.user.id
    if as_json:
        print_json({"id": user_id, "name": name, "tenant": slug, "role": role.value, "team": team,
                    "agent_id": agent_id, "token": created.token})
        return
    say(f"created {role.value} [bold]{safe(name)}[/bold] in tenant {safe(slug)} (id {user_id})")
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
             "agent_id": user.agent_id, "active": user.active}
            for user, slug in list_users(session, tenant)
        ]
    if as_json:
        print_json({"users": rows})
        return
    print_table(("id", "tenant", "name", "role", "team", "agent id", "active"),
                ([r["id"], r["tenant"], r["name"], r["role"], r["team"], r["agent_id"], r["active"]] for r in rows))


@users_app.command("rotate-token")
def users_rotate_token(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a user a new API token and print it once: the old token and their browser sessions stop at once."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        issued = rotate_token_by_name(session, slug, name)
        user_id = issued.user.id
    if as_json:
        print_json({"id": user_id, "name": name, "tenant": slug, "token": issued.token})
        return
    say(f"new token for [bold]{safe(name)}[/bold] in tenant {safe(slug)} (id {user_id}); "
        "the old token and its browser sessions no longer work")
    print_secret("API token (shown once; store it now):", issued.token)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOpt = None,
) -> None:
    """Switch a user off: their token and browser sessions stop working at once."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        deactivate_user(session, slug, name)
    say(f"deactivated {safe(name)} in tenant {safe(slug)}")


@users_app.command("grant-pii")
def users_grant_pii(
    name: Annotated[str, typer.Argument(help="User name.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the permission away.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Allow a user to unmask card numbers, SSNs and accounts (every unmasked view is audited)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        set_view_pii(session, slug, name, allowed=not revoke)
    verb = "revoked view_pii from" if revoke else "granted view_pii to"
    say(f"{verb} {safe(name)} in tenant {safe(slug)}")
