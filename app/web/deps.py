"""Request-scoped dependencies: the database session, the signed-in user, CSRF.

Two ways in, never mixed:
- the JSON API takes `Authorization: Bearer <token>` on every request and nothing else, so a browser's
  ambient cookie can never drive it (no CSRF exposure on /api);
- the review pages take the signed, HttpOnly session cookie set at sign-in, and every form they post
  carries the session's CSRF token in a hidden field.
"""

from __future__ import annotations

import secrets
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Form, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import NUL_CHARACTER_PROBLEM, InvalidInputError, PostcallError
from app.text.storable import INVALID_UTF8_PROBLEM
from app.users import Principal, TokenExpiredError, load_principal, token_principal

SESSION_USER_KEY = "uid"
SESSION_FINGERPRINT_KEY = "fp"
SESSION_CSRF_KEY = "csrf"
SESSION_FLASH_KEY = "flash"
CSRF_TOKEN_BYTES = 32
CSRF_FIELD = "csrf_token"

EnqueueCalls = Callable[[Sequence[str]], int]


@dataclass(frozen=True)
class WebState:
    """What the app factory builds once and every request shares."""

    settings: Settings
    session_factory: sessionmaker[Session]
    templates: Jinja2Templates
    enqueue: EnqueueCalls
    insecure_secret: bool


class AuthenticationRequired(PostcallError):
    """No valid API token (401): missing, unknown, a deactivated user's, or expired (each says which; only
    the holder of an expired token can present it, so saying so tells nobody else anything)."""


class LoginRequired(PostcallError):
    """No valid browser session; `next_path` is where to return after signing in."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class CsrfError(PostcallError):
    """A form arrived without the session's CSRF token (403)."""


def refuse_unstorable_text(request: Request) -> None:
    """Every route: a path or query parameter holding U+0000, or percent-encoded bytes that are not UTF-8,
    is 422 naming it. Starlette decodes such bytes to U+FFFD, so `?external_id=%FF` and `?external_id=%FE`
    would otherwise both be stored as "\ufffd" and collide as one call."""
    if "\x00" in request.url.path:
        raise InvalidInputError(f"the path {NUL_CHARACTER_PROBLEM}")
    raw_path: bytes = request.scope.get("raw_path") or b""
    if b"%" in raw_path and not _utf8(raw_path):
        raise InvalidInputError(f"the path {INVALID_UTF8_PROBLEM}")
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise InvalidInputError(f"query parameter {name.replace(chr(0), '?')!r} {NUL_CHARACTER_PROBLEM}")
    raw_query: bytes = request.scope.get("query_string") or b""
    if b"%" in raw_query:
        for pair in raw_query.split(b"&"):
            raw_name, _, raw_value = pair.partition(b"=")
            if not (_utf8(raw_name) and _utf8(raw_value)):
                shown = unquote_to_bytes(raw_name).decode("utf-8", "replace")
                raise InvalidInputError(f"query parameter {shown!r} {INVALID_UTF8_PROBLEM}")


def _utf8(encoded: bytes) -> bool:
    """Whether percent-encoded `encoded` decodes to UTF-8 text."""
    try:
        unquote_to_bytes(encoded.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def db_session(request: Request) -> Iterator[Session]:
    """A session per request. Writers commit explicitly; whatever is left uncommitted is rolled back."""
    session = web_state(request).session_factory()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(db_session)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="An API token from `postcall users add` (or POST /api/users), sent as `Authorization: Bearer <token>`.",
)


def api_principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)], db: DbSession
) -> Principal:
    if credentials is None:
        raise AuthenticationRequired("missing bearer token")
    try:
        principal = token_principal(db, credentials.credentials)
    except TokenExpiredError as expired:
        raise AuthenticationRequired(str(expired)) from expired
    if principal is None:
        raise AuthenticationRequired("invalid or deactivated token")
    return principal


ApiUser = Annotated[Principal, Depends(api_principal)]
# The bearer token a request came with, for a route that acts on that token itself (its rotation).
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def _return_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def page_principal(request: Request, db: DbSession) -> Principal:
    user_id = request.session.get(SESSION_USER_KEY)
    fingerprint = request.session.get(SESSION_FINGERPRINT_KEY)
    if not isinstance(user_id, int) or not isinstance(fingerprint, str):
        raise LoginRequired(_return_path(request) if request.method == "GET" else "/")
    principal = load_principal(db, user_id, fingerprint)
    if principal is None:
        # Deactivated, deleted, given a new token or its token expired since signing in: the session ends here.
        request.session.clear()
        raise LoginRequired(_return_path(request) if request.method == "GET" else "/")
    return principal


