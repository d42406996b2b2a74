"""The `postcall` command. Each command is an entry point: it owns its transactions."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from app.cli_analysts import analysts_app, export
from app.cli_batches import batches_app
from app.cli_privacy import register as register_privacy
from app.cli_web import console, err_console, fail, safe, serve, users_app
from app.cli_webhooks import webhooks_app
from app.config import PROJECT_ROOT, Settings, get_settings
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.logging import configure_logging
from app.models import LlmMode
from app.pipeline.calls import count_by_state, find_call, find_tenant
from app.pipeline.queries import call_detail
from app.pipeline.store import Actor, StoreStatus, store_transcript
from app.schemas.api import CallDetailOut
from app.schemas.grounding import VerificationReport
from app.worker.context import AppContext

app = typer.Typer(
    name="postcall",
    help="Post-call processing: grounded summaries, reasons, outcomes and action items from transcripts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(batches_app, name="batches")
app.command()(serve)
register_privacy(app)
app.add_typer(analysts_app, name="analysts")
app.command()(export)

# The audit trail names who stored a transcript; from the command line that is the OS account.
CLI_ACTOR = Actor(f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}")
TRANSCRIPT_SUFFIXES = (".json", ".txt", ".vtt", ".srt")
SAMPLES_DIR = PROJECT_ROOT / "samples"

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant slug (default: POSTCALL_DEFAULT_TENANT).")]
FormatOpt = Annotated[str, typer.Option("--format", help="Input format, or 'auto' to detect it.")]
AgentSpeakerOpt = Annotated[
    str | None, typer.Option("--agent-speaker", help="The speaker label that is the agent (overrides inference).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _require_schema(settings: Settings) -> None:
    from app.db.migrate import require_current_schema

    try:
        require_current_schema(settings.database_url)
    except PostcallError as exc:
        raise fail(str(exc)) from exc


def _context(provider: str | None = None) -> AppContext:
    settings = get_settings()
    _require_schema(settings)
    return AppContext(settings, provider_name=provider)


def _processing_context(settings: Settings | None = None, provider: str | None = None) -> AppContext:
    """A context whose provider and prompt are built now, so a bad choice fails before any work."""
    settings = settings or get_settings()
    _require_schema(settings)
    ctx = AppContext(settings, provider_name=provider)
    try:
        _ = ctx.provider, ctx.prompt
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    return ctx


# ---------------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Create or migrate the database schema (POSTCALL_DATABASE_URL)."""
    from app.db.migrate import checked_upgrade

    settings = get_settings()
    try:
        checked_upgrade(settings.database_url, revision)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"database at revision {safe(revision)}: {safe(_safe_url(settings.database_url))}", highlight=False)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------------ ingest


@dataclass
class IngestResult:
    file: str
    format: str | None = None
    call_id: str | None = None
    external_id: str | None = None
    status: str | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "call_id": self.call_id,
            "external_id": self.external_id,
            "status": self.status,
            "error": self.error,
            "warnings": list(self.warnings),
        }


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the transcript files inside directories (sorted, not recursive into dotfiles)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in TRANSCRIPT_SUFFIXES and not p.name.startswith(".")
                    and p.name.lower() != "readme.md"
                )
            )
        else:
            files.append(path)
    return files


def ingest_files(
    ctx: AppContext,
    files: Sequence[Path],
    *,
    tenant: str,
    fmt: str = "auto",
    agent_speaker: str | None = None,
    replace: bool = False,
    llm_mode: LlmMode = LlmMode.sync,
) -> list[IngestResult]:
    """Parse and store each file in its own transaction: a bad file never blocks the good ones."""
    from app.ingest import load_transcript

    results: list[IngestResult] = []
    for path in files:
        result = IngestResult(file=str(path))
        results.append(result)
        try:
            parsed = load_transcript(
                path, fmt=fmt, agent_speaker=agent_speaker, max_bytes=ctx.settings.max_transcript_bytes,
                max_utterances=ctx.settings.max_utterances_per_call,
            )
            result.format = parsed.detected_format
            result.warnings = tuple(parsed.warnings)
            external_id = parsed.transcript.metadata.external_id or path.stem
            with unit_of_work(ctx.session_factory) as session:
                stored = store_transcript(
                    session,
                    parsed.transcript,
                    tenant=tenant,
                    external_id=external_id,
                    source_name=path.name,
                    replace=replace,
                    actor=CLI_ACTOR,
                    redact=ctx.settings.store_redacted,
                    llm_mode=llm_mode,
                )
            result.call_id, result.external_id, result.status = stored.call_id, stored.external_id, stored.status
        except PostcallError as exc:
            result.error = str(exc)
        except OSError as exc:
            result.error = f"{path}: cannot read: {exc.strerror or exc}"
    return results


