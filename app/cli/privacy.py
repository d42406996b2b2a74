"""`postcall purge` and `postcall retention`: how long calls are kept."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import TenantOpt, checked_context, refusal_exits, tenant_context, transaction
from app.cli.render import console, fail, print_table, progress, safe, say
from app.pipeline.calls import find_tenant
from app.pipeline.retention import (
    MAX_RETENTION_DAYS,
    HandoffPurge,
    PurgeRunningError,
    retention_days_of,
    run_purge,
    set_retention,
)

# `postcall purge` while another purge (the beat's, another command's) is running: it deleted nothing. 1, as
# for the other commands that could not do their work for now (a broker down, a provider that refused); 2 is
# for what was asked wrongly.
PURGE_RUNNING_EXIT = 1


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's calls (default: every "
                                               "tenant's, and the hand-off's history).")] = None,
) -> None:
    """Hard-delete calls older than their tenant's retention period: transcript, runs, claims and
    evidence. Their audit events stay, content-free. Then the hand-off's history: outbox events older than
    POSTCALL_HANDOFF_RETENTION_DAYS whose deliveries have all finished, with their deliveries and attempts.
    Deletes the oldest first, committing every few hundred calls (events), so an interrupted purge keeps what
    it did and the next one goes on. Also run by the worker's beat schedule. One purge runs at a time: while
    another is running (the beat's, or another `postcall purge`) this one says so, deletes nothing and exits
    1; run it again once that one has finished (a --dry-run is not held up)."""
    ctx = checked_context()
    with refusal_exits(), progress(show=not dry_run) as bar:
        calls_task = bar.add_task("purging expired calls", total=0)
        # The hand-off's history is one sequence for every tenant (the feed's order): a tenant's share of it
        # is not deleted alone, or the feed could not tell its readers what they missed.
        events_task = None if tenant is not None else bar.add_task("purging delivered hand-off events", total=None)
        expired = 0

        def on_expired(calls: int) -> None:  # each tenant's, before its first chunk
            nonlocal expired
            expired += calls
            bar.update(calls_task, total=expired)

        def on_events_purged(count: int) -> None:
            if events_task is not None:
                bar.advance(events_task, count)

        try:
            report = run_purge(
                ctx.session_factory, default_days=ctx.settings.retention_days,
                handoff_days=ctx.settings.handoff_retention_days, tenant=tenant, dry_run=dry_run,
                on_expired=on_expired, on_purged=lambda calls: bar.advance(calls_task, calls),
                on_events_purged=on_events_purged,
            )
        except PurgeRunningError as exc:
            raise fail(str(exc), PURGE_RUNNING_EXIT) from exc
    if not report.calls:
        console.print("no tenant has a retention period (POSTCALL_RETENTION_DAYS or `postcall retention`)")
    else:
        print_table(
            ("tenant", "retention (days)", "older than", "calls", "utterances", "claims", "evidence"),
            ([r.tenant, r.retention_days, r.cutoff.strftime("%Y-%m-%d %H:%M"), r.calls, r.utterances, r.claims,
              r.evidence] for r in report.calls),
            title="would be purged (dry run)" if dry_run else "purged",
        )
    if tenant is not None:
        console.print("the hand-off's history is purged for every tenant at once: run without --tenant")
    elif report.handoff is None:
        console.print("the hand-off's history is kept forever (POSTCALL_HANDOFF_RETENTION_DAYS=0)")
    else:
        _print_handoff_purge(report.handoff, dry_run=dry_run)


def _print_handoff_purge(report: HandoffPurge, *, dry_run: bool) -> None:
    print_table(
        ("retention (days)", "older than", "events", "deliveries", "attempts"),
        [(report.retention_days, report.cutoff.strftime("%Y-%m-%d %H:%M"), report.events, report.deliveries,
          report.attempts)],
        title="hand-off history that would be purged (dry run)" if dry_run else "hand-off history purged",
    )
    if report.held_by_event is not None:
        console.print(f"stopped at event {report.held_by_event}: a delivery of it is still pending (retrying or "
                      "replayed); it and the events after it go once that delivery is accepted or dead-lettered")


def retention(
    days: Annotated[int | None, typer.Option("--days", help="Set the period in days (0 keeps calls forever).")] = None,
    default: Annotated[bool, typer.Option("--default", help="Clear the tenant's own period: use the default.")] = False,
    tenant: TenantOpt = None,
) -> None:
    """Show or set a tenant's retention period (POSTCALL_RETENTION_DAYS is the default)."""
    ctx, slug = tenant_context(tenant)
    if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
        raise fail(f"--days is 0 (keep forever) to {MAX_RETENTION_DAYS:,}")
    with transaction(ctx) as session:
        if days is not None or default:
            tenant_row = set_retention(session, slug, None if default else days)
        else:
            found = find_tenant(session, slug)
            if found is None:
                raise fail(f"tenant {slug!r} not found")
            tenant_row = found
        effective = retention_days_of(tenant_row, ctx.settings.retention_days)
        own = tenant_row.retention_days
    source = "tenant setting" if own is not None else "default, POSTCALL_RETENTION_DAYS"
    period = f"{effective} days" if effective > 0 else "kept forever"
    say(f"tenant {safe(slug)}: {period} ({source})")


def remask(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant (default: every tenant).")] = None,
) -> None:
    """Mask every stored masked copy again with the detector as it is now (claims, evidence quotes, due
    phrases, case notes, hand-off events): after an upgrade that finds more personal data, rows stored
    before show what the old detector left. A chunk of calls per transaction; safe to repeat."""
    from app.pipeline.remask import remask_calls

    ctx = checked_context()
    with refusal_exits():
        tenant_id = None
        if tenant is not None:
            with transaction(ctx) as session:
                found = find_tenant(session, tenant)
                if found is None:
                    raise fail(f"tenant {tenant!r} not found")
                tenant_id = found.id
        with progress(show=True) as bar:
            task = bar.add_task("masking stored copies again", total=None)
            report = remask_calls(ctx.session_factory, tenant_id=tenant_id,
                                  on_calls=lambda calls: bar.advance(task, calls))
    say(f"{report.calls} calls read; masked again: {report.claims} claims, {report.evidence} evidence quotes, "
        f"{report.notes} case notes, {report.events} hand-off events")
