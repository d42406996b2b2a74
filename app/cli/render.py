"""The one place the command line prints: consoles, escaping of data, tables, JSON, grounding status
and a call's extraction. Every value that may come from a transcript, a user or an error message goes
through `safe` (or a table cell, which applies it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.grounding import spoken_words
from app.schemas.api import CallDetailOut
from app.text.normalize import INVISIBLE_CHARACTERS

console = Console()
err_console = Console(stderr=True)

# Control characters (ANSI escape sequences start with ESC), the bidirectional overrides that reorder what
# a terminal shows, and characters that show nothing (a zero-width space inside "n\u200bot" prints as
# "not"): data never drives the terminal or hides in it, it is shown as `\x1b`, `\u202e`, `\u200b`.
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{INVISIBLE_CHARACTERS}]")
_LINE_BREAKS = re.compile(r"[\t\n\r]+")


def _visible_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: object) -> str:
    """Data (transcript text, ids, names, error messages quoting them) made safe to print through Rich:
    markup is escaped (`[/red]` prints as is) and control characters are shown, never sent."""
    text = _LINE_BREAKS.sub(" ", str(value))
    return escape(_CONTROL.sub(_visible_escape, text))


class Markup(str):
    """A table cell written by the command itself (styles, line breaks): printed as Rich markup."""


def progress(*, show: bool) -> Progress:
    """A progress bar on standard error (label, bar, done/total, elapsed) that clears itself when done."""
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, disable=not show, transient=True,
    )


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error and give the exit to raise (2: bad input or setup)."""
    err_console.print(f"[red]error:[/red] {safe(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def say(message: str) -> None:
    """One line of the command's own words (with markup); data inside it must already be `safe`."""
    console.print(message, highlight=False)


def warn(message: str) -> None:
    err_console.print(f"  [yellow]warning:[/yellow] {safe(message)}", highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    # Plain print: JSON is for programs, no wrapping or markup may alter it.
    print(json.dumps(document))


def print_secret(label: str, secret: str) -> None:
    """A token, password or signing secret shown this once, on a line of its own, unaltered."""
    say(label)
    print(secret)


def cell(value: object) -> str:
    if isinstance(value, Markup):
        return value
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return safe(value)


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None,
    min_widths: Sequence[int] | None = None,
) -> None:
    """A table of data: every cell is escaped (None shows as "—", booleans as yes/no) unless it is
    `Markup`. With `min_widths`, columns fold rather than cut: ids are copied from them."""
    table = Table(title=title)
    for i, column in enumerate(columns):
        if min_widths is None:
            table.add_column(column)
        else:
            table.add_column(column, overflow="fold", min_width=min_widths[i])
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    console.print(table)


STATUS_STYLE = {
    "grounded": "green",
    "ungrounded": "bold red",
    "exact": "green",
    "normalized": "green",
    "fuzzy": "yellow",
    "relocated": "yellow",
}


def status_markup(label: str, reason: str | None = None) -> str:
    style = STATUS_STYLE.get(label, "white")
    suffix = f": {reason}" if reason else ""
    return f"[{style}]{safe(label + suffix)}[/{style}]"


def render_call(detail: CallDetailOut, *, with_note: bool = False) -> None:
    console.rule(f"[bold]{safe(detail.external_id)}[/bold]  {detail.call_id}  [dim]{detail.state}[/dim]")
    if detail.error:
        say(f"[red]error:[/red] {safe(detail.error)}")
    if detail.run:
        run = detail.run
        say(
            f"[dim]{safe(run.provider)}/{safe(run.model)} prompt {safe(run.prompt_version)} · {run.llm_calls} LLM "
            "calls · "
            f"{run.prompt_tokens}+{run.completion_tokens} tokens · ${run.cost_usd:.4f} · "
            f"{(run.total_ms or 0):.0f} ms[/dim]"
        )
    if with_note and detail.claims:
        from app.pipeline.note import case_note, stated_as_fact

        note = case_note([c for c in detail.claims if stated_as_fact(c.status, c.review_status)])
        say(f"\n[bold]Case note[/bold] [dim](verified items only)[/dim]\n  {escape(note)}")
    utterances = {u.index: u for u in detail.utterances}
    texts = {index: u.text for index, u in utterances.items()}
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
            say(f"  • {flag}{safe(claim.text)}{extra}  {status_markup(claim.status, claim.reason)}")
            for ev in claim.evidence:
                where = ev.utterance if ev.utterance is not None else ev.cited_utterance
                speaker = utterances[where].role if where in utterances else "?"
                said = ev.quote if ev.status == "ungrounded" else spoken_words(ev, texts)  # where it is not found
                quoted = ""
                if ev.status == "fuzzy" and said != ev.quote:  # the transcript's words, and the model's
                    quoted = f" [dim](quoted as “{safe(ev.quote)}”)[/dim]"
                say(
                    f"      [dim]{safe(f'[{where}]')} {safe(speaker)}:[/dim] “{safe(said)}”{quoted}  "
                    f"{status_markup(ev.status, ev.reason)}"
                )
    if not detail.claims and not detail.error:
        # A run that succeeded with nothing in it is the model's empty answer, not work still to come.
        succeeded = detail.run is not None and detail.run.status == "succeeded"
        console.print("  (the model returned no statements)" if succeeded else "  (no extraction yet)")
    console.print()
