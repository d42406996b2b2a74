"""`postcall analysts ...`: PostgreSQL roles for analysts, and the tenant time zone."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from app.analysts import (
    Revoked,
    RoleStatus,
    end_analyst_sessions,
    grant_analyst,
    list_analysts,
    revoke_analyst,
    rotate_analyst_password,
)
from app.cli.common import JsonOpt, TenantOpt, checked_context, tenant_context, transaction
from app.cli.render import fail, print_json, print_secret, print_table, safe, say, warn
from app.pipeline.calls import find_tenant

analysts_app = typer.Typer(
    help="Read-only PostgreSQL logins for analysts, each seeing one tenant in the analyst views.",
    no_args_is_help=True,
)


@analysts_app.command("grant")
def analysts_grant(
    name: Annotated[str, typer.Argument(help="PostgreSQL role name (lower case, digits, '_').")],
    tenant: Annotated[str, typer.Option("--tenant", help="The one tenant the role sees (required: no default).")],
    as_json: JsonOpt = False,
) -> None:
    """Create a read-only LOGIN role that sees only TENANT's rows in the analytics_* views.

    Prints its password once (the server is sent only its SCRAM-SHA-256 verifier). The role cannot read
    tables (tokens included) or other tenants."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        granted = grant_analyst(session, name, slug)
    if granted.replaced_tenant is not None:
        warn(f"a binding of {name} to tenant {granted.replaced_tenant} was left by a role of that name that is "
             "gone (dropped by hand); it bound nobody and is replaced by this grant")
    if as_json:
        print_json({"role": granted.role_name, "tenant": granted.tenant, "password": granted.password,
                    "replaced_tenant": granted.replaced_tenant})
        return
    say(f"created analyst role [bold]{safe(name)}[/bold] for tenant {safe(slug)}")
    print_secret("password (shown once; store it now):", granted.password)


@analysts_app.command("revoke")
def analysts_revoke(name: Annotated[str, typer.Argument(help="Analyst role name.")]) -> None:
    """Drop an analyst role made by `analysts grant`. Its access ends even when the role cannot be dropped
    (it owns objects in another database): it is then left without login or access, and said so."""
    ctx = checked_context()
    with transaction(ctx) as session:
        revoked = revoke_analyst(session, name)
    if revoked is Revoked.dropped:
        say(f"dropped analyst role {safe(name)}")
        return
    if revoked is Revoked.binding_only:
        say(f"removed the binding of {safe(name)}: the role of that name is not the one granted here (that one "
            "was dropped and the name taken again, perhaps in another database of this server), so it was "
            "left as it is")
        return
    say(f"analyst role {safe(name)} can no longer log in or read any view, but it owns objects elsewhere "
        f"(another database of this server) and was not dropped: there, run DROP OWNED BY \"{safe(name)}\", "
        f"then DROP ROLE \"{safe(name)}\"")


@analysts_app.command("rotate")
def analysts_rotate(
    name: Annotated[str, typer.Argument(help="Analyst role name.")],
    as_json: JsonOpt = False,
) -> None:
    """Give an analyst role a new password, printed once, and end its open sessions (a rotation after a leak
    must end what the old password opened). The server is sent the password's SCRAM-SHA-256 verifier only."""
    ctx = checked_context()
    with transaction(ctx) as session:
        rotated = rotate_analyst_password(session, name)
    with transaction(ctx) as session:
        ended = end_analyst_sessions(session, name)
    if ended is None:
        warn("not every open session of the role could be ended (this login may not signal them: a superuser, "
             "pg_signal_backend or membership is needed); those go on until they disconnect")
    if as_json:
        print_json({"role": rotated.role_name, "tenant": rotated.tenant, "password": rotated.password,
                    "sessions_ended": ended})
        return
    say(f"new password for analyst role [bold]{safe(name)}[/bold] (tenant {safe(rotated.tenant)}); "
        f"{ended or 0} open session(s) ended")
    print_secret("password (shown once; store it now):", rotated.password)


ROLE_STATUS_WORDS = {
    RoleStatus.ok: "ok",
    RoleStatus.missing: "role missing",
    RoleStatus.other: "another role of this name",
}


@analysts_app.command("list")
def analysts_list(as_json: JsonOpt = False) -> None:
    """Analyst roles of this database and their tenants, flagging bindings whose role is gone (or is another
    role of the same name): such a binding binds nobody; `analysts revoke NAME` removes it."""
    ctx = checked_context()
    with transaction(ctx) as session:
        rows = list_analysts(session)
    if as_json:
        print_json({"analysts": [
            {"role": r.role_name, "tenant": r.tenant, "created_at": r.created_at.isoformat(),
             "role_status": r.role_status.value} for r in rows
        ]})
        return
    print_table(("role", "tenant", "created", "role status"),
                ([r.role_name, r.tenant, r.created_at.isoformat(timespec="seconds"), ROLE_STATUS_WORDS[r.role_status]]
                 for r in rows))
    for r in rows:
        if r.role_status is not RoleStatus.ok:
            warn(f"{r.role_name}: {ROLE_STATUS_WORDS[r.role_status]}; the binding shows nobody anything "
                 f"(remove it: postcall analysts revoke {r.role_name})")


@analysts_app.command("time-zone")
def analysts_time_zone(
    zone: Annotated[str, typer.Argument(help="IANA time zone, e.g. Europe/Berlin.")],
    tenant: TenantOpt = None,
) -> None:
    """Set the zone a tenant's due phrases ("by Friday") are resolved in (new extractions on)."""
    ctx, slug = tenant_context(tenant)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"unknown time zone {zone!r}") from exc
    with transaction(ctx) as session:
        row = find_tenant(session, slug)
        if row is None:
            raise fail(f"no tenant {slug!r}")
        row.time_zone = zone
    say(f"tenant {safe(slug)}: time zone {safe(zone)}")
