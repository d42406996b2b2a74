"""`postcall ingest` and `postcall process`: transcript files in, queued or processed calls out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    CLI_ACTOR,
    AgentSpeakerOpt,
    FormatOpt,
    JsonOpt,
    TenantOpt,
    checked_context,
    enqueue,
    refusal_exits,
    tenant_slug,
)
from app.cli.render import err_console, fail, print_json, progress, safe, say, warn
from app.context import AppContext
from app.models import LlmMode
from app.pipeline.ingest_files import TRANSCRIPT_SUFFIXES, FoundFiles, IngestResult, find_transcript_files, ingest_files
from app.pipeline.inprocess import process_in_process
from app.pipeline.run import ProcessOutcome
from app.pipeline.store import StoreStatus


def _transcript_path(value: str) -> Path:
    # Path("") is the working directory: an unset shell variable ("$CALLS") would ingest whatever is here.
    if not value.strip():
        raise typer.BadParameter("an empty path (a variable that expanded to nothing?)")
    return Path(value)


def _encoding(value: str) -> str:
    from app.ingest.source import UnknownEncodingError, text_encoding

    try:
        text_encoding(value)
    except UnknownEncodingError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", parser=_encoding,
                 help="The files' character set (latin-1, windows-1252...) when it is not UTF-8. A byte-order "
                 "mark in a file still wins; JSON is always read as UTF-8 (RFC 8259); a file that is valid UTF-8 "
                 "with non-ASCII characters is read as UTF-8 whatever single-byte charset is given (with a "
                 "warning). Default: UTF-8 (or UTF-16/32 with a byte-order mark)."),
]


PathsArg = Annotated[
    list[Path],
    typer.Argument(
        help=f"Transcript files or directories. A file named here is read whatever its name. In a directory "
        f"(searched recursively) only {', '.join(TRANSCRIPT_SUFFIXES)} files are read, in any case (.JSON too); "
        "every other entry (another extension, none, .gz, a hidden name, README.md) is listed as skipped, "
        "with the reason. The format is told by the content.",
        parser=_transcript_path,
    ),
]


def transcript_files(paths: Sequence[Path], *, show_skipped: bool) -> FoundFiles:
    """The files to read; with `show_skipped` (and always when nothing is left to read: `--json` prints no
    document then), each entry of a directory that is not read is listed first, on standard error."""
    found = find_transcript_files(paths)
    if show_skipped or not found.files:
        for skipped in found.skipped:
            err_console.print(f"  [dim]skipped:[/dim] {safe(skipped.path)}: {safe(skipped.reason)}",
                              highlight=False, soft_wrap=True)
    if not found.files:
        raise fail("no transcript files found in " + ", ".join(map(str, paths))
                   + (f" ({len(found.skipped)} skipped: listed above)" if found.skipped else ""))
    return found


def _call_in_file(result: IngestResult) -> str:
    """The file, and for a file of several calls the call's place in it: "calls.json[3]", "calls.ndjson line 4"."""
    if result.position is None:
        return result.file
    return f"{result.file}{result.position}" if result.position.startswith("[") else f"{result.file} {result.position}"


def print_ingest_results(results: Iterable[IngestResult], *, stored_lines: bool = True) -> None:
    """Errors and warnings of every file (or call of a multi-call file), each warning named by its file; with
    `stored_lines`, a line per stored call too."""
    for r in results:
        if r.error:
            err_console.print(f"[red]✗[/red] {safe(r.error)}", highlight=False, soft_wrap=True)
        elif stored_lines:
            say(f"[green]✓[/green] {safe(_call_in_file(r))} [dim]({r.format})[/dim] -> {r.call_id} "
                f"[bold]{safe(r.external_id)}[/bold] {r.status}")
        for warning in r.warnings:
            warn(f"{_call_in_file(r)}: {warning}")


def ingest_totals(results: Sequence[IngestResult], skipped: int) -> str:
    """One line: how many files (and calls, when a file held several) were stored, replaced, updated,
    unchanged, failed, and skipped."""
    counts = {status: sum(1 for r in results if r.status == status) for status in StoreStatus}
    failed = sum(1 for r in results if r.error)
    files = len(dict.fromkeys(r.file for r in results))
    read = f"{files} file{'s' if files != 1 else ''}"
    if files != len(results):
        read += f", {len(results)} calls"
    return (f"{read}: {counts[StoreStatus.created]} stored, "
            f"{counts[StoreStatus.replaced]} replaced, {counts[StoreStatus.updated]} updated, "
            f"{counts[StoreStatus.unchanged]} unchanged, {failed} failed; {skipped} skipped")


