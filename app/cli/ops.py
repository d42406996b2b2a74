"""Operating commands: `db upgrade`, `worker`, `health`."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import JsonOpt, refusal_exits
from app.cli.render import print_json, safe, say
from app.config import get_settings
from app.logging import configure_logging

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Create or migrate the database schema (POSTCALL_DATABASE_URL)."""
    from app.db.migrate import checked_upgrade

    settings = get_settings()
    with refusal_exits():
        checked_upgrade(settings.database_url, revision)
    say(f"database at revision {safe(revision)}: {safe(safe_url(settings.database_url))}")


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=10_000,
                                   help="Parallel tasks (default POSTCALL_WORKER_CONCURRENCY, else the sizing rule).")
    ] = None,
    pool: Annotated[str | None, typer.Option(help="threads | prefork | solo | gevent")] = None,
    loglevel: Annotated[str, typer.Option()] = "INFO",
    beat: Annotated[bool, typer.Option("--beat", help="Also run the reconciler schedule in this worker.")] = False,
) -> None:
    """Run a Celery worker consuming the postcall queue, sized by the rule in docs/operations.md. Refuses
    to start (exit 2) on a database without the current schema: started anyway it took every message from
    the queue and failed each one, leaving the calls to the reconciler."""
    from app.db.migrate import require_current_schema
    from app.db.session import get_engine
    from app.worker.sizing import prepare_worker

    with refusal_exits():
        require_current_schema(get_settings().database_url)
    configure_logging(loglevel)  # after the refusal: a refused start leaves no handler on the terminal's stream
    with refusal_exits():
        sizing = prepare_worker(concurrency, pool)
    get_engine(get_settings().database_url).dispose()  # the check's connection: not one to fork
    from app.worker.celery_app import celery_app, run_worker
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
    code = run_worker(celery_app, argv)
    if code:  # stopped on an error (logged by Celery): a supervisor sees a failure and restarts it
        raise typer.Exit(code)


def health(as_json: JsonOpt = False) -> None:
    """Check the database, the broker and the provider configuration; exit 1 when one is down."""
    from app.health import run_checks

    checks = run_checks(get_settings())
    if as_json:
        print_json({"ok": all(c.ok for c in checks), "checks": [c.as_json() for c in checks]})
    else:
        for check in checks:
            mark = "[green]ok[/green]" if check.ok else "[red]FAIL[/red]"
            say(f"{mark}  {check.name}: {safe(check.detail)}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
