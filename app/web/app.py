"""The FastAPI application: review pages, JSON API, static assets. Build it with `create_app(settings)`.

    uvicorn --factory app.web.app:create_app     # or: postcall serve
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings, get_settings
from app.db.session import create_db_engine, make_session_factory
from app.errors import DuplicateCallError, IngestError, NotFoundError, PostcallError
from app.export import ExportError
from app.review import ReviewConflictError, ReviewInputError
from app.users import AccessDeniedError, UserError, UserExistsError
from app.web import analytics, api, ops, pages
from app.web.deps import AuthenticationRequired, CsrfError, EnqueueCalls, LoginRequired, WebState

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
SESSION_COOKIE = "postcall_session"
SESSION_MAX_AGE_SECONDS = 12 * 60 * 60  # a working day; then sign in again
DEFAULT_SECRET_KEY = Settings.model_fields["secret_key"].default

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

# Each domain error type has one HTTP status; nothing is decided by reading messages.
ERROR_STATUS: list[tuple[type[PostcallError], int]] = [
    (AuthenticationRequired, status.HTTP_401_UNAUTHORIZED),
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (AccessDeniedError, status.HTTP_403_FORBIDDEN),
    (CsrfError, status.HTTP_403_FORBIDDEN),
    (ReviewConflictError, status.HTTP_409_CONFLICT),
    (DuplicateCallError, status.HTTP_409_CONFLICT),
    (UserExistsError, status.HTTP_409_CONFLICT),
    (api.PayloadTooLargeError, status.HTTP_413_CONTENT_TOO_LARGE),
    (IngestError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ReviewInputError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (UserError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (ExportError, status.HTTP_422_UNPROCESSABLE_CONTENT),
]
ERROR_TITLES = {401: "Sign in", 403: "Not allowed", 404: "Not found", 409: "Conflict", 413: "Too large",
                422: "Invalid input"}


class SecurityHeadersMiddleware:
    """Adds the security headers to every response (a plain ASGI middleware: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _enqueue_with_celery(call_ids: Sequence[str]) -> int:
    from app.worker.enqueue import enqueue_calls

    return enqueue_calls(call_ids)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def create_app(
    settings: Settings | None = None,
    *,
    enqueue: EnqueueCalls | None = None,
    https_only: bool = False,
) -> FastAPI:
    """Build the app for one database. `enqueue` hands call ids to the workers (Celery by default);
    `https_only` marks the session cookie Secure (set it whenever the app is served over TLS)."""
    settings = settings or get_settings()
    insecure_secret = settings.secret_key == DEFAULT_SECRET_KEY
    if insecure_secret:
        logger.warning(
            "POSTCALL_SECRET_KEY is the built-in development default: anyone can forge session cookies. "
            "Set it to a long random value before serving real users."
        )
    engine = create_db_engine(settings.database_url)

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
    )
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    app.state.web = WebState(
        settings=settings,
        session_factory=make_session_factory(engine),
        templates=templates,
        enqueue=enqueue or _enqueue_with_celery,
        insecure_secret=insecure_secret,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_SECONDS,
        same_site="lax",
        https_only=https_only,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(analytics.pages_router)
    app.include_router(analytics.api_router)
    _install_error_handlers(app)
    return app


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
