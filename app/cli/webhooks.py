"""`postcall webhooks ...`: register endpoints, rotate secrets, inspect and replay deliveries.

The workers deliver; these commands only change the database (a replayed delivery goes out at the
workers' next sweep)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.cli.common import (
    ROW_ID_MAX,
    JsonOpt,
    TenantOpt,
    require_tenant_id,
    tenant_context,
    transaction,
)
from app.cli.render import print_json, print_secret, print_table, safe, say, warn
from app.config import Settings
from app.errors import PostcallError
from app.handoff import endpoints as hooks
from app.handoff.outbox import EventType
from app.models import WebhookEndpoint
from app.pipeline.calls import find_tenant, get_or_create_tenant
from app.schemas.api import AttemptOut, DeliveryOut

webhooks_app = typer.Typer(help="Webhook endpoints that receive hand-off events, and their deliveries.",
                           no_args_is_help=True)

EVENT_NAMES = ", ".join(e.value for e in EventType)
EndpointArg = Annotated[int, typer.Argument(min=1, max=ROW_ID_MAX, help="Endpoint id (see `webhooks list`).")]


def _endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The endpoint exactly as the JSON API shows it."""
    return hooks.EndpointView.model_validate(endpoint).model_dump(mode="json")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https URL of the receiver.")],
    tenant: TenantOpt = None,
    events: Annotated[list[str] | None, typer.Option("--events", help=f"Event type to send (repeat, or "
                                                     f"comma-separate); default all: {EVENT_NAMES}.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the endpoint is.")] = None,
    new_tenant: Annotated[bool, typer.Option(
        "--new-tenant", help="The tenant has no calls or users yet: make it (without this, an unknown tenant "
                             "is refused, so a mistyped --tenant is not a new tenant).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register an endpoint and print its signing secret. The secret is shown this once."""
    ctx, slug = tenant_context(tenant)
    wanted = [name.strip() for value in events or [] for name in value.split(",") if name.strip()]
    with transaction(ctx) as session:
        # The configured default tenant may not exist yet on a new database; any other must, or be asked
        # for: a mistyped --tenant made a tenant of its own and an endpoint that never receives an event.
        if not new_tenant and slug != ctx.settings.default_tenant and find_tenant(session, slug) is None:
            raise PostcallError(f"no tenant {slug!r}: check the name, or pass --new-tenant to set up the "
                                "endpoints of a tenant before its first call")
        tenant_row = get_or_create_tenant(session, slug)
        created = hooks.add_endpoint(session, ctx.settings, tenant_id=tenant_row.id, url=url,
                               event_types=wanted if events is not None else None, description=description)
        shown = _endpoint_json(created.endpoint)
    _warn_if_secrets_unprotected(ctx.settings)
    for message in created.warnings:  # what the subscription misses; another active endpoint at this URL
        warn(message)
    if as_json:
        print_json({**shown, "tenant": slug, "secret": created.secret})
        return
    say(f"registered endpoint {shown['id']} for tenant {safe(slug)}: {safe(shown['url'])}")
    print_secret("signing secret (shown once; store it now):", created.secret)


@webhooks_app.command("list")
def webhooks_list(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """The tenant's endpoints (never their secrets)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        found = hooks.list_endpoints(session, require_tenant_id(session, slug))
        rows = [_endpoint_json(e) for e in found]
    if as_json:
        print_json({"endpoints": rows})
        return
    print_table(
        ("id", "url", "events", "active", "description"),
        ([r["id"], r["url"], ", ".join(r["events"] or ["all"]), _active_text(r), r["description"] or None]
         for r in rows),
    )


def _active_text(row: dict[str, Any]) -> str:
    """"yes", or why and since when it is not (a 410 from the receiver disables it on its own)."""
    if row["active"]:
        return "yes"
    since = f" since {row['disabled_at']}" if row.get("disabled_at") else ""
    return f"no: {row['disabled_reason'] or 'disabled'}{since}"


@webhooks_app.command("disable")
def webhooks_disable(endpoint_id: EndpointArg, tenant: TenantOpt = None) -> None:
    """Stop sending to an endpoint; its pending deliveries are dead-lettered (replayable)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        endpoint = hooks.get_endpoint(session, require_tenant_id(session, slug), endpoint_id)
        hooks.disable_endpoint(session, endpoint, "disabled from the command line")
    say(f"disabled endpoint {endpoint_id}")


@webhooks_app.command("delete")
def webhooks_delete(endpoint_id: EndpointArg, tenant: TenantOpt = None) -> None:
    """Delete a disabled endpoint for good, with its deliveries and their attempts (its dead letters can no
    longer be replayed). An active endpoint is disabled first."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        endpoint = hooks.get_endpoint(session, require_tenant_id(session, slug), endpoint_id)
        deliveries = hooks.delete_endpoint(session, endpoint)
    say(f"deleted endpoint {endpoint_id} and its {deliveries} deliveries")


@webhooks_app.command("enable")
def webhooks_enable(
    endpoint_id: EndpointArg,
    tenant: TenantOpt = None,
    skip_backlog: Annotated[bool, typer.Option(
        "--skip-backlog", help="Do not send the events written while it was disabled (the receiver catches up "
                               "from the calls API instead); by default they are queued, in order.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send to an endpoint again (disabled by hand or by a 410 Gone). The events written while it was
    disabled are queued for it, in order (unless --skip-backlog); then `replay --failed` sends what was
    dead-lettered before or by the disable."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        endpoint = hooks.get_endpoint(session, require_tenant_id(session, slug), endpoint_id)
        enabled = hooks.enable_endpoint(session, ctx.settings, endpoint, backlog=not skip_backlog)
        shown = _endpoint_json(endpoint)
    if as_json:
        print_json({**shown, "queued": enabled.queued, "skipped": enabled.skipped, "notes": enabled.notes})
        return
    if not enabled.was_disabled:
        say(f"endpoint {endpoint_id} is already enabled")
        return
    say(f"enabled endpoint {endpoint_id}: queued {enabled.queued} event(s) written while it was disabled; "
        "`postcall webhooks replay --failed` sends what was dead-lettered")
    for note in enabled.notes:
        warn(note)


def _warn_if_secrets_unprotected(settings: Settings) -> None:
    """Signing secrets are stored encrypted with POSTCALL_WEBHOOK_SECRETS_KEY, else POSTCALL_SECRET_KEY:
    with the public development key (an unset one) anyone can decrypt them, and workers run with the real
    key cannot, so every delivery fails. Said when a secret is stored, not found out from the workers."""
    if settings.webhook_secrets_key is None and settings.secret_key_is_unsafe:
        warn("the signing secret is stored encrypted with the development key (POSTCALL_SECRET_KEY is unset, "
             "short or the default): set POSTCALL_SECRET_KEY (or POSTCALL_WEBHOOK_SECRETS_KEY) as the workers "
             "have it, then rotate the secret")


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(
    endpoint_id: EndpointArg,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Rotate even while the secret before the last rotation still signs: it stops at once "
                        "(for a leaked secret).")] = False,
) -> None:
    """Give an endpoint a new signing secret. For 24 h deliveries carry both signatures (old and new)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        endpoint = hooks.get_endpoint(session, require_tenant_id(session, slug), endpoint_id)
        rotation = hooks.rotate_secret(session, ctx.settings, endpoint, force=force)
    _warn_if_secrets_unprotected(ctx.settings)
    for note in rotation.notes:
        warn(note)
    if as_json:
        print_json({"id": endpoint_id, "secret": rotation.secret,
                    "previous_secret_until": rotation.previous_until.isoformat() if rotation.previous_until else None,
                    "notes": list(rotation.notes)})
        return
    print_secret(f"new signing secret for endpoint {endpoint_id} (shown once):", rotation.secret)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    tenant: TenantOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only dead-lettered or failing deliveries.")] = False,
    endpoint: Annotated[
        int | None, typer.Option("--endpoint", min=1, max=ROW_ID_MAX, help="Only this endpoint.")
    ] = None,
    call: Annotated[str | None, typer.Option("--call", help="Only this call's deliveries (its id or external id).")
                    ] = None,
    before: Annotated[int | None, typer.Option(
        "--before", min=1, max=ROW_ID_MAX, help="Only deliveries with a smaller id (the next page: the last id shown)."
    )] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    show_attempts: Annotated[bool, typer.Option("--attempts", help="Also every attempt: outcome, HTTP status, "
                                                                     "latency, error.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recent deliveries, newest first: status, attempts, last HTTP status and error. With --json each
    delivery has the fields and names of GET /api/webhooks/deliveries' rows (one model, DeliveryOut), and
    --attempts adds `attempt_log`, which the API does not serve."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        tenant_id = require_tenant_id(session, slug)
        rows: list[dict[str, Any]] = [
            DeliveryOut.from_listed(r).model_dump(mode="json")
            for r in hooks.list_deliveries(session, tenant_id, failed_only=failed, endpoint_id=endpoint,
                                           call_id=call, before=before, limit=limit)
        ]
        if show_attempts:
            logged = hooks.attempts_of(session, [row["id"] for row in rows])
            for row in rows:
                row["attempt_log"] = [AttemptOut.model_validate(a).model_dump(mode="json") for a in logged[row["id"]]]
    if as_json:
        print_json({"deliveries": rows})
        return
    table_rows: list[list[object]] = []
    for row in rows:
        last = f"{row['last_status_code'] or ''} {row['last_error'] or ''}".strip()
        table_rows.append([row["id"], row["event_id"], row["event_type"], row["call_id"], row["endpoint_id"],
                           row["status"], row["attempts"], last[:120] or None])
        for attempt in row.get("attempt_log", []):
            latency = f"{attempt['latency_ms']:.0f} ms" if attempt["latency_ms"] is not None else ""
            detail = f"{attempt['status_code'] or ''} {latency} {attempt['error'] or ''}".strip()
            table_rows.append(["", "", "", "", "", f"  {attempt['outcome']}", "", detail[:120]])
    print_table(("id", "event", "type", "call", "endpoint", "status", "attempts", "last"), table_rows)


@webhooks_app.command("replay")
def webhooks_replay(
    delivery_ids: Annotated[
        list[int] | None, typer.Argument(min=1, max=ROW_ID_MAX, help="Delivery ids to send again.")
    ] = None,
    event: Annotated[str | None, typer.Option("--event", help="Every delivery of this event id.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every dead-lettered delivery.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Send deliveries again with the same webhook-id and a fresh retry period. An unknown delivery or
    event id (or another tenant's) is refused (exit 2), as is one with nothing to replay (its deliveries are
    to disabled endpoints, or it has none)."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        replayed = hooks.replay_deliveries(session, ctx.settings, require_tenant_id(session, slug),
                                     delivery_ids=delivery_ids or (), event_id=event, all_dead=failed)
    say(f"replaying {len(replayed)} deliveries; the workers send them at their next sweep")
