"""The FastAPI application: review pages, JSON API, static assets. Build it with `create_app(settings)`.

    uvicorn --factory app.web.app:create_app     # or: postcall serve
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings, get_settings
from app.db.session import create_db_engine, make_session_factory, pool_size_for
from app.db.types import as_utc
from app.errors import (
    DecidedCallError,
    DuplicateCallError,
    IngestError,
    InvalidInputError,
    NotFoundError,
    PostcallError,
)
from app.export import ExportError
from app.handoff.endpoints import EndpointActiveError, RotationInProgressError, WebhookInputError
from app.handoff.feed import CursorError, CursorExpiredError
from app.handoff.outbox import install_delivery_notifier
from app.handoff.urls import WebhookUrlError
from app.review import ReviewConflictError, ReviewInputError
from app.users import (
    AccessDeniedError,
    ActiveUserError,
    InactiveUserError,
    LastAdminError,
    TokenReplacedError,
    UserError,
    UserExistsError,
)
from app.web import analytics, api, handoff_api, ops, pages
from app.web.deps import (
    AuthenticationRequired,
    CsrfError,
    EnqueueCalls,
    LoginRequired,
    UnsupportedBodyError,
    WebState,
    reads_a_body,
    refuse_unstorable_text,
)
from app.web.schemas import ErrorOut
from app.web.view import TEMPLATE_FILTERS

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
# Sync routes run in anyio's worker threads (40 by default), each request on one session and so at most
# one connection: the request slots of the sizing rule (docs/operations.md).
REQUEST_THREADS = 40
TEMPLATES_DIR = WEB_DIR / "templates"


# The answer of `require_json_body`, documented on every operation that reads a JSON body.
JSON_BODY_ONLY = {"model": ErrorOut, "description": "The body was sent under another media type than "
                  "application/json (text/plain, a form): send it with Content-Type: application/json."}


def document_json_bodies(router: APIRouter) -> None:
    """Every operation of a JSON API router that reads a body documents the 415 `require_json_body` answers
    (once: the routers are module-level, the app is built again by every test)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and reads_a_body(route):
            route.responses.setdefault(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, JSON_BODY_ONLY)


def waited_label(since: datetime | None) -> str:
    """How long a call has waited in its state, as a reviewer reads it: "12 min", "3 h", "2 d"."""
    if since is None:
        return "—"
    seconds = max(0.0, (datetime.now(UTC) - as_utc(since)).total_seconds())
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"
STATIC_DIR = WEB_DIR / "static"
SESSION_COOKIE = "postcall_session"
SESSION_MAX_AGE_SECONDS = 12 * 60 * 60  # a working day; then sign in again

# Everything is served from this origin; no inline script or style, no framing.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
NO_STORE = (b"cache-control", b"no-store")
STATIC_PREFIX = "/static/"

