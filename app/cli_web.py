"""`postcall users ...` and `postcall serve`. Registered in app/cli.py:

    app.add_typer(users_app, name="users")
    app.command()(serve)
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.config import get_settings
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.models import UserRole
from app.users import create_user, deactivate_user, list_users
from app.worker.context import AppContext

users_app = typer.Typer(help="Users of the review app and API, and their tokens.", no_args_is_help=True)

console = Console()
err_console = Console(stderr=True)

TenantOption = Annotated[str | None, typer.Option("--tenant", help="Tenant slug (default: POSTCALL_DEFAULT_TENANT).")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error and give the exit to raise (2: bad input or setup). Shared by the CLI."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name, unique within the tenant.")],
    role: Annotated[UserRole, typer.Option("--role", help="What the user may see and do.")],
    tenant: TenantOption = None,
    team: Annotated[str | None, typer.Option("--team", help="A supervisor with a team sees only that team.")] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="Required for agents: their calls.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Create a user and print their API token. The token is shown this once; only its hash is stored."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            created = create_user(session, tenant=slug, name=name, role=role, team=team, agent_id=agent_id)
            user_id = created.user.id
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        print(json.dumps({"id": user_id, "name": name, "tenant": slug, "role": role.value, "team": team,
                          "agent_id": agent_id, "token": created.token}))
        return
    console.print(f"created {role.value} [bold]{name}[/bold] in tenant {slug} (id {user_id})", highlight=False)
    console.print("API token (shown once; store it now):", highlight=False)
    # Plain print: no wrapping or markup may alter the token.
    print(created.token)


@users_app.command("list")
def users_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """List users (never their tokens)."""
    ctx = AppContext(get_settings())
    with unit_of_work(ctx.session_factory) as session:
        rows = [
            {"id": user.id, "name": user.name, "tenant": slug, "role": user.role.value, "team": user.team,
             "agent_id": user.agent_id, "active": user.active}
            for user, slug in list_users(session, tenant)
        ]
    if as_json:
        print(json.dumps({"users": rows}))
        return
    table = Table("id", "tenant", "name", "role", "team", "agent id", "active")
    for row in rows:
        table.add_row(str(row["id"]), str(row["tenant"]), str(row["name"]), str(row["role"]),
                      str(row["team"] or "—"), str(row["agent_id"] or "—"), "yes" if row["active"] else "no")
    console.print(table)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOption = None,
) -> None:
    """Switch a user off: their token and browser sessions stop working at once."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            deactivate_user(session, slug, name)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"deactivated {name} in tenant {slug}", highlight=False)


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (development).")] = False,
    https_only: Annotated[
        bool, typer.Option("--https-only", help="Mark the session cookie Secure (serve behind TLS).")
    ] = False,
) -> None:
    """Serve the review web app and the JSON API (OpenAPI spec at /openapi.json)."""
    import uvicorn

    if reload:
        # The reloader imports the app afresh in a child process, so it needs the factory's import path.
        uvicorn.run("app.web.app:create_app", factory=True, host=host, port=port, reload=True)
        return
    from app.web.app import create_app

    uvicorn.run(create_app(get_settings(), https_only=https_only), host=host, port=port)
