"""`postcall webhooks ...`: register endpoints, rotate secrets, inspect and replay deliveries.

Registered in app/cli.py with `app.add_typer(webhooks_app, name="webhooks")`. The workers deliver; these
commands only change the database (a replayed delivery goes out at the workers' next sweep).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from app.cli_web import console, fail
from app.config import get_settings
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.handoff.endpoints import (
    add_endpoint,
    attempts_of,
    disable_endpoint,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    replay_deliveries,
    rotate_secret,
)
from app.handoff.outbox import EventType
from app.pipeline.calls import find_tenant, get_or_create_tenant
from app.worker.context import AppContext

webhooks_app = typer.Typer(help="Webhook endpoints that receive hand-off events, and their deliveries.",
                           no_args_is_help=True)

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant slug (default: POSTCALL_DEFAULT_TENANT).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
EVENT_NAMES = ", ".join(e.value for e in EventType)


def _tenant_id(session: Any, slug: str) -> int:
    tenant = find_tenant(session, slug)
    if tenant is None:
        raise fail(f"no tenant {slug!r}")
    return tenant.id


def _endpoint_json(endpoint: Any) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "events": endpoint.event_types, "active": endpoint.active, "disabled_reason": endpoint.disabled_reason,
            "created_at": endpoint.created_at.isoformat()}


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https URL of the receiver.")],
    tenant: TenantOpt = None,
    events: Annotated[list[str] | None, typer.Option("--events", help=f"Event type to send (repeat, or "
                                                     f"comma-separate); default all: {EVENT_NAMES}.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the endpoint is.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an endpoint and print its signing secret. The secret is shown this once."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    wanted = [name.strip() for value in events or [] for name in value.split(",") if name.strip()]
    try:
        with unit_of_work(ctx.session_factory) as session:
            tenant_row = get_or_create_tenant(session, slug)
            created = add_endpoint(session, ctx.settings, tenant_id=tenant_row.id, url=url,
                                   event_types=wanted or None, description=description)
            shown = _endpoint_json(created.endpoint)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        print(json.dumps({**shown, "tenant": slug, "secret": created.secret}))
        return
    console.print(f"registered endpoint {shown['id']} for tenant {escape(slug)}: {escape(shown['url'])}",
                  highlight=False)
    console.print("signing secret (shown once; store it now):", highlight=False)
    print(created.secret)


@webhooks_app.command("list")
def webhooks_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """The tenant's endpoints (never their secrets)."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    with unit_of_work(ctx.session_factory) as session:
        rows = [_endpoint_json(e) for e in list_endpoints(session, _tenant_id(session, slug))]
    if as_json:
        print(json.dumps({"endpoints": rows}))
        return
    table = Table("id", "url", "events", "active", "description")
    for row in rows:
        state = "yes" if row["active"] else f"no ({row['disabled_reason']})"
        table.add_row(str(row["id"]), escape(row["url"]), escape(", ".join(row["events"] or ["all"])),
                      escape(state), escape(row["description"] or "—"))
    console.print(table)


@webhooks_app.command("disable")
def webhooks_disable(
    endpoint_id: Annotated[int, typer.Argument(help="Endpoint id (see `webhooks list`).")],
    tenant: TenantOpt = None,
) -> None:
    """Stop sending to an endpoint; its pending deliveries are dead-lettered (replayable)."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            disable_endpoint(session, get_endpoint(session, _tenant_id(session, slug), endpoint_id),
                             "disabled from the command line")
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"disabled endpoint {endpoint_id}", highlight=False)


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(
    endpoint_id: Annotated[int, typer.Argument(help="Endpoint id.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give an endpoint a new signing secret. For 24 h deliveries carry both signatures (old and new)."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            secret = rotate_secret(session, ctx.settings, get_endpoint(session, _tenant_id(session, slug),
                                                                       endpoint_id))
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        print(json.dumps({"id": endpoint_id, "secret": secret}))
        return
    console.print(f"new signing secret for endpoint {endpoint_id} (shown once):", highlight=False)
    print(secret)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    tenant: TenantOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only dead-lettered or failing deliveries.")] = False,
    endpoint: Annotated[int | None, typer.Option("--endpoint", help="Only this endpoint.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    show_attempts: Annotated[bool, typer.Option("--attempts", help="Also every attempt: outcome, HTTP status, "
                                                                     "latency, error.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recent deliveries, newest first: status, attempts, last HTTP status and error."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    with unit_of_work(ctx.session_factory) as session:
        rows: list[dict[str, Any]] = [
            {"id": r.delivery.id, "event_id": r.event_id, "type": r.event_type, "call_id": r.delivery.call_id,
             "endpoint_id": r.delivery.endpoint_id, "url": r.url, "status": r.delivery.status.value,
             "attempts": r.delivery.attempts, "last_status_code": r.delivery.last_status_code,
             "last_error": r.delivery.last_error, "next_attempt_at": r.delivery.next_attempt_at.isoformat()}
            for r in list_deliveries(session, _tenant_id(session, slug), failed_only=failed, endpoint_id=endpoint,
                                     limit=limit)
        ]
        if show_attempts:
            logged = attempts_of(session, [row["id"] for row in rows])
            for row in rows:
                row["attempt_log"] = [
                    {"outcome": a.outcome, "status_code": a.status_code, "latency_ms": a.latency_ms,
                     "error": a.error, "started_at": a.started_at.isoformat()}
                    for a in logged[row["id"]]
                ]
    if as_json:
        print(json.dumps({"deliveries": rows}))
        return
    table = Table("id", "event", "type", "call", "endpoint", "status", "attempts", "last")
    for row in rows:
        last = f"{row['last_status_code'] or ''} {row['last_error'] or ''}".strip() or "—"
        table.add_row(str(row["id"]), str(row["event_id"]), str(row["type"]), str(row["call_id"]),
                      str(row["endpoint_id"]), str(row["status"]), str(row["attempts"]), escape(last[:120]))
        for attempt in row.get("attempt_log", []):
            latency = f"{attempt['latency_ms']:.0f} ms" if attempt["latency_ms"] is not None else ""
            detail = f"{attempt['status_code'] or ''} {latency} {attempt['error'] or ''}".strip()
            table.add_row("", "", "", "", "", f"  {attempt['outcome']}", "", escape(detail[:120]))
    console.print(table)


@webhooks_app.command("replay")
def webhooks_replay(
    delivery_ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids to send again.")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Every delivery of this event id.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every dead-lettered delivery.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Send deliveries again with the same webhook-id and a fresh retry period."""
    ctx = AppContext(get_settings())
    slug = tenant or ctx.settings.default_tenant
    try:
        with unit_of_work(ctx.session_factory) as session:
            replayed = replay_deliveries(session, ctx.settings, _tenant_id(session, slug),
                                         delivery_ids=delivery_ids or (), event_id=event, all_dead=failed)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"replaying {len(replayed)} deliveries; the workers send them at their next sweep",
                  highlight=False)
