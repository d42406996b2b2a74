"""Commands on stored calls: `show`, `verify`, `status`, `reconcile`, `retry`, `reprocess`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import (
    SECONDS_MAX,
    AgentSpeakerOpt,
    FormatOpt,
    JsonOpt,
    TenantOpt,
    checked_context,
    enqueue,
    enqueue_and_report,
    refusal_exits,
    report_requeued,
    tenant_id_of,
)
from app.cli.ingest import process_with_progress
from app.cli.render import (
    Markup,
    err_console,
    fail,
    print_json,
    print_table,
    progress,
    render_call,
    safe,
    say,
    status_markup,
)
from app.config import get_settings
from app.context import AppContext
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.pipeline.calls import count_by_state, find_call
from app.pipeline.queries import call_detail
from app.schemas.api import CallDetailOut
from app.schemas.grounding import VerificationReport


def load_detail(ctx: AppContext, reference: str, tenant: str | None) -> CallDetailOut:
    with unit_of_work(ctx.session_factory) as session:
        call = find_call(session, reference, tenant_id_of(session, tenant))
        return call_detail(session, call)


def show(
    call: Annotated[str, typer.Argument(help="Call id or external id.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a call's extraction: claims, evidence and grounding status."""
    ctx = checked_context()
    try:
        detail = load_detail(ctx, call, tenant)
    except PostcallError as exc:
        raise fail(str(exc), 1) from exc
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    render_call(detail)


def verification_json(report: VerificationReport) -> dict[str, Any]:
    document = report.model_dump(mode="json")
    for claim in document["claims"]:
        for evidence in claim["evidence"]:
            evidence["score"] = round(evidence["score"], 4)
    return document


