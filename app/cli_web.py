"""`postcall users ...` and `postcall serve`. Registered in app/cli.py:

    app.add_typer(users_app, name="users")
    app.command()(serve)
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
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


# Control characters (ANSI escape sequences start with ESC), and the bidirectional overrides that reorder
# what a terminal shows: data never drives the terminal, it is shown as `\x1b`, `\u202e`.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")


def _visible_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: object) -> str:
    """Data (transcript text, ids, names, error messages quoting them) made safe to print through Rich:
    markup is escaped (`[/red]` prints as is) and control characters are shown, never sent."""
    text = _LINE_BREAKS.sub(" ", str(value))
    return escape(_CONTROL.sub(_visible_escape, text))


def _checked_context() -> AppContext:
    """The context for a command that needs the database: a bad URL, an unreachable server or a missing
    schema is one line and exit 2, and a missing SQLite file is not created."""
    from app.db.migrate import require_current_schema

    settings = get_settings()
    try:
        require_current_schema(settings.database_url)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    return AppContext(settings)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error and give the exit to raise (2: bad input or setup). Shared by the CLI."""
    err_console.print(f"[red]error:[/red] {safe(message)}", highlight=False, soft_wrap=True)
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
    ctx = _checked_context()
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
    console.print(f"created {role.value} [bold]{safe(name)}[/bold] in tenant {safe(slug)} (id {user_id})",
                  highlight=False)
    console.print("API token (shown once; store it now):", highlight=False)
    # Plain print: no wrapping or markup may alter the token.
    print(created.token)


@users_app.command("list")
def users_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """List users (never their tokens)."""
    ctx = _checked_context()
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
        table.add_row(str(row["id"]), safe(row["tenant"]), safe(row["name"]), str(row["role"]),
                      safe(row["team"] or "—"), safe(row["agent_id"] or "—"), "yes" if row["active"] else "no")
    console.print(table)


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOption = None,
) -> None:
    """Switch a user off: their token and browser sessions stop working at once."""
    ctx = _checked_context()
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            deactivate_user(session, slug, name)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"deactivated {safe(name)} in tenant {safe(slug)}", highlight=False)


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

    try:
        get_settings().check_redelivery_order()
    except PostcallError as exc:
        raise fail(str(exc)) from exc

    if reload:
        # The reloader imports the app afresh in a child process, so it needs the factory's import path.
        uvicorn.run("app.web.app:create_app", factory=True, host=host, port=port, reload=True)
        return
    from app.web.app import create_app

    uvicorn.run(create_app(get_settings(), https_only=https_only), host=host, port=port)
