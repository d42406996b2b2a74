"""`postcall batches ...`: the provider batch jobs of batch mode.

`postcall batches` lists them; `collect`, `poll` and `cancel` run one step by hand (the beat schedule
runs `collect` and `poll` on its own when a worker runs with `--beat`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import ROW_ID_MAX, JsonOpt, checked_context, refusal_exits
from app.cli.render import Markup, fail, print_json, print_table, safe, say

if TYPE_CHECKING:
    from app.pipeline.batch import BatchOverview

batches_app = typer.Typer(
    help="Batch mode: provider batch jobs and their progress (lists them without a subcommand).",
    invoke_without_command=True,
)


@batches_app.callback()
def batches(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    open_only: Annotated[bool, typer.Option("--open", help="Only batches whose calls are not all handled.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest batches shown.")] = 50,
) -> None:
    """List batches, newest first: status, requests answered, calls still waiting in each."""
    if ctx.invoked_subcommand is not None:
        return
    # Imported here: the batch machinery loads the provider SDK, which other commands need not pay for.
    from app.db.session import unit_of_work
    from app.pipeline.batch import calls_waiting_for_batch, list_batches

    app_ctx = checked_context()
    with unit_of_work(app_ctx.session_factory) as session:
        rows = list_batches(session, limit=limit, open_only=open_only)
        waiting = calls_waiting_for_batch(session)
    if as_json:
        print_json({"batches": [row.as_json() for row in rows], "calls_waiting_for_batch": waiting})
        return
    _render(rows)
    say(f"{waiting} calls waiting for the next batch")


def _render(rows: list[BatchOverview]) -> None:
    def status(row: BatchOverview) -> Markup:
        text = safe(row.status) + (" (collected)" if row.collected_at else "")
        if row.last_error:
            text += f"\n[red]{safe(row.last_error)}[/red]"
        return Markup(text)

    # Folded, never cut with an ellipsis: ids and statuses are copied into provider consoles and tickets.
    print_table(
        ("batch", "status", "answered", "calls left", "created", "finished", "provider id"),
        ([row.id, status(row), f"{row.completed}/{row.requests}" + (f", {row.failed} failed" if row.failed else ""),
          f"{row.waiting_calls}/{row.calls}", f"{row.created_at:%m-%d %H:%M}",
          f"{row.finished_at:%m-%d %H:%M}" if row.finished_at else None, row.provider_batch_id] for row in rows),
        min_widths=(5, 11, 8, 5, 11, 11, 12),
    )


def _print_counts(document: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(document)
    else:
        say(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in document.items()))


@batches_app.command("collect")
def batches_collect(as_json: JsonOpt = False) -> None:
    """Gather the calls waiting for a batch into new batches now (one collector pass)."""
    from app.pipeline.batch import collect_batches

    ctx = checked_context(with_provider=True)
    with refusal_exits():
        summary = collect_batches(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    if as_json:
        print_json({"submitted": summary.submitted, "calls": summary.calls, "refused": summary.failed})
        if summary.failed:
            raise typer.Exit(1)
        return
    say(f"{summary.calls} calls batched; batches submitted: {summary.submitted or 'none'}")
    if summary.failed:
        say(f"[red]refused by the provider:[/red] {summary.failed} (`postcall batches` shows why; their calls "
            "wait for the next batch, no attempt spent)")
    if summary.failed:
        raise typer.Exit(1)


@batches_app.command("poll")
def batches_poll(as_json: JsonOpt = False) -> None:
    """Ask every open batch for its status now and store the answers of finished ones (one poller pass)."""
    from app.pipeline.batch import poll_batches

    ctx = checked_context(with_provider=True)
    with refusal_exits():
        summary = poll_batches(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    _print_counts({
        "polled": summary.polled, "finished": summary.finished, "stored": summary.stored, "failed": summary.failed,
        "put_back": summary.put_back, "pending": summary.pending, "unused": summary.unused,
        "collected": summary.collected,
    }, as_json=as_json)


@batches_app.command("cancel")
def batches_cancel(
    batch_id: Annotated[int, typer.Argument(min=1, max=ROW_ID_MAX, help="The batch number `postcall batches` shows.")],
    release: Annotated[bool, typer.Option(
        "--release", help="Send its calls to the next batch now, without asking the provider: for a batch it no "
        "longer has, whose output is gone, or an exported one whose output is lost (an answer arriving later "
        "is not used)")] = False,
) -> None:
    """Cancel a batch; the poller then sends its unanswered calls again in the next batch."""
    from app.pipeline.batch import cancel_batch

    ctx = checked_context(with_provider=True)
    with refusal_exits():
        status = cancel_batch(ctx.session_factory, ctx.provider, batch_id, settings=ctx.settings, release=release)
    say(f"batch {batch_id}: {safe(status)}")


@batches_app.command("export")
def batches_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the JSONL input file.")],
) -> None:
    """Write the waiting calls' requests for an offline runner (`vllm run-batch -i FILE -o OUT`)."""
    from app.pipeline.batch import export_batch

    ctx = checked_context(with_provider=True)
    with refusal_exits():
        exported = export_batch(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings)
    if exported is None:
        say("no calls are waiting for a batch")
        return
    batch_id, payload = exported
    requests = payload.count(b"\n")
    try:
        output.write_bytes(payload)
    except OSError as exc:
        raise fail(f"{output}: cannot write: {exc.strerror or exc}; batch {batch_id} is waiting for it "
                   f"(`postcall batches cancel {batch_id}` sends its calls to the next batch)") from exc
    say(f"batch {batch_id}: {requests} requests written to {safe(output)}; bring the output "
        f"back with `postcall batches import {batch_id} OUT.jsonl`")


@batches_app.command("import")
def batches_import(
    batch_id: Annotated[int, typer.Argument(min=1, max=ROW_ID_MAX, help="The exported batch.")],
    files: Annotated[list[Path], typer.Argument(help="The runner's output (and error) JSONL files.")],
    as_json: JsonOpt = False,
) -> None:
    """Store an offline runner's answers for an exported batch (same path as a provider batch's)."""
    from app.pipeline.batch import import_batch_results

    ctx = checked_context(with_provider=True)
    texts = []
    for path in files:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise fail(f"cannot read {path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:  # a traceback before
            raise fail(f"{path} is not UTF-8 text: give the runner's JSONL output") from exc
    with refusal_exits():
        summary = import_batch_results(ctx.session_factory, ctx.provider, ctx.prompt, ctx.settings, batch_id, texts)
    _print_counts({"stored": summary.stored, "failed": summary.failed, "put_back": summary.put_back,
                   "pending": summary.pending, "collected": bool(summary.collected)}, as_json=as_json)
