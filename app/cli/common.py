"""What every command shares: its options, its context (settings, database, provider) checked before
any work, its transactions and the hand-off of call ids to the workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from app.cli.render import err_console, fail, print_json, safe, say
from app.config import Settings, get_settings
from app.context import AppContext
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.models.tables import MAX_BIG_ID
from app.pipeline.calls import find_tenant
from app.pipeline.store import Actor

# The audit trail names who stored a transcript; from the command line that is the OS account.
CLI_ACTOR = Actor(f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}")

# Row ids are 64-bit: a larger number given on the command line is refused by its option, not by the driver.
ROW_ID_MAX = MAX_BIG_ID
# Durations in seconds beyond a century are typing mistakes; Python's dates end at year 9999 anyway.
SECONDS_MAX = 100 * 366 * 24 * 3600

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant slug (default: POSTCALL_DEFAULT_TENANT).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Input format, or 'auto' to detect it.")]
AgentSpeakerOpt = Annotated[
    str | None, typer.Option("--agent-speaker", help="The speaker label that is the agent (overrides inference).")
]


def checked_context(
    settings: Settings | None = None, *, provider: str | None = None, with_provider: bool = False
) -> AppContext:
    """The context for a command that needs the database: a bad URL, an unreachable server or a missing
    schema is one line and exit 2, and a missing SQLite file is not created. `with_provider` builds the
    provider and prompt now, so a bad choice fails before any work."""
    from app.db.migrate import require_current_schema

    settings = settings or get_settings()
    with refusal_exits():
        require_current_schema(settings.database_url)
        ctx = AppContext(settings, provider_name=provider)
        if with_provider:
            _ = ctx.provider, ctx.prompt
    return ctx


@contextmanager
def refusal_exits(code: int = 2) -> Iterator[None]:
    """A refusal (PostcallError) inside becomes one line on standard error and exit `code`."""
    try:
        yield
    except PostcallError as exc:
        raise fail(str(exc), code) from exc


@contextmanager
def transaction(ctx: AppContext) -> Iterator[Session]:
    """One unit of work; a refusal inside it is rolled back and becomes one line, exit 2."""
    with refusal_exits(), unit_of_work(ctx.session_factory) as session:
        yield session


def tenant_slug(ctx: AppContext, tenant: str | None) -> str:
    return tenant or ctx.settings.default_tenant


def tenant_context(tenant: str | None) -> tuple[AppContext, str]:
    """The checked context, and the tenant a command acts on (POSTCALL_DEFAULT_TENANT unless given)."""
    ctx = checked_context()
    return ctx, tenant_slug(ctx, tenant)


def require_tenant_id(session: Session, slug: str) -> int:
    """The id of tenant `slug`; an unknown tenant is refused."""
    tenant_row = find_tenant(session, slug)
    if tenant_row is None:
        raise PostcallError(f"no tenant {slug!r}")
    return tenant_row.id


def tenant_id_of(session: Session, slug: str | None) -> int | None:
    """None when no tenant was asked for (every tenant), else `require_tenant_id`."""
    return None if slug is None else require_tenant_id(session, slug)


def enqueue(call_ids: list[str]) -> bool:
    """Hand call ids to the workers; False (with a warning) when the broker is down."""
    from app.worker.enqueue import enqueue_calls

    if not call_ids:
        return True
    try:
        enqueue_calls(call_ids)
    except Exception as exc:  # kombu raises several unrelated types when the broker is down
        # A full Redis is reachable and refuses the write: say which, the fix differs.
        full = "OOM" in str(exc) or "maxmemory" in str(exc)
        problem = "the broker refused the calls: it is out of memory" if full else "could not reach the broker"
        err_console.print(
            f"[yellow]warning:[/yellow] {problem} ({safe(exc)}); the calls stay queued in the "
            "database and `postcall reconcile` will enqueue them.",
            highlight=False,
        )
        return False
    return True


def enqueue_and_report(call_ids: list[str], what: str, *, as_json: bool) -> None:
    """Hand requeued calls to the broker; exit 1 when it is down (they stay queued in the database)."""
    report_requeued(call_ids, what, enqueued=enqueue(call_ids), as_json=as_json)


def report_requeued(call_ids: list[str], what: str, *, enqueued: bool, as_json: bool) -> None:
    """Say which calls went back on the queue; exit 1 when the broker could not take them."""
    if as_json:
        print_json({"requeued": call_ids, "enqueued": enqueued})
    else:
        say(f"{len(call_ids)} {what} re-enqueued")
    if not enqueued:
        raise typer.Exit(1)
