"""`postcall batches ...`: the provider batch jobs of batch mode. Registered in app/cli.py:

    app.add_typer(batches_app, name="batches")

`postcall batches` lists them; `collect`, `poll` and `cancel` run one step by hand (the beat schedule
runs `collect` and `poll` on its own when a worker runs with `--beat`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.cli_web import console, fail
from app.config import get_settings
from app.db.session import unit_of_work
from app.errors import PostcallError
from app.worker.context import AppContext

if TYPE_CHECKING:
    from app.pipeline.batch import BatchOverview

batches_app = typer.Typer(
    help="Batch mode: provider batch jobs and their progress (lists them without a subcommand).",
    invoke_without_command=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _context(*, provider: bool = False) -> AppContext:
    from app.db.migrate import require_current_schema

    settings = get_settings()
    try:
        require_current_schema(settings.database_url)
        ctx = AppContext(settings)
        if provider:
            _ = ctx.provider, ctx.prompt
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    return ctx


@batches_app.callback()
def batches(
    ctx: typer.Context,
    as_json: JsonOption = False,
    open_only: Annotated[bool, typer.Option("--open", help="Only batches whose calls are not all handled.")] = False,
    limit: Annotated[int, typer.Option(help="Newest batches shown.")] = 50,
) -> None:
    """List batches, newest first: status, requests answered, calls still waiting in each."""
    if ctx.invoked_subcommand is not None:
        return
    # Imported here: the batch machinery loads the provider SDK, which other commands need not pay for.
    from app.pipeline.batch import calls_waiting_for_batch, list_batches

    app_ctx = _context()
    with unit_of_work(app_ctx.session_factory) as session:
        rows = list_batches(session, limit=limit, open_only=open_only)
        waiting = calls_waiting_for_batch(session)
    if as_json:
        print(json.dumps({"batches": [row.as_json() for row in rows], "calls_waiting_for_batch": waiting}))
        return
    _render(rows)
    console.print(f"{waiting} calls waiting for the next batch", highlight=False)


def _render(rows: list[BatchOverview]) -> None:
    # Folded, never cut with an ellipsis: ids and statuses are copied into provider consoles and tickets.
    table = Table()
    widths = {"batch": 5, "status": 11, "answered": 8, "calls left": 5, "created": 11, "finished": 11,
              "provider id": 12}
    for title, width in widths.items():
        table.add_column(title, overflow="fold", min_width=width)
    for row in rows:
        status = escape(row.status) + (" (collected)" if row.collected_at else "")
        if row.last_error:
            status += f"\n[red]{escape(row.last_error)}[/red]"
        answered = f"{row.completed}/{row.requests}" + (f", {row.failed} failed" if row.failed else "")
        table.add_row(
            str(row.id),
            status,
            answered,
            f"{row.waiting_calls}/{row.calls}",
            f"{row.created_at:%m-%d %H:%M}",
            f"{row.finished_at:%m-%d %H:%M}" if row.finished_at else "—",
            escape(row.provider_batch_id or "—"),
        )
    console.print(table)


@batches_app.command("collect")
def batches_collect(as_json: JsonOption = False) -> None:
    """Gather the calls waiting for a batch into new batches now (one collector pass)."""
    from app.pipeline.batch import collect_batches

    ctx = _context(provider=True)
    try:
        summary = collect_batches(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        print(json.dumps({"submitted": summary.submitted, "calls": summary.calls, "refused": summary.failed}))
        return
    console.print(f"{summary.calls} calls batched; batches submitted: {summary.submitted or 'none'}", highlight=False)
    if summary.failed:
        console.print(f"[red]refused by the provider:[/red] {summary.failed}", highlight=False)


@batches_app.command("poll")
def batches_poll(as_json: JsonOption = False) -> None:
    """Ask every open batch for its status now and store the answers of finished ones (one poller pass)."""
    from app.pipeline.batch import poll_batches

    ctx = _context(provider=True)
    try:
        summary = poll_batches(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    document = {
        "polled": summary.polled, "finished": summary.finished, "stored": summary.stored,
        "put_back": summary.put_back, "pending": summary.pending, "collected": summary.collected,
    }
    if as_json:
        print(json.dumps(document))
        return
    console.print(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in document.items()), highlight=False)


@batches_app.command("cancel")
def batches_cancel(batch_id: Annotated[int, typer.Argument(help="The batch number `postcall batches` shows.")]) -> None:
    """Cancel a batch; the poller then sends its unanswered calls again in the next batch."""
    from app.pipeline.batch import cancel_batch

    ctx = _context(provider=True)
    try:
        status = cancel_batch(ctx.session_factory, ctx.provider, batch_id)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    console.print(f"batch {batch_id}: {escape(status)}", highlight=False)


@batches_app.command("export")
def batches_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the JSONL input file.")],
) -> None:
    """Write the waiting calls' requests for an offline runner (`vllm run-batch -i FILE -o OUT`)."""
    from app.pipeline.batch import export_batch

    ctx = _context(provider=True)
    try:
        exported = export_batch(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    if exported is None:
        console.print("no calls are waiting for a batch", highlight=False)
        return
    batch_id, payload = exported
    requests = payload.count(b"\n")
    try:
        output.write_bytes(payload)
    except OSError as exc:
        # The calls stay in the batch; importing an empty file sends them to the next batch instead.
        raise fail(f"{output}: cannot write: {exc.strerror or exc}; batch {batch_id} is waiting for it") from exc
    console.print(
        f"batch {batch_id}: {requests} requests written to {escape(str(output))}; bring the output "
        f"back with `postcall batches import {batch_id} OUT.jsonl`",
        highlight=False,
    )


@batches_app.command("import")
def batches_import(
    batch_id: Annotated[int, typer.Argument(help="The exported batch.")],
    files: Annotated[list[Path], typer.Argument(help="The runner's output (and error) JSONL files.")],
    as_json: JsonOption = False,
) -> None:
    """Store an offline runner's answers for an exported batch (same path as a provider batch's)."""
    from app.pipeline.batch import import_batch_results

    ctx = _context(provider=True)
    try:
        texts = [path.read_text(encoding="utf-8") for path in files]
    except OSError as exc:
        raise fail(f"cannot read: {exc}") from exc
    try:
        summary = import_batch_results(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings, batch_id, texts)
    except PostcallError as exc:
        raise fail(str(exc)) from exc
    document = {"stored": summary.stored, "put_back": summary.put_back, "pending": summary.pending,
                "collected": bool(summary.collected)}
    if as_json:
        print(json.dumps(document))
        return
    console.print(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in document.items()), highlight=False)
