"""`postcall demo`: what `make demo` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.calls import load_detail
from app.cli.common import CLI_ACTOR, TenantOpt, checked_context, tenant_slug
from app.cli.ingest import print_ingest_results, process_with_progress
from app.cli.ops import safe_url
from app.cli.render import render_call, safe, say
from app.config import PROJECT_ROOT, get_settings
from app.context import AppContext
from app.db.session import unit_of_work
from app.pipeline.calls import count_by_state
from app.pipeline.ingest_files import expand_paths, ingest_files

SAMPLES_DIR = PROJECT_ROOT / "samples"
SAFEGUARD_SAMPLE = "bank_lost_card.json"


def demo(
    samples: Annotated[Path, typer.Option(help="Folder of sample calls.")] = SAMPLES_DIR,
    tenant: TenantOpt = None,
) -> None:
    """Set up the database, ingest the sample calls, process them offline and print the results."""
    from app.db.migrate import upgrade

    upgrade(get_settings().database_url)
    ctx = checked_context(provider="heuristic", with_provider=True)
    say(f"[dim]database: {safe(safe_url(ctx.settings.database_url))}[/dim]")
    files = expand_paths([samples])
    results = ingest_files(ctx, files, tenant=tenant_slug(ctx, tenant), actor=CLI_ACTOR)
    print_ingest_results(results, stored_lines=False)
    call_ids = [r.call_id for r in results if r.call_id]
    process_with_progress(ctx, call_ids, show_progress=True)
    for call_id in call_ids:
        render_call(load_detail(ctx, call_id, None), with_note=True)
    safeguarded = _demo_safeguard(ctx, files, tenant_slug(ctx, tenant))
    with unit_of_work(ctx.session_factory) as session:
        counts = count_by_state(session)
    summary = ", ".join(f"{state}: {n}" for state, n in counts.items() if n)
    extra = " + 1 through the openai provider (scripted, local)" if safeguarded else ""
    say(f"[bold]{len(call_ids)} sample calls processed offline{extra}[/bold] ({summary})")
    if any(r.error for r in results):
        raise typer.Exit(1)


def _demo_safeguard(ctx: AppContext, files: list[Path], tenant: str) -> bool:
    """One call through the `openai` provider, answered on 127.0.0.1 with an invented amount: the
    verifier's flag is what the reviewer sees first."""
    from app.pipeline.safeguard_demo import run_safeguard_call

    sample = next((f for f in files if f.name == SAFEGUARD_SAMPLE), None)
    if sample is None:
        return False
    say(f"[bold]Safeguard:[/bold] {SAFEGUARD_SAMPLE} again through the openai provider, against a "
        "local scripted server whose answer invents a $25 fee (no network, no key)")
    outcome = run_safeguard_call(ctx.session_factory, ctx.settings, ctx.prompt, sample, tenant)
    render_call(load_detail(ctx, outcome.call_id, None), with_note=True)
    return True