def _print_ingest_results(results: Iterable[IngestResult], *, stored_lines: bool = True) -> None:
    """Errors and warnings of every file; with `stored_lines`, a line per stored file too."""
    for r in results:
        if r.error:
            err_console.print(f"[red]✗[/red] {safe(r.error)}", highlight=False, soft_wrap=True)
        elif stored_lines:
            console.print(
                f"[green]✓[/green] {safe(r.file)} [dim]({r.format})[/dim] -> {r.call_id} "
                f"[bold]{safe(r.external_id)}[/bold] {r.status}",
                highlight=False,
            )
        for warning in r.warnings:
            err_console.print(f"  [yellow]warning:[/yellow] {safe(warning)}", highlight=False, soft_wrap=True)


def _enqueue(call_ids: list[str]) -> bool:
    from app.worker.enqueue import enqueue_calls

    if not call_ids:
        return True
    try:
        enqueue_calls(call_ids)
    except Exception as exc:  # kombu raises several unrelated types when the broker is down
        err_console.print(
            f"[yellow]warning:[/yellow] could not reach the broker ({safe(exc)}); the calls stay queued in the "
            "database and `postcall reconcile` will enqueue them.",
            highlight=False,
        )
        return False
    return True


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Transcript files or directories.")],
    tenant: TenantOpt = None,
    fmt: FormatOpt = "auto",
    agent_speaker: AgentSpeakerOpt = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a call whose content changed.")] = False,
    no_enqueue: Annotated[bool, typer.Option("--no-enqueue", help="Store only; do not hand to workers.")] = False,
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="sync | batch: batch calls wait for the next provider batch (default "
                     "POSTCALL_LLM_MODE)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Store transcripts as queued calls and hand their ids to the workers."""
    from app.pipeline.llm_mode import resolve_llm_mode

    ctx = _context()
    try:
        llm_mode = resolve_llm_mode(ctx.settings, mode)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    files = expand_paths(paths)
    if not files:
        raise fail("no transcript files found in " + ", ".join(map(str, paths)))
    results = ingest_files(
        ctx, files, tenant=tenant or ctx.settings.default_tenant, fmt=fmt, agent_speaker=agent_speaker,
        replace=replace, llm_mode=llm_mode,
    )
    # Batch-mode calls wait in the database for the batch collector; no worker message is needed.
    to_enqueue = [
        r.call_id for r in results
        if r.call_id and r.status in (StoreStatus.created, StoreStatus.replaced) and llm_mode is LlmMode.sync
    ]
    enqueued = False if no_enqueue else _enqueue(to_enqueue)
    if as_json:
        print(json.dumps({"files": [r.as_json() for r in results], "enqueued": enqueued and bool(to_enqueue),
                          "mode": llm_mode.value}))
    else:
        _print_ingest_results(results)
        waiting = sum(1 for r in results if r.call_id and r.status != StoreStatus.unchanged)
        if llm_mode is LlmMode.batch and waiting:
            console.print(f"{waiting} calls wait for the next batch (`postcall batches` shows them)", highlight=False)
    if any(r.error for r in results):
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------- process


