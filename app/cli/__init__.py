"""The `postcall` command. Each command is a thin entry point over the pipeline's services: it owns its
transactions, and prints through `app.cli.render`. One module per command group."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.cli import analysts, batches, calls, demo, export, ingest, ops, privacy, serve, users, webhooks
from app.cli.render import err_console, safe
from app.config import get_settings
from app.errors import ConfigError, PostcallError
from app.logging import configure_logging

app = typer.Typer(
    name="postcall",
    help="Post-call processing: grounded summaries, reasons, outcomes and action items from transcripts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ops.db_app, name="db")
app.add_typer(users.users_app, name="users")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(batches.batches_app, name="batches")
app.command()(serve.serve)
app.command()(privacy.purge)
app.command()(privacy.retention)
app.command()(privacy.remask)
app.add_typer(analysts.analysts_app, name="analysts")
app.command()(export.export)
for command in (ingest.ingest, ingest.process, calls.show, calls.verify, calls.status, ops.worker,
                calls.reconcile, calls.retry, calls.reprocess, ops.health, demo.demo):
    app.command()(command)


def settings_problem(exc: Exception) -> str:
    """What is wrong with the settings, naming each environment variable: pydantic's report without its
    URLs and input echo (which could hold a secret), or the message of a value the logging setup refused."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if not isinstance(exc, ValidationError):
        return f"a setting is invalid: {exc}"
    problems = [f"POSTCALL_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
                for error in exc.errors()]
    return "invalid settings: " + "; ".join(problems)


def main() -> None:
    try:
        configure_logging(get_settings().log_level)
    except (ValidationError, ValueError, ConfigError) as exc:
        # A malformed or misspelled POSTCALL_* setting: one line per bad setting, exit 2, as a bad database URL is.
        err_console.print(f"[red]error:[/red] {safe(settings_problem(exc))}", highlight=False)
        sys.exit(2)
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
