"""`postcall serve`: the review web app and the JSON API."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli.common import refusal_exits
from app.cli.render import fail, warn
from app.config import get_settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    reload: Annotated[bool, typer.Option("--reload", help="Restart on code changes (development).")] = False,
    https_only: Annotated[
        bool | None,
        typer.Option("--https-only/--no-https-only",
                     help="Mark the session cookie Secure (serve behind TLS). Default: POSTCALL_HTTPS_ONLY."),
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow the built-in development secret key (local use only).")
    ] = False,
) -> None:
    """Serve the review web app and the JSON API (OpenAPI spec at /openapi.json)."""
    import uvicorn

    from app.web.exposure import exposure_warnings  # app.web loads FastAPI: only when serving

    settings = get_settings()
    if settings.secret_key_is_unsafe and not dev:
        # Anyone who knows the public default can forge a session cookie and sign in as any user.
        raise fail("POSTCALL_SECRET_KEY is empty, shorter than 16 characters or the development default: set it "
                   "to a long random value "
                   "(python3 -c \"import secrets; print(secrets.token_urlsafe(48))\"), or pass --dev for local use")
    with refusal_exits():
        settings.check_redelivery_order()
    secure_cookie = settings.https_only if https_only is None else https_only
    for warning in exposure_warnings(settings, host=host, https_only=secure_cookie):
        warn(warning)
    if reload:
        if https_only is not None:
            # The reloader builds the app afresh in a child process, which reads the setting, not this flag.
            os.environ["POSTCALL_HTTPS_ONLY"] = "true" if https_only else "false"
        uvicorn.run("app.web.app:create_app", factory=True, host=host, port=port, reload=True)
        return
    from app.web.app import create_app

    uvicorn.run(create_app(settings, https_only=secure_cookie), host=host, port=port)
