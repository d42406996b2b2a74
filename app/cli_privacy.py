"""`postcall purge`, `postcall retention` and `postcall users grant-pii`. Registered in app/cli.py:

    register(app)
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.cli_web import TenantOption, console, fail, users_app
from app.config import get_settings
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.pipeline.calls import find_tenant
from app.pipeline.retention import purge_expired, retention_days_of, set_retention
from app.users import set_view_pii
from app.worker.context import AppContext


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant (default: every tenant).")] = None,
) -> None:
    """Hard-delete calls older than their tenant's retention period: transcript, runs, claims and
    evidence. Their audit events stay, content-free. Also run by the worker's beat schedule."""
    ctx = AppContext(get_settings())
    try:
        with unit_of_work(ctx.session_factory) as session:
            reports = purge_expired(
                session, default_days=ctx.settings.retention_days, tenant=tenant, dry_run=dry_run
            )
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if not reports:
        console.print("no tenant has a retention period (POSTCALL_RETENTION_DAYS or `postcall retention`)")
        return
    table = Table(title="would be purged (dry run)" if dry_run else "purged")
    for column in ("tenant", "retention (days)", "older than", "calls", "utterances", "claims", "evidence"):
        table.add_column(column)
    for report in reports:
        table.add_row(
            escape(report.tenant), str(report.retention_days), report.cutoff.strftime("%Y-%m-%d %H:%M"),
            str(report.calls), str(report.utterances), str(report.claims), str(report.evidence),
        )
    console.print(table)


def retention(
    days: Annotated[int | None, typer.Option("--days", help="Set the period in days (0 keeps calls forever).")] = None,
    default: Annotated[bool, typer.Option("--default", help="Clear the tenant's own period: use the default.")] = False,
    tenant: TenantOption = None,
) -> None:
    """Show or set a tenant's retention period (POSTCALL_RETENTION_DAYS is the default)."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    if days is not None and days < 0:
        raise fail("--days must be 0 or more")
    try:
        with unit_of_work(ctx.session_factory) as session:
            if days is not None or default:
                tenant_row = set_retention(session, slug, None if default else days)
            else:
                found = find_tenant(session, slug)
                if found is None:
                    raise fail(f"tenant {slug!r} not found")
                tenant_row = found
            effective = retention_days_of(tenant_row, ctx.settings.retention_days)
            own = tenant_row.retention_days
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    source = "tenant setting" if own is not None else "default, POSTCALL_RETENTION_DAYS"
    period = f"{effective} days" if effective > 0 else "kept forever"
    console.print(f"tenant {escape(slug)}: {period} ({source})", highlight=False)


def users_grant_pii(
    name: Annotated[str, typer.Argument(help="User name.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the permission away.")] = False,
    tenant: TenantOption = None,
) -> None:
    """Allow a user to unmask card numbers, SSNs and accounts (every unmasked view is audited)."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            set_view_pii(session, slug, name, allowed=not revoke)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    verb = "revoked view_pii from" if revoke else "granted view_pii to"
    console.print(f"{verb} {escape(name)} in tenant {escape(slug)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(purge)
    app.command()(retention)
    users_app.command("grant-pii")(users_grant_pii)
