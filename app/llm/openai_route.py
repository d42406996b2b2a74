"""The chat-completions POST, assembled by the SDK once per client instead of once per request.

`client.post("/chat/completions", ...)` rebuilds the same request around every body: it copies the
request options twice, merges and validates the headers (auth, organization, project, the SDK's own),
joins the path to the base URL and works out the timeout, before its HTTP client sends the result.
That assembly was about 0.25 ms of CPU per request, more than the HTTP client's own work.

For a client whose request cannot differ from one call to the next, `chat_route` has the SDK build
that request once (`_build_request`, the method `post` itself uses) and keeps its URL, headers and
timeout; each call then only adds its body, and the SDK's HTTP client (the same connection pool,
limits, proxies and cookie jar) builds and sends it. Failures are raised as the SDK raises them: its
own status-error mapping for 4xx/5xx, `APITimeoutError` and `APIConnectionError` for the HTTP client's
timeouts and transport errors; so `translate_api_error` sorts them, and reads Retry-After, exactly as
before. The request is the same on the wire (tests/llm/test_openai_route.py compares the two).

A client is eligible only when the SDK would send the same request every time: no SDK retries (their
backoff and the retry-count header live in `post`), a fixed API key (not a callable refreshed per
request), and no workload identity, provider runtime, custom auth or idempotency header. Every other
client, and any SDK whose internals differ from what is read here, goes through `client.post`.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from openai import OpenAI

CHAT_COMPLETIONS_PATH = "/chat/completions"
# Headers the HTTP client derives per request from the body, the URL and its cookie jar.
_DERIVED_HEADERS = frozenset({"content-length", "host", "cookie"})
# SDK client attributes that make one request differ from the next when set; each must exist and be None.
_PER_REQUEST_STATE = ("_provider_runtime", "_workload_identity_auth", "_api_key_provider", "_idempotency_header")
_MISSING = object()


@dataclass(frozen=True)
class ChatRoute:
    """What the SDK sends with every chat-completions request of one client, less the body."""

    http: Any  # the SDK's HTTP client (httpx2, or a legacy httpx client handed to the SDK)
    # Kept as that library's URL and Headers (never changed after this): building a request from them
    # skips parsing the URL and encoding the headers again, a third of `build_request`.
    url: Any
    headers: Any
    extensions: dict[str, Any]  # the timeout, as the SDK normalized it for `http`
    # The SDK's own lists of its HTTP libraries' exceptions, read (as the SDK reads them) only on a failure.
    timeout_errors: Callable[[], tuple[type[BaseException], ...]]
    transport_errors: Callable[[], tuple[type[BaseException], ...]]
    status_errors: Callable[[], tuple[type[BaseException], ...]]
    # The SDK's status-error mapping, bound to the client weakly: the route must not keep its client alive.
    status_error: weakref.WeakMethod[Any]  # -> (response) -> openai.APIStatusError

    def post(self, body: dict[str, Any]) -> Any:
        """Send `body` and return the (read) response, or raise the SDK's error for the failure."""
        # Byte for byte what the SDK's encoder writes for a body of plain JSON values.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        request = self.http.build_request("POST", self.url, headers=self.headers, content=content,
                                          extensions=dict(self.extensions))
        try:
            response = self.http.send(request)
        except self.timeout_errors() as exc:
            raise openai.APITimeoutError(request=request) from exc
        except openai.OpenAIError:
            raise
        except self.transport_errors() as exc:
            raise openai.APIConnectionError(request=request) from exc
        try:
            response.raise_for_status()
        except self.status_errors():
            status_error = self.status_error()
            if status_error is None:  # the client was dropped while one of its requests was out
                raise
            raise status_error(response) from None
        return response


_routes: weakref.WeakKeyDictionary[OpenAI, ChatRoute | None] = weakref.WeakKeyDictionary()
_routes_lock = threading.Lock()


def chat_route(client: OpenAI) -> ChatRoute | None:
    """The route for `client`, built on first use; None when the client must go through `client.post`."""
    try:
        return _routes[client]
    except KeyError:
        pass
    with _routes_lock:
        if client not in _routes:
            _routes[client] = _build_route(client)
        return _routes[client]


def _build_route(client: OpenAI) -> ChatRoute | None:
    if client.max_retries != 0:
        return None
    if any(getattr(client, name, _MISSING) is not None for name in _PER_REQUEST_STATE):
        return None
    try:
        from openai._httpx2 import request_exceptions, status_exceptions, timeout_exceptions
        from openai._models import FinalRequestOptions

        # What `post` -> `request` do before sending, for an empty body.
        options = client._prepare_options(
            FinalRequestOptions.construct(method="post", url=CHAT_COMPLETIONS_PATH, json_data={})
        )
        if client._custom_auth(options.security) is not None or options.follow_redirects is not None:
            return None
        sample = client._build_request(options, retries_taken=0)
        client._prepare_request(sample)
        status_error = weakref.WeakMethod(client._make_status_error_from_response)
        http = client._client
    except (ImportError, AttributeError, TypeError):
        return None  # an SDK whose internals moved: its own `post` is the only safe way
    return ChatRoute(
        http=http,
        url=sample.url,
        headers=type(sample.headers)([(name, value) for name, value in sample.headers.multi_items()
                                      if name.lower() not in _DERIVED_HEADERS]),
        extensions=dict(sample.extensions),
        timeout_errors=timeout_exceptions,
        transport_errors=request_exceptions,
        status_errors=status_exceptions,
        status_error=status_error,
    )