@app.command()
def process(
    paths: Annotated[list[Path], typer.Argument(help="Transcript files or directories.")],
    tenant: TenantOpt = None,
    provider: Annotated[str | None, typer.Option("--provider", help="heuristic | openai")] = None,
    fmt: FormatOpt = "auto",
    agent_speaker: AgentSpeakerOpt = None,
    replace: Annotated[bool, typer.Option("--replace")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest and process transcripts in this process (no broker), with a progress bar."""
    ctx = _processing_context(provider=provider)
    files = expand_paths(paths)
    if not files:
        raise fail("no transcript files found in " + ", ".join(map(str, paths)))
    results = ingest_files(
        ctx, files, tenant=tenant or ctx.settings.default_tenant, fmt=fmt, agent_speaker=agent_speaker,
        replace=replace,
    )
    if not as_json:
        # The same warnings `ingest` shows (one speaker, unsure roles...), before the progress bar.
        _print_ingest_results(results, stored_lines=False)
    call_ids = [r.call_id for r in results if r.call_id]
    outcomes = process_in_process(ctx, call_ids, show_progress=not as_json)
    if as_json:
        print(json.dumps({
            "files": [r.as_json() for r in results],
            "calls": [{"call_id": o.call_id, "state": o.state.value, "claims": o.claims,
                       "ungrounded": o.ungrounded, "error": o.error} for o in outcomes],
        }))
    else:
        by_id = {r.call_id: r for r in results}
        for outcome in outcomes:
            name = by_id[outcome.call_id].external_id
            detail = f" ({safe(outcome.error)})" if outcome.error else ""
            console.print(f"{outcome.call_id} [bold]{safe(name)}[/bold]: {outcome.state.value}{detail}",
                          highlight=False)
    if any(r.error for r in results) or any(o.error for o in outcomes):
        raise typer.Exit(1)


def process_in_process(
    ctx: AppContext, call_ids: Sequence[str], *, show_progress: bool, reprocess_reviewed: bool = False
) -> list[Any]:
    """Process calls one by one. A transient failure (429, 5xx, timeout) is retried here with the worker's
    policy (exponential backoff with jitter, Retry-After honoured, POSTCALL_TASK_MAX_RETRIES), each wait
    shown on the progress bar; past the retries the call is `failed` and `postcall retry` re-runs it."""
    import time

    from app.errors import TransientError
    from app.pipeline.retry import retry_countdown
    from app.pipeline.run import ProcessOutcome, mark_failed, process_call

    outcomes: list[ProcessOutcome] = []
    if not call_ids:
        return outcomes
    settings = ctx.settings
    provider, prompt = ctx.provider, ctx.prompt
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, disable=not show_progress, transient=True,
    ) as progress:
        description = f"extracting ({provider.name})"
        task = progress.add_task(description, total=len(call_ids))
        for call_id in call_ids:
            retries = 0
            while True:
                try:
                    outcome = process_call(
                        ctx.session_factory,
                        call_id,
                        provider,
                        prompt,
                        redact_for_llm=settings.redact_for_llm,
                        redact_names=settings.redact_names,
                        reprocess_reviewed=reprocess_reviewed,
                    )
                except TransientError as exc:
                    if retries >= settings.task_max_retries:
                        reason = f"gave up after {retries + 1} attempts: {exc}"
                        outcome = mark_failed(ctx.session_factory, call_id, provider, prompt, reason)
                        break
                    wait = retry_countdown(retries, exc.retry_after, settings.task_backoff_base,
                                           settings.task_backoff_max)
                    retries += 1
                    note = f"call {call_id}: {exc}; retry {retries}/{settings.task_max_retries} in {wait:.1f} s"
                    if show_progress:
                        progress.console.print(f"[yellow]waiting:[/yellow] {safe(note)}", highlight=False,
                                               soft_wrap=True)
                    progress.update(task, description=f"{description}: waiting {wait:.1f} s (retry {retries})")
                    time.sleep(wait)
                    progress.update(task, description=description)
                    continue
                break
            outcomes.append(outcome)
            progress.advance(task)
    return outcomes


# -------------------------------------------------------------------------------------------- show


def _load_detail(ctx: AppContext, reference: str, tenant: str | None) -> CallDetailOut:
    with unit_of_work(ctx.session_factory) as session:
        call = find_call(session, reference, _tenant_id(session, tenant))
        return call_detail(session, call)


def show_json(detail: CallDetailOut) -> dict[str, Any]:
    document = detail.model_dump(mode="json")
    return document


@app.command()
def show(
    call: Annotated[str, typer.Argument(help="Call id or external id.")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a call's extraction: claims, evidence and grounding status."""
    ctx = _context()
    try:
        detail = _load_detail(ctx, call, tenant)
    except PostcallError as exc:
        raise fail(str(exc), 1) from exc
    if as_json:
        print(json.dumps(show_json(detail)))
        return
    render_call(detail)


STATUS_STYLE = {
    "grounded": "green",
    "ungrounded": "bold red",
    "exact": "green",
    "normalized": "green",
    "fuzzy": "yellow",
    "relocated": "yellow",
}


def _status(label: str, reason: str | None = None) -> str:
    style = STATUS_STYLE.get(label, "white")
    suffix = f": {reason}" if reason else ""
    return f"[{style}]{safe(label + suffix)}[/{style}]"


def render_call(detail: CallDetailOut, *, with_note: bool = False) -> None:
    console.rule(f"[bold]{safe(detail.external_id)}[/bold]  {detail.call_id}  [dim]{detail.state}[/dim]")
    if detail.error:
        console.print(f"[red]error:[/red] {safe(detail.error)}", highlight=False)
    if detail.run:
        run = detail.run
        console.print(
            f"[dim]{safe(run.provider)}/{safe(run.model)} prompt {safe(run.prompt_version)} · {run.llm_calls} LLM "
            "calls · "
            f"{run.prompt_tokens}+{run.completion_tokens} tokens · ${run.cost_usd:.4f} · "
            f"{(run.total_ms or 0):.0f} ms[/dim]",
            highlight=False,
        )
    if with_note and detail.claims:
        from app.pipeline.note import case_note, stated_as_fact

        note = case_note([c for c in detail.claims if stated_as_fact(c.status, c.review_status)])
        console.print(f"\n[bold]Case note[/bold] [dim](verified items only)[/dim]\n  {escape(note)}", highlight=False)
    utterances = {u.index: u for u in detail.utterances}
    titles = {"reason": "Reason", "outcome": "Outcome", "summary": "Summary", "action_item": "Action items"}
    for kind in ("reason", "outcome", "summary", "action_item"):
        claims = [c for c in detail.claims if c.kind == kind]
        if not claims:
            continue
        console.print(f"\n[bold]{titles[kind]}[/bold]")
        for claim in claims:
            flag = "" if claim.status == "grounded" else "[bold red]UNVERIFIED[/bold red] "
            extra = ""
            if kind == "action_item":
                extra = f" [cyan](owner: {safe(claim.owner)}; due: {safe(claim.due or '—')})[/cyan]"
            console.print(f"  • {flag}{safe(claim.text)}{extra}  {_status(claim.status, claim.reason)}",
                          highlight=False)
            for ev in claim.evidence:
                where = ev.utterance if ev.utterance is not None else ev.cited_utterance
                speaker = utterances[where].role if where in utterances else "?"
                console.print(
                    f"      [dim]{safe(f'[{where}]')} {safe(speaker)}:[/dim] “{safe(ev.quote)}”  "
                    f"{_status(ev.status, ev.reason)}",
                    highlight=False,
                )
    if not detail.claims and not detail.error:
        console.print("  (no extraction yet)")
    console.print()


# ------------------------------------------------------------------------------------------ verify


def verification_json(report: VerificationReport) -> dict[str, Any]:
    return {
        "claims": [
            {
                "kind": claim.kind.value,
                "text": claim.text,
                "status": claim.status.value,
                "reason": claim.reason,
                "owner": claim.owner.value if claim.owner else None,
                "due": claim.due,
                "evidence": [
                    {
                        "utterance": ev.utterance,
                        "cited_utterance": ev.cited_utterance,
                        "quote": ev.quote,
                        "status": ev.status.value,
                        "char_start": ev.char_start,
                        "char_end": ev.char_end,
                        "score": round(ev.score, 4),
                        "reason": ev.reason,
                    }
                    for ev in claim.evidence
                ],
            }
            for claim in report.claims
        ]
    }


@app.command()
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

    try:
        parsed = load_transcript(transcript, fmt=fmt, agent_speaker=agent_speaker)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
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
    report = verify_extraction(parsed.transcript, document)
    if as_json:
        print(json.dumps(verification_json(report)))
    else:
        for claim in report.claims:
            console.print(f"{_status(claim.status.value, claim.reason)}  {safe(f'[{claim.kind.value}]')} "
                          f"{safe(claim.text)}", highlight=False)
            for ev in claim.evidence:
                where = ev.utterance if ev.utterance is not None else ev.cited_utterance
                span = f" chars {ev.char_start}-{ev.char_end}" if ev.char_start is not None else ""
                console.print(f"    {safe(f'[{where}]')}{span} “{safe(ev.quote)}” "
                              f"{_status(ev.status.value, ev.reason)}", highlight=False)
        grounded = sum(1 for c in report.claims if c.status.value == "grounded")
        console.print(f"\n{grounded}/{len(report.claims)} claims grounded", highlight=False)
    if not report.all_grounded:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------ status


@app.command()
def status(tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Count calls per state."""
    ctx = _context()
    with unit_of_work(ctx.session_factory) as session:
        counts = count_by_state(session, _tenant_id(session, tenant))
    if as_json:
        print(json.dumps({"counts": counts}))
        return
    table = Table("state", "calls")
    for state, count in counts.items():
        table.add_row(safe(state), str(count))
    table.add_row("[bold]total[/bold]", f"[bold]{sum(counts.values())}[/bold]")
    console.print(table)


# ------------------------------------------------------------------------------------------ worker


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Parallel tasks (default POSTCALL_WORKER_CONCURRENCY, else the sizing rule).")
    ] = None,
    pool: Annotated[str | None, typer.Option(help="threads | prefork | solo | gevent")] = None,
    loglevel: Annotated[str, typer.Option()] = "INFO",
    beat: Annotated[bool, typer.Option("--beat", help="Also run the reconciler schedule in this worker.")] = False,
) -> None:
    """Run a Celery worker consuming the postcall queue, sized by the rule in docs/operations.md."""
    from app.worker.sizing import prepare_worker

    configure_logging(loglevel)
    try:
        sizing = prepare_worker(concurrency, pool)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    from app.worker.celery_app import celery_app
    from app.worker.names import QUEUE_NAME

    argv = [
        "worker",
        f"--pool={sizing.pool}",
        f"--concurrency={sizing.concurrency}",
        f"--loglevel={loglevel}",
        f"--queues={QUEUE_NAME}",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv.append("--beat")
    celery_app.worker_main(argv)


# ------------------------------------------------------------------------- reconcile / retry / reprocess


def _enqueue_and_report(call_ids: list[str], what: str, *, as_json: bool) -> None:
    """Hand requeued calls to the broker; exit 1 when it is down (they stay queued in the database)."""
    enqueued = _enqueue(call_ids)
    if as_json:
        print(json.dumps({"requeued": call_ids, "enqueued": enqueued}))
    else:
        console.print(f"{len(call_ids)} {what} re-enqueued", highlight=False)
    if not enqueued:
        raise typer.Exit(1)


@app.command()
def reconcile(
    stuck_after: Annotated[
        int | None, typer.Option(help="Seconds in queued/processing before a call counts as stuck.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-enqueue calls stuck in queued or processing past the timeout (safe to run anywhere, any time)."""
    from app.pipeline.reconcile import claim_stuck_calls

    ctx = _context()
    with unit_of_work(ctx.session_factory) as session:
        call_ids = claim_stuck_calls(
            session, stuck_after_seconds=stuck_after if stuck_after is not None else ctx.settings.stuck_after_seconds
        )
    _enqueue_and_report(call_ids, "stuck calls", as_json=as_json)


@app.command()
def retry(
    state: Annotated[str, typer.Option(help="Which calls to retry, by state.")] = "failed",
    since: Annotated[str | None, typer.Option(help="Only calls that entered the state at or after this ISO time.")]
    = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put failed (or other) calls back on the queue."""
    from datetime import datetime

    from app.models import CallState
    from app.pipeline.reconcile import requeue_calls

    try:
        wanted = CallState(state)
        since_dt = datetime.fromisoformat(since) if since else None
    except ValueError as exc:
        raise fail(str(exc)) from exc
    ctx = _context()
    with unit_of_work(ctx.session_factory) as session:
        tenant_id = _tenant_id(session, tenant)
        call_ids = requeue_calls(session, states=[wanted], since=since_dt, tenant_id=tenant_id)
    _enqueue_and_report(call_ids, "calls", as_json=as_json)


@app.command()
def reprocess(
    calls: Annotated[list[str] | None, typer.Argument(help="Call ids or external ids (default: all).")] = None,
    tenant: TenantOpt = None,
    provider: Annotated[str | None, typer.Option("--provider")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model for the openai provider.")] = None,
    prompt_version: Annotated[str | None, typer.Option("--prompt-version")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run extraction in this process with another prompt version or model; earlier runs are kept."""
    overrides: dict[str, Any] = {}
    if model:
        overrides["openai_model"] = model
    if prompt_version:
        overrides["prompt_version"] = prompt_version
    ctx = _processing_context(get_settings().model_copy(update=overrides), provider)
    with unit_of_work(ctx.session_factory) as session:
        tenant_id = _tenant_id(session, tenant)
        if calls:
            call_ids = [find_call(session, ref, tenant_id).id for ref in calls]
        else:
            from sqlalchemy import select

            from app.models import Call

            query = select(Call.id).order_by(Call.created_at)
            if tenant_id is not None:
                query = query.where(Call.tenant_id == tenant_id)
            call_ids = list(session.scalars(query))
    outcomes = process_in_process(ctx, call_ids, show_progress=not as_json, reprocess_reviewed=True)
    if as_json:
        print(json.dumps({"calls": [{"call_id": o.call_id, "state": o.state.value, "skipped": o.skipped,
                                     "run_id": o.run_id, "error": o.error} for o in outcomes]}))
    else:
        for o in outcomes:
            note = " (unchanged: same prompt, provider and model)" if o.skipped else ""
            console.print(f"{o.call_id}: {o.state.value}{note}", highlight=False)
            if o.error:
                err_console.print(f"  [red]error:[/red] {safe(o.error)}", highlight=False)
    if any(o.error for o in outcomes):
        raise typer.Exit(1)


def _tenant_id(session: Any, tenant: str | None) -> int | None:
    if tenant is None:
        return None
    tenant_row = find_tenant(session, tenant)
    if tenant_row is None:
        raise PostcallError(f"no tenant {tenant!r}")
    return tenant_row.id


# ------------------------------------------------------------------------------------------ health


@app.command()
def health(as_json: JsonOpt = False) -> None:
    """Check the database, the broker and the provider configuration; exit 1 when one is down."""
    from app.health import run_checks

    checks = run_checks(get_settings())
    if as_json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_json() for c in checks]}))
    else:
        for check in checks:
            mark = "[green]ok[/green]" if check.ok else "[red]FAIL[/red]"
            console.print(f"{mark}  {check.name}: {safe(check.detail)}", highlight=False)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


