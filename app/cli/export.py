"""`postcall export`: a tenant's current extraction as CSV, JSON lines or Parquet."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import TenantOpt, require_tenant_id, tenant_context, transaction
from app.cli.render import err_console, fail, safe
from app.export import ExportFormat, ExportWindow, export_bytes, parse_instant


def export(
    tenant: TenantOpt = None,
    since: Annotated[str | None, typer.Option("--since", help="Calls started at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Calls started before (ISO 8601).")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = ExportFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", dir_okay=False,
                                  help="Write this file instead of standard output (complete or not at all).")
    ] = None,
    unmasked: Annotated[bool, typer.Option(
        "--unmasked", help="Claim texts and quotes as stored, not masked (card numbers, SSNs, accounts).")] = False,
) -> None:
    """Stream a tenant's current extraction (calls, claims, evidence, review decisions), memory bounded.
    Texts are masked as analysts see them unless --unmasked."""
    ctx, slug = tenant_context(tenant)
    with transaction(ctx) as session:
        window = ExportWindow(parse_instant(since, "--since"), parse_instant(until, "--until"))
        if fmt is ExportFormat.parquet and output is None and sys.stdout.isatty():
            raise fail("Parquet is binary: give --output FILE or redirect standard output")
        chunks = export_bytes(session, require_tenant_id(session, slug), fmt, window, masked=not unmasked)
        if output is None:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        else:
            write_whole(output, chunks)
    if output is not None:
        err_console.print(f"wrote {safe(output)}", highlight=False)


def write_whole(output: Path, chunks: Iterable[bytes]) -> None:
    """`chunks` into the file `output` under a temporary name, renamed into place once all are written: an
    export that fails half-way (the database gone, the disk full) leaves no file that looks complete. The
    file keeps the permissions it had (an unmasked export into a file made private stays private); a new one
    gets the usual ones. A pipe or a device (`-o /dev/stdout`, `-o >(gzip > x)`) is written as it goes."""
    try:
        existing = output.stat()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from exc
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        _write_through(output, chunks)
        return
    target = output.resolve() if output.is_symlink() else output  # a link is written through, not replaced
    partial = target.with_name(f".{target.name}.partial")
    mode = stat.S_IMODE(existing.st_mode) if existing is not None else _new_file_mode()
    try:
        # Private while it is written, whatever the umask; the target's permissions once complete.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.chmod(partial, mode)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _write_through(output: Path, chunks: Iterable[bytes]) -> None:
    try:
        with output.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from exc


def _new_file_mode() -> int:
    """What a new file's permissions would be under this process's umask (read by setting it back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