@contextmanager
def progress_bar(
    label: str, total: int, *, show: bool
) -> Iterator[tuple[Callable[[str, float, int], None], Callable[[ProcessOutcome], None]]]:
    """The `on_wait` and `on_done` callbacks of in-process processing, drawn as a progress bar that
    shows each backoff wait."""
    with progress(show=show) as bar:
        task = bar.add_task(label, total=total)

        def on_wait(note: str, wait: float, retry: int) -> None:
            if show:
                bar.console.print(f"[yellow]waiting:[/yellow] {safe(note)}", highlight=False, soft_wrap=True)
            bar.update(task, description=f"{label}: waiting {wait:.1f} s (retry {retry})")

        def on_done(outcome: ProcessOutcome) -> None:
            bar.update(task, description=label)
            bar.advance(task)

        yield on_wait, on_done


def process_with_progress(
    ctx: AppContext, call_ids: Sequence[str], *, show_progress: bool, reprocess_reviewed: bool = False
) -> list[ProcessOutcome]:
    with progress_bar(f"extracting ({ctx.provider.name})", len(call_ids), show=show_progress) as (on_wait, on_done):
        return process_in_process(ctx, call_ids, reprocess_reviewed=reprocess_reviewed, on_wait=on_wait,
                                  on_done=on_done)


def ingest(
    paths: PathsArg,
    tenant: TenantOpt = None,
    fmt: FormatOpt = "auto",
    agent_speaker: AgentSpeakerOpt = None,
    encoding: EncodingOpt = None,
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

    ctx = checked_context()
    with refusal_exits():
        llm_mode = resolve_llm_mode(ctx.settings, mode)
    found = transcript_files(paths, show_skipped=not as_json)
    results = ingest_files(
        ctx, found.files, tenant=tenant_slug(ctx, tenant), actor=CLI_ACTOR, fmt=fmt,
        agent_speaker=agent_speaker, replace=replace, llm_mode=llm_mode, encoding=encoding,
    )
    # Batch-mode calls wait in the database for the batch collector; no worker message is needed.
    # Still-queued calls stored by an earlier, interrupted run are handed over again too.
    to_enqueue = [r.call_id for r in results if r.call_id and r.needs_enqueue]
    enqueued = False if no_enqueue else enqueue(to_enqueue)
    if as_json:
        print_json({"files": [r.as_json() for r in results], "skipped": [s.as_json() for s in found.skipped],
                    "enqueued": enqueued and bool(to_enqueue), "mode": llm_mode.value})
    else:
        print_ingest_results(results)
        waiting = sum(1 for r in results if r.call_id and r.status != StoreStatus.unchanged)
        if llm_mode is LlmMode.batch and waiting:
            say(f"{waiting} calls wait for the next batch (`postcall batches` shows them)")
        say(ingest_totals(results, len(found.skipped)))
    if any(r.error for r in results):
        raise typer.Exit(1)


def process(
    paths: PathsArg,
    tenant: TenantOpt = None,
    provider: Annotated[str | None, typer.Option("--provider", help="heuristic | openai")] = None,
    fmt: FormatOpt = "auto",
    agent_speaker: AgentSpeakerOpt = None,
    encoding: EncodingOpt = None,
    replace: Annotated[bool, typer.Option("--replace")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ingest and process transcripts in this process (no broker), with a progress bar."""
    ctx = checked_context(provider=provider, with_provider=True)
    found = transcript_files(paths, show_skipped=not as_json)
    results = ingest_files(
        ctx, found.files, tenant=tenant_slug(ctx, tenant), actor=CLI_ACTOR, fmt=fmt,
        agent_speaker=agent_speaker, replace=replace, encoding=encoding,
    )
    if not as_json:
        # The same warnings `ingest` shows (one speaker, unsure roles...), before the progress bar.
        print_ingest_results(results, stored_lines=False)
    call_ids = [r.call_id for r in results if r.call_id]
    outcomes = process_with_progress(ctx, call_ids, show_progress=not as_json)
    if as_json:
        print_json({
            "files": [r.as_json() for r in results],
            "skipped": [s.as_json() for s in found.skipped],
            # A call already processed is not extracted again (`skipped`): this run counted no claims of it,
            # so its counts are null, never zeros (`postcall show` has the stored ones).
            "calls": [{"call_id": o.call_id, "state": o.state.value, "skipped": o.skipped, "run_id": o.run_id,
                       "claims": None if o.skipped else o.claims, "ungrounded": None if o.skipped else o.ungrounded,
                       "error": o.error} for o in outcomes],
        })
    else:
        by_id = {r.call_id: r for r in results}
        for outcome in outcomes:
            name = by_id[outcome.call_id].external_id
            detail = f" ({safe(outcome.error)})" if outcome.error else ""
            skipped = " (already processed: not extracted again)" if outcome.skipped else ""
            say(f"{outcome.call_id} [bold]{safe(name)}[/bold]: {outcome.state.value}{skipped}{detail}")
        already = sum(1 for o in outcomes if o.skipped)
        failed = sum(1 for o in outcomes if o.error)
        say(ingest_totals(results, len(found.skipped)))
        say(f"{len(outcomes)} call{'s' if len(outcomes) != 1 else ''}: {len(outcomes) - already - failed} extracted, "
            f"{already} already processed, {failed} failed")
    if any(r.error for r in results) or any(o.error for o in outcomes):
        raise typer.Exit(1)