def verify(
    transcript: Annotated[Path, typer.Argument(help="Transcript file (any supported format).")],
    extraction: Annotated[Path, typer.Argument(help="Extraction JSON (the v1 contract).")],
    fmt: FormatOpt = "auto",
    agent_speaker: AgentSpeakerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every citation of an extraction against a transcript. Exit 0 when all claims are grounded."""
    from pydantic import ValidationError

    from app.grounding import verify_extraction
    from app.ingest import load_transcript
    from app.schemas.extraction import Extraction

    with refusal_exits():
        parsed = load_transcript(transcript, fmt=fmt, agent_speaker=agent_speaker)
    try:
        raw = extraction.read_bytes()
        document = Extraction.model_validate_json(raw)
    except OSError as exc:
        raise fail(f"{extraction}: cannot read: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise fail(f"{extraction}: not a valid extraction: {problems}") from exc
    if not (document.summary or document.action_items or document.reason or document.outcome):
        # Every field of the contract is optional, so any JSON object (the transcript itself, `{}`) parses:
        # "0/0 grounded" with exit 0 would let a gate built on this command pass garbage.
        raise fail(f"{extraction}: holds no statement (summary, reason, outcome or action_items); "
                   "is it an extraction?")
    report = verify_extraction(parsed.transcript, document)
    if as_json:
        print_json(verification_json(report))
    else:
        for claim in report.claims:
            say(f"{status_markup(claim.status.value, claim.reason)}  {safe(f'[{claim.kind.value}]')} "
                f"{safe(claim.text)}")
            for ev in claim.evidence:
                where = ev.utterance if ev.utterance is not None else ev.cited_utterance
                span = f" chars {ev.char_start}-{ev.char_end}" if ev.char_start is not None else ""
                say(f"    {safe(f'[{where}]')}{span} “{safe(ev.quote)}” {status_markup(ev.status.value, ev.reason)}")
        grounded = sum(1 for c in report.claims if c.status.value == "grounded")
        say(f"\n{grounded}/{len(report.claims)} claims grounded")
    if not report.all_grounded:
        raise typer.Exit(1)


def status(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Count calls per state."""
    ctx = checked_context()
    with unit_of_work(ctx.session_factory) as session:
        counts = count_by_state(session, tenant_id_of(session, tenant))
    if as_json:
        print_json({"counts": counts})
        return
    rows: list[list[object]] = [[state, str(count)] for state, count in counts.items()]
    rows.append([Markup("[bold]total[/bold]"), Markup(f"[bold]{sum(counts.values())}[/bold]")])
    print_table(("state", "calls"), rows)


def reconcile(
    stuck_after: Annotated[
        int | None,
        typer.Option(min=0, max=SECONDS_MAX, help="Seconds in queued/processing before a call counts as stuck."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-enqueue calls stuck in queued or processing past the timeout (safe to run anywhere, any time).
    Every stuck call, oldest first, a few hundred per transaction, each chunk handed to the broker before
    the next is claimed; stops when the broker is down (exit 1: the rest wait in the database)."""
    from app.pipeline.reconcile import reconcile_stuck_calls

    ctx = checked_context()
    with progress(show=not as_json) as bar:
        task = bar.add_task("re-enqueueing stuck calls", total=0)
        found = 0

        def on_found(calls: int) -> None:  # each window of candidates, before its first chunk
            nonlocal found
            found += calls
            bar.update(task, total=found)

        def hand_over(call_ids: list[str]) -> bool:
            published = enqueue(call_ids)
            if published:
                bar.advance(task, len(call_ids))
            return published

        done = reconcile_stuck_calls(
            ctx.session_factory,
            stuck_after_seconds=stuck_after if stuck_after is not None else ctx.settings.stuck_after_seconds,
            hand_over=hand_over, on_found=on_found,
        )
    report_requeued(done.requeued, "stuck calls", enqueued=done.handed_over, as_json=as_json)


def retry(
    state: Annotated[str, typer.Option(help="Which calls to retry, by state.")] = "failed",
    since: Annotated[str | None, typer.Option(help="Only calls that entered the state at or after this ISO time.")]
    = None,
    tenant: TenantOpt = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="sync or batch: the calls' LLM mode from now on (batch-mode calls wait for a provider "
        "batch; `--state queued --mode sync` hands them to the workers instead)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put failed (or other) calls back on the queue."""
    from datetime import datetime

    from app.models import CallState, LlmMode
    from app.pipeline.reconcile import requeue_in_chunks

    try:
        wanted = CallState(state)
        since_dt = datetime.fromisoformat(since) if since else None
        new_mode = LlmMode(mode) if mode is not None else None
    except ValueError as exc:
        raise fail(str(exc)) from exc
    ctx = checked_context()
    with unit_of_work(ctx.session_factory) as session:
        tenant_id = tenant_id_of(session, tenant)
    call_ids = requeue_in_chunks(ctx.session_factory, states=[wanted], since=since_dt, tenant_id=tenant_id,
                                 mode=new_mode)
    enqueue_and_report(call_ids, "calls", as_json=as_json)


def reprocess(
    calls: Annotated[list[str] | None, typer.Argument(help="Call ids or external ids (default: all).")] = None,
    tenant: TenantOpt = None,
    provider: Annotated[str | None, typer.Option("--provider")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model for the openai provider.")] = None,
    prompt_version: Annotated[str | None, typer.Option("--prompt-version")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run extraction in this process with another prompt version or model; earlier runs are kept."""
    from app.pipeline.calls import call_ids_of

    overrides: dict[str, Any] = {}
    if model:
        overrides["openai_model"] = model
    if prompt_version:
        overrides["prompt_version"] = prompt_version
    ctx = checked_context(get_settings().model_copy(update=overrides), provider=provider, with_provider=True)
    with unit_of_work(ctx.session_factory) as session:
        tenant_id = tenant_id_of(session, tenant)
        if calls:
            call_ids = [find_call(session, ref, tenant_id).id for ref in calls]
        else:
            call_ids = call_ids_of(session, tenant_id)
    outcomes = process_with_progress(ctx, call_ids, show_progress=not as_json, reprocess_reviewed=True)
    reopened = {o.call_id for o in outcomes if o.reopened}  # a decided call's new extraction reopened it
    if as_json:
        print_json({"calls": [{"call_id": o.call_id, "state": o.state.value, "skipped": o.skipped,
                               "run_id": o.run_id, "error": o.error, "reopened": o.call_id in reopened}
                              for o in outcomes]})
    else:
        for o in outcomes:
            note = " (unchanged: same prompt, provider and model)" if o.skipped else ""
            if o.call_id in reopened:
                note += " (its review decision was reopened: the new extraction is reviewed again)"
            say(f"{o.call_id}: {o.state.value}{note}")
            if o.error:
                err_console.print(f"  [red]error:[/red] {safe(o.error)}", highlight=False)
    if any(o.error for o in outcomes):
        raise typer.Exit(1)
