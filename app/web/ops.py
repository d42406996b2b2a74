"""Operator endpoints: `/healthz` for load balancers and compose, `/metrics` for Prometheus.

They expose counts and up/down flags, never call content or connection strings (`postcall health`
prints the details to an operator with shell access). `/healthz` is always open (load balancers and
compose probe it); `/metrics` asks for a bearer token when `POSTCALL_METRICS_TOKEN` is set, because its
counts span every tenant.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from app.health import run_checks
from app.metrics import render_latest
from app.web.deps import web_state

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz(request: Request) -> Response:
    checks = run_checks(web_state(request).settings)
    ok = all(check.ok for check in checks)
    return JSONResponse(
        {"ok": ok, "checks": {check.name: check.ok for check in checks}},
        status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    settings = web_state(request).settings
    if settings.metrics_token and not _bearer_matches(request, settings.metrics_token.get_secret_value()):
        return Response(
            "metrics need Authorization: Bearer <POSTCALL_METRICS_TOKEN>\n",
            status_code=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            media_type="text/plain",
        )
    body, content_type = render_latest(settings)
    return Response(body, media_type=content_type)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    # Constant-time comparison: the answer must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())
