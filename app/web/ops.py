"""Operator endpoints: `/healthz` for load balancers and compose, `/metrics` for Prometheus.

Neither needs a token: they expose counts and up/down flags, never call content or connection
strings (`postcall health` prints the details to an operator with shell access).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from app.health import run_checks
from app.metrics import render_latest
from app.web.deps import WebState

router = APIRouter(include_in_schema=False)


def _state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


@router.get("/healthz")
def healthz(request: Request) -> Response:
    checks = run_checks(_state(request).settings)
    ok = all(check.ok for check in checks)
    return JSONResponse(
        {"ok": ok, "checks": {check.name: check.ok for check in checks}},
        status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    body, content_type = render_latest(_state(request).settings)
    return Response(body, media_type=content_type)
