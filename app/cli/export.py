"""`postcall export`: a tenant's current extraction as CSV, JSON lines or Parquet."""

from __future__ import annotations

import sys
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
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
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
            with output.open("wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
    if output is not None:
        err_console.print(f"wrote {safe(output)}", highlight=False)
