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


# What the web app cannot serve without: the database. A broker or provider outage delays calls but
# leaves review, the API and the hand-off feed working (a submitted call is stored and waits), so it is
# reported, not made a reason to take the app out of a load balancer's rotation.
SERVING_CHECKS = frozenset({"database"})


@router.get("/healthz")
def healthz(request: Request) -> Response:
    """Whether this web app can serve (503 only when the database is down), with every part's state."""
    checks = run_checks(web_state(request).settings)
    serving = all(check.ok for check in checks if check.name in SERVING_CHECKS)
    return JSONResponse(
        {"ok": all(check.ok for check in checks), "serving": serving,
         "checks": {check.name: check.ok for check in checks}},
        status_code=status.HTTP_200_OK if serving else status.HTTP_503_SERVICE_UNAVAILABLE,
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