# -------------------------------------------------------------------------------------------- demo


SAFEGUARD_SAMPLE = "bank_lost_card.json"


@app.command()
def demo(
    samples: Annotated[Path, typer.Option(help="Folder of sample calls.")] = SAMPLES_DIR,
    tenant: TenantOpt = None,
) -> None:
    """Set up the database, ingest the sample calls, process them offline and print the results."""
    from app.db.migrate import upgrade

    upgrade(get_settings().database_url)
    ctx = _processing_context(provider="heuristic")
    console.print(f"[dim]database: {safe(_safe_url(ctx.settings.database_url))}[/dim]", highlight=False)
    files = expand_paths([samples])
    results = ingest_files(ctx, files, tenant=tenant or ctx.settings.default_tenant)
    _print_ingest_results(results, stored_lines=False)
    call_ids = [r.call_id for r in results if r.call_id]
    process_in_process(ctx, call_ids, show_progress=True)
    for call_id in call_ids:
        render_call(_load_detail(ctx, call_id, None), with_note=True)
    safeguarded = _demo_safeguard(ctx, files, tenant or ctx.settings.default_tenant)
    with unit_of_work(ctx.session_factory) as session:
        counts = count_by_state(session)
    summary = ", ".join(f"{state}: {n}" for state, n in counts.items() if n)
    extra = " + 1 through the openai provider (scripted, local)" if safeguarded else ""
    console.print(f"[bold]{len(call_ids)} sample calls processed offline{extra}[/bold] ({summary})", highlight=False)
    if any(r.error for r in results):
        raise typer.Exit(1)


def _demo_safeguard(ctx: AppContext, files: list[Path], tenant: str) -> bool:
    """One call through the `openai` provider, answered on 127.0.0.1 with an invented amount: the
    verifier's flag is what the reviewer sees first."""
    from app.pipeline.safeguard_demo import run_safeguard_call

    sample = next((f for f in files if f.name == SAFEGUARD_SAMPLE), None)
    if sample is None:
        return False
    console.print(f"[bold]Safeguard:[/bold] {SAFEGUARD_SAMPLE} again through the openai provider, against a "
                  "local scripted server whose answer invents a $25 fee (no network, no key)", highlight=False)
    outcome = run_safeguard_call(ctx.session_factory, ctx.settings, ctx.prompt, sample, tenant)
    render_call(_load_detail(ctx, outcome.call_id, None), with_note=True)
    return True


def main() -> None:
    configure_logging(get_settings().log_level)
    try:
        app()
    except PostcallError as exc:
        err_console.print(f"[red]error:[/red] {safe(exc)}", highlight=False)
        sys.exit(2)
    except SQLAlchemyError as exc:
        # The database failed mid-command (server gone, disk full): one line, not a driver traceback.
        first_line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        err_console.print(f"[red]database error:[/red] {safe(first_line)}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
