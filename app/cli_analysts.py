"""`postcall analysts ...` (PostgreSQL roles for analysts, the tenant time zone) and `postcall export`.
Registered in app/cli.py:

    app.add_typer(analysts_app, name="analysts")
    app.command()(export)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.markup import escape
from rich.table import Table

from app.analysts import grant_analyst, list_analysts, revoke_analyst
from app.cli_web import console, err_console, fail
from app.config import get_settings
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.export import ExportFormat, ExportWindow, export_bytes, parse_instant
from app.pipeline.calls import find_tenant
from app.worker.context import AppContext

analysts_app = typer.Typer(
    help="Read-only PostgreSQL logins for analysts, each seeing one tenant in the analyst views.",
    no_args_is_help=True,
)

TenantOption = Annotated[str | None, typer.Option("--tenant", help="Tenant slug (default: POSTCALL_DEFAULT_TENANT).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _context() -> AppContext:
    from app.db.migrate import require_current_schema

    ctx = AppContext(get_settings())
    try:
        require_current_schema(ctx.settings.database_url)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    return ctx


@analysts_app.command("grant")
def analysts_grant(
    name: Annotated[str, typer.Argument(help="PostgreSQL role name (lower case, digits, '_').")],
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a read-only LOGIN role that sees only TENANT's rows in the analytics_* views.

    Prints its password once. The role cannot read tables (tokens included) or other tenants."""
    ctx = _context()
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            granted = grant_analyst(session, name, slug)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        print(json.dumps({"role": granted.role_name, "tenant": granted.tenant, "password": granted.password}))
        return
    console.print(f"created analyst role [bold]{escape(name)}[/bold] for tenant {escape(slug)}", highlight=False)
    console.print("password (shown once; store it now):", highlight=False)
    print(granted.password)


@analysts_app.command("revoke")
def analysts_revoke(name: Annotated[str, typer.Argument(help="Analyst role name.")]) -> None:
    """Drop an analyst role made by `analysts grant`."""
    ctx = _context()
    try:
        with unit_of_work(ctx.session_factory) as session:
            revoke_analyst(session, name)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"dropped analyst role {escape(name)}", highlight=False)


@analysts_app.command("list")
def analysts_list(as_json: JsonOption = False) -> None:
    """Analyst roles of this database and their tenants."""
    ctx = _context()
    with unit_of_work(ctx.session_factory) as session:
        rows = list_analysts(session)
    if as_json:
        print(json.dumps({"analysts": [
            {"role": r.role_name, "tenant": r.tenant, "created_at": r.created_at.isoformat()} for r in rows
        ]}))
        return
    table = Table("role", "tenant", "created")
    for row in rows:
        table.add_row(escape(row.role_name), escape(row.tenant), row.created_at.isoformat(timespec="seconds"))
    console.print(table)


@analysts_app.command("time-zone")
def analysts_time_zone(
    zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin.")],
    tenant: TenantOption = None,
) -> None:
    """Set the zone a tenant's due phrases ("by Friday") are resolved in (new extractions on)."""
    ctx = _context()
    slug = tenant or ctx.settings.default_tenant
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"unknown time zone {zone!r}") from exc
    with unit_of_work(ctx.session_factory) as session:
        row = find_tenant(session, slug)
        if row is None:
            raise fail(f"no tenant {slug!r}")
        row.time_zone = zone
    console.print(f"tenant {escape(slug)}: time zone {escape(zone)}", highlight=False)


def export(
    tenant: TenantOption = None,
    since: Annotated[str | None, typer.Option("--since", help="Calls started at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Calls started before (ISO 8601).")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = ExportFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Stream a tenant's current extraction (calls, claims, evidence, review decisions), memory bounded."""
    ctx = _context()
    slug = tenant or ctx.settings.default_tenant
    try:
        window = ExportWindow(parse_instant(since, "--since"), parse_instant(until, "--until"))
        if fmt is ExportFormat.parquet and output is None and sys.stdout.isatty():
            raise fail("Parquet is binary: give --output FILE or redirect standard output")
        with unit_of_work(ctx.session_factory) as session:
            tenant_row = find_tenant(session, slug)
            if tenant_row is None:
                raise fail(f"no tenant {slug!r}")
            chunks = export_bytes(session, tenant_row.id, fmt, window)
            if output is None:
                for chunk in chunks:
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            else:
                with output.open("wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if output is not None:
        err_console.print(f"wrote {escape(str(output))}", highlight=False)