PageUser = Annotated[Principal, Depends(page_principal)]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the sign-in form needs one before any login)."""
    token = request.session.get(SESSION_CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(CSRF_TOKEN_BYTES)
        request.session[SESSION_CSRF_KEY] = token
    return token


def verify_csrf(request: Request, csrf_token: Annotated[str, Form()] = "") -> None:
    expected = request.session.get(SESSION_CSRF_KEY)
    if not isinstance(expected, str) or not expected or not secrets.compare_digest(expected, csrf_token):
        raise CsrfError("the form is missing its security token or it expired; reload the page and try again")


CsrfChecked = Depends(verify_csrf)


def flash(request: Request, level: str, message: str) -> None:
    """A one-shot message shown on the next page (after a post-redirect-get)."""
    request.session[SESSION_FLASH_KEY] = {"level": level, "message": message}


def pop_flash(request: Request) -> dict[str, str] | None:
    value = request.session.pop(SESSION_FLASH_KEY, None)
    return value if isinstance(value, dict) else None


# Why an empty query value is refused, in the message naming it.
EMPTY_QUERY_VALUE_PROBLEM = "is empty: give a value or leave the parameter out"


def check_api_query_parameters(request: Request) -> None:
    """422 for a query parameter the route does not take, one taking a single value given twice, or one given
    with an empty value. The API's lists served everything for a misspelt filter (`GET /api/calls?status=approved`
    listed unreviewed calls; `endpoint_id=` on the deliveries listed every endpoint's), so an integration acted
    on what it never asked for. Added to the JSON API's routers only: the review pages' filter forms submit
    their blank fields as empty values, which mean "no filter" there."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    # Walked per request (a handful of dependants): routes are not hashable, and an id may be reused by another app.
    declared = _query_parameters(route)
    unknown = sorted(set(request.query_params) - set(declared))
    if unknown:
        taken = ", ".join(sorted(declared)) or "none"
        raise InvalidInputError(f"unknown query parameter(s) {', '.join(unknown)[:200]}: "
                                f"{request.method} {route.path} takes {taken}")
    # A parameter given twice that takes one value: the last one silently won (`after=1&after=2`).
    repeated = sorted(name for name in set(request.query_params)
                      if not declared[name] and len(request.query_params.getlist(name)) > 1)
    if repeated:
        raise InvalidInputError(f"query parameter(s) {', '.join(repeated)[:200]} given more than once; each takes "
                                "one value")
    # An empty value read as the parameter's absence for a text one (`?agent=` listed every agent's calls) and as
    # a type error for the others (`?limit=`): one rule for all, naming the first empty one.
    empty = next((name for name, value in request.query_params.multi_items() if not value), None)
    if empty is not None:
        raise InvalidInputError(f"query parameter {empty!r} {EMPTY_QUERY_VALUE_PROBLEM}")


def _dependants(route: APIRoute) -> Iterator[Dependant]:
    """`route`'s dependant and every dependency's, nested ones included."""
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        yield dependant
        pending.extend(dependant.dependencies)


def _query_parameters(route: APIRoute) -> dict[str, bool]:
    """The query parameters `route` declares, its dependencies' included (each by the name a client sends), and
    whether each takes several values (a list: repeated in the query)."""
    return {field.alias: _takes_several(field.field_info.annotation)
            for dependant in _dependants(route) for field in dependant.query_params}


def _takes_several(annotation: Any) -> bool:
    """Whether a query parameter's type is a sequence (`list[CallState] | None` included)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_takes_several(argument) for argument in typing.get_args(annotation)) if origin is not None else False


class UnsupportedBodyError(PostcallError):
    """The request body is not what the route reads: a transcript upload compressed or sent as a form, or a
    JSON route's body sent under another media type (415)."""


async def require_json_body(request: Request) -> None:
    """415 for a body a JSON route would read sent under another media type (`text/plain`, curl's default
    form type): FastAPI answered 422 "Input should be a valid dictionary", which says nothing of the header
    to fix; a body with no Content-Type at all is the same. A request without a body is left to the validation
    (it names the fields missing). And 422 for a body sent to a route that reads none: `{"skip_backlog": true}`
    posted to enable was ignored and the backlog queued, the opposite of what was asked (its options are query
    parameters). Added to the JSON API's routers."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    if not reads_a_body(route):
        if "requestBody" in (route.openapi_extra or {}):
            return  # the route reads its raw body itself (a transcript upload)
        if (await request.body()).strip() not in (b"", b"{}", b"null"):
            taken = ", ".join(sorted(_query_parameters(route))) or "none"
            raise InvalidInputError(f"{request.method} {route.path} takes no body (its options are query "
                                    f"parameters: {taken}); nothing was done")
        return
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    if not media and request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return
    raise UnsupportedBodyError(f"this route reads a JSON body: send it with Content-Type: application/json "
                               f"(this request's is {media[:100] or 'missing'})")


def reads_a_body(route: APIRoute) -> bool:
    """Whether `route` (or one of its dependencies) reads a request body."""
    return any(dependant.body_params for dependant in _dependants(route))