# Each domain error type has one HTTP status; nothing is decided by reading messages.
ERROR_STATUS: list[tuple[type[PostcallError], int]] = [
    (AuthenticationRequired, status.HTTP_401_UNAUTHORIZED),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (AccessDeniedError, status.HTTP_403_FORBIDDEN),
    (CsrfError, status.HTTP_403_FORBIDDEN),
    (ReviewConflictError, status.HTTP_409_CONFLICT),
    (DuplicateCallError, status.HTTP_409_CONFLICT),
    (DecidedCallError, status.HTTP_409_CONFLICT),
    (UserExistsError, status.HTTP_409_CONFLICT),
    (InactiveUserError, status.HTTP_409_CONFLICT),
    (ActiveUserError, status.HTTP_409_CONFLICT),
    (LastAdminError, status.HTTP_409_CONFLICT),
    (TokenReplacedError, status.HTTP_409_CONFLICT),
    (RotationInProgressError, status.HTTP_409_CONFLICT),
    (EndpointActiveError, status.HTTP_409_CONFLICT),
    (CursorExpiredError, status.HTTP_410_GONE),
    (api.PayloadTooLargeError, status.HTTP_413_CONTENT_TOO_LARGE),
    (UnsupportedBodyError, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (IngestError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (InvalidInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ReviewInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (UserError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (WebhookUrlError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (WebhookInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (CursorError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ExportError, status.HTTP_422_UNPROCESSABLE_CONTENT),
]
ERROR_TITLES = {401: "Sign in", 403: "Not allowed", 404: "Not found", 409: "Conflict", 410: "Gone",
                413: "Too large", 415: "Unsupported body", 422: "Invalid input"}


class SecurityHeadersMiddleware:
    """Adds the security headers to every response (a plain ASGI middleware: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # Every answer but the static files holds a tenant's data (an unmasked call, a token's record): kept
        # out of browser and proxy caches and the back-button history.
        no_store = not scope.get("path", "").startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *SECURITY_HEADERS]
                if no_store and not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _enqueue_with_celery(call_ids: Sequence[str]) -> int:
    from app.worker.enqueue import enqueue_calls

    return enqueue_calls(call_ids)


def _enqueue_deliveries_with_celery(delivery_ids: Sequence[int]) -> None:
    from app.worker.enqueue import enqueue_deliveries

    enqueue_deliveries(delivery_ids)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def web_db_pool_size(settings: Settings) -> int:
    """Database connections the web app keeps, by the workers' rule: one per request slot, at most
    POSTCALL_DB_POOL_LIMIT (default 20), no overflow (opened once and kept, never closed and reopened
    under load; a request past them waits for one). POSTCALL_DB_POOL_SIZE overrides."""
    return pool_size_for(REQUEST_THREADS, size=settings.db_pool_size, limit=settings.db_pool_limit)


def create_app(
    settings: Settings | None = None,
    *,
    enqueue: EnqueueCalls | None = None,
    https_only: bool | None = None,
) -> FastAPI:
    """Build the app for one database. `enqueue` hands call ids to the workers (Celery by default);
    `https_only` marks the session cookie Secure (set it whenever the app is served over TLS; by default
    POSTCALL_HTTPS_ONLY says, so `uvicorn --factory` and `postcall serve --reload` follow it too)."""
    settings = settings or get_settings()
    if https_only is None:
        https_only = settings.https_only
    insecure_secret = settings.secret_key_is_unsafe
    if insecure_secret:
        logger.warning(
            "POSTCALL_SECRET_KEY is the built-in development default: anyone can forge session cookies. "
            "Set it to a long random value before serving real users."
        )
    engine = create_db_engine(settings.database_url, pool_size=web_db_pool_size(settings), max_overflow=0,
                              pre_ping=True, lock_timeout_seconds=settings.db_lock_timeout_seconds)
    # Review decisions write hand-off events; once committed they go to the workers for delivery. An app
    # built with its own `enqueue` (tests, embedding) leaves them to the workers' sweep instead.
    install_delivery_notifier(_enqueue_deliveries_with_celery if enqueue is None else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="Postcall",
        summary="Review grounded call extractions; hand over transcripts.",
        description=(
            "Every route needs `Authorization: Bearer <token>` (create one with `postcall users add`). "
            "A record the token's user cannot see answers 404, including every other tenant's record; "
            "403 means visible but not allowed for the role."
        ),
        version="1",
        docs_url=None,  # Swagger UI and ReDoc load assets from CDNs; the spec itself is served below
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
        dependencies=[Depends(refuse_unstorable_text)],
    )
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters["waited"] = waited_label
    templates.env.filters.update(TEMPLATE_FILTERS)  # before any template is compiled (a missing one fails it)
    app.state.web = WebState(
        settings=settings,
        session_factory=make_session_factory(engine),
        templates=templates,
        enqueue=enqueue or _enqueue_with_celery,
        insecure_secret=insecure_secret,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_SECONDS,
        same_site="lax",
        https_only=https_only,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(OptionsMiddleware, routes=app.router.routes)
    app.add_middleware(HeadMiddleware)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    for json_api in (api.router, handoff_api.router, analytics.api_router):
        document_json_bodies(json_api)
    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(handoff_api.router)
    app.include_router(pages.router)
    app.include_router(analytics.pages_router)
    app.include_router(analytics.api_router)
    _install_error_handlers(app)
    _document_errors_as_served(app)
    return app


def _document_errors_as_served(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API answers: every error body is `{"detail": "<message>"}`
    (FastAPI's default spec describes 422 as a list of validation errors, which this API never sends), every
    operation may answer 422 (a parameter holding U+0000, an unparsable body), and no query parameter takes an
    empty value (`check_api_query_parameters`: every text one is declared `minLength: 1`)."""

    generate = app.openapi
    documented = False

    def openapi() -> dict[str, Any]:
        nonlocal documented
        if not documented:
            schema = generate()
            error_ref = {"$ref": "#/components/schemas/ErrorOut"}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("in") == "query":
                            _declare_non_empty(parameter.get("schema", {}))
                    operation.setdefault("responses", {})["422"] = {
                        "description": "Invalid input; the detail names the parameter or field and the problem.",
                        "content": {"application/json": {"schema": error_ref}},
                    }
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components.setdefault("ErrorOut", ErrorOut.model_json_schema())
            documented = True
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_non_empty(schema: dict[str, Any]) -> None:
    """`minLength: 1` on `schema`'s text types (an optional parameter's `anyOf` included): the other types
    (numbers, booleans, days, enumerations) have no empty value already."""
    if schema.get("type") == "string" and "format" not in schema and "enum" not in schema:
        schema.setdefault("minLength", 1)
    for alternative in schema.get("anyOf", []):
        _declare_non_empty(alternative)


class HeadMiddleware:
    """HEAD on any path that answers GET: the GET's status and headers without its body (RFC 9110 9.3.2).
    FastAPI routes declared for GET answer HEAD with 405, and a load balancer probing `/healthz` with HEAD
    would take the app for down."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": b""})
                # The headers and the end are sent: the GET stops here rather than produce a body no one
                # reads (a HEAD on /api/export would otherwise run the whole export).
                raise _HeadAnswered
            await send(message)

        with suppress(_HeadAnswered):
            await self.app({**scope, "method": "GET"}, receive, send_without_body)


class _HeadAnswered(Exception):
    """Raised through the GET's response once a HEAD's answer is complete."""


class OptionsMiddleware:
    """OPTIONS on a path that exists answers 204 with `Allow` (the methods it serves), not 405.

    The router answers OPTIONS with 405; that answer is rewritten, listing every route's methods for the path
    (the router's own `Allow` names only the first route that matched)."""

    def __init__(self, app: ASGIApp, routes: Sequence[Any]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        rewritten = False

        async def send_allowed(message: Message) -> None:
            nonlocal rewritten
            if message["type"] == "http.response.start" and message["status"] == status.HTTP_405_METHOD_NOT_ALLOWED:
                rewritten = True
                methods = _methods_serving(scope["path"], self.routes) | {"OPTIONS"}
                if "GET" in methods:
                    methods.add("HEAD")  # HeadMiddleware
                headers = [(name, value) for name, value in message.get("headers", [])
                           if name.lower() not in (b"allow", b"content-length", b"content-type")]
                headers.append((b"allow", ", ".join(sorted(methods)).encode()))
                await send({"type": "http.response.start", "status": status.HTTP_204_NO_CONTENT, "headers": headers})
                return
            if rewritten and message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app(scope, receive, send_allowed)


def _methods_serving(path: str, routes: Sequence[Any]) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        included = getattr(route, "original_router", None)  # an included router keeps its routes there
        if included is not None:
            methods |= _methods_serving(path, included.routes)
        elif getattr(route, "methods", None) and route.path_regex.match(path):
            methods |= set(route.methods)
    return methods


def _install_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> Response:
        code = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 500)
        if code == status.HTTP_500_INTERNAL_SERVER_ERROR:
            logger.error("unmapped domain error on %s", request.url.path, exc_info=exc)
        message = str(exc)
        if _is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
            return JSONResponse({"detail": message}, status_code=code, headers=headers)
        return pages.error_page(request, code, ERROR_TITLES.get(code, "Error"), message, None)

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        target = "/login" if exc.next_path == "/" else "/login?" + urlencode({"next": exc.next_path})
        return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == status.HTTP_400_BAD_REQUEST:
            # FastAPI's answer to a body it cannot decode at all (not UTF-8 JSON): one rule, 422 naming it.
            exc = StarletteHTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                         f"body: could not be parsed ({exc.detail}); send UTF-8 JSON")
        if _is_api(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return pages.error_page(request, exc.status_code, ERROR_TITLES.get(exc.status_code, "Error"),
                                str(exc.detail), None)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        if _is_api(request):
            return JSONResponse({"detail": problems}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
        return pages.error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, "Invalid input", problems, None)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PostcallError, domain_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
