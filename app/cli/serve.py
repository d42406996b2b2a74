"""`postcall serve`: the review web app and the JSON API."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import refusal_exits
from app.cli.render import fail
from app.config import get_settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (development).")] = False,
    https_only: Annotated[
        bool, typer.Option("--https-only", help="Mark the session cookie Secure (serve behind TLS).")
    ] = False,
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow the built-in development secret key (local use only).")
    ] = False,
) -> None:
    """Serve the review web app and the JSON API (OpenAPI spec at /openapi.json)."""
    import uvicorn

    if get_settings().secret_key_is_unsafe and not dev:
        # Anyone who knows the public default can forge a session cookie and sign in as any user.
        raise fail("POSTCALL_SECRET_KEY is empty, shorter than 16 characters or the development default: set it "
                   "to a long random value "
                   "(python3 -c \"import secrets; print(secrets.token_urlsafe(48))\"), or pass --dev for local use")
    with refusal_exits():
        get_settings().check_redelivery_order()
    if reload:
        # The reloader imports the app afresh in a child process, so it needs the factory's import path.
        uvicorn.run("app.web.app:create_app", factory=True, host=host, port=port, reload=True)
        return
    from app.web.app import create_app

    uvicorn.run(create_app(get_settings(), https_only=https_only), host=host, port=port)
