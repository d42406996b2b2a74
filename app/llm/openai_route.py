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

Sending: when the SDK's HTTP client is one the SDK built (its own, or `openai.DefaultHttpxClient`) and
nothing in it can change the request or where it goes (no auth, event hooks, proxy or mounted transport
for the URL, no HTTP/2, Unix socket or connect retries; an https pool holding its SSL context), the route
sends through its own keep-alive connections (app/llm/keepalive_pool.py) instead of the HTTP client's
request, pool and h11 objects: the request head is the one h11 writes for the HTTP client's own request,
serialized once (per request only when the client's cookie jar has cookies, through the client's own
`build_request`), and the answer comes back as `ChatResponse` when it is a 2xx that the client would
not have changed (no Content-Encoding to decode, no cookie to store). Any other answer is handed to the
HTTP client's own code: decoded, its cookies stored, a redirect followed, a 4xx/5xx raised through the
SDK's status-error mapping, exactly as above. Connection limits, keep-alive expiry and timeouts are
the HTTP client's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
from openai import OpenAI

from app.llm.keepalive_pool import KeepAlivePool, RawResponse, Timeouts

CHAT_COMPLETIONS_PATH = "/chat/completions"
# Headers the HTTP client derives per request from the body, the URL and its cookie jar.
_DERIVED_HEADERS = frozenset({b"content-length", b"host", b"cookie"})
# SDK client attributes that make one request differ from the next when set; each must exist and be None.
_PER_REQUEST_STATE = ("_provider_runtime", "_workload_identity_auth", "_api_key_provider", "_idempotency_header")
_MISSING = object()
# Answer headers that make the HTTP client change what it returns (decoding) or its own state (the jar).
_CLIENT_HANDLED_HEADERS = frozenset({b"content-encoding", b"set-cookie", b"set-cookie2"})
# The HTTP client logs every answer here at INFO; the route logs its own answers the same way.
_http_client_logger = logging.getLogger("httpx2")
DEFAULT_PORTS = {"http": 80, "https": 443}
# What of httpx2's client the route calls to finish an answer as its `send` would.
_HTTP_CLIENT_INTERNALS = ("_merge_headers", "_default_encoding", "_build_redirect_request", "_send_handling_redirects",
                          "_transport_for_url", "_transport")


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A 2xx answer read whole, its body as received (it had no Content-Encoding)."""

    status_code: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


@dataclass(frozen=True)
class DirectChannel:
    """The route's own connections, and its request head around the Content-Length value."""

    pool: KeepAlivePool
    timeouts: Timeouts
    head_before_length: bytes
    head_after_length: bytes

    def payload(self, content: bytes) -> bytes:
        return b"".join((self.head_before_length, str(len(content)).encode(), self.head_after_length, content))


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

    # Set when the route sends through its own connections; None: through `http`.
    direct: DirectChannel | None = None

    def post(self, body: dict[str, Any]) -> Any:
        """Send `body` and return the (read) response, or raise the SDK's error for the failure."""
        # Byte for byte what the SDK's encoder writes for a body of plain JSON values.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        direct = self.direct
        if direct is not None:
            if not self.http.is_closed:
                return self._post_direct(direct, content)
            direct.pool.close()  # the client was closed: so are its connections; `send` raises as it does
        return self._post_through_http_client(content)

    def _build_request(self, content: bytes) -> Any:
        return self.http.build_request("POST", self.url, headers=self.headers, content=content,
                                       extensions=dict(self.extensions))

    def _post_through_http_client(self, content: bytes) -> Any:
        request = self._build_request(content)
        with self._sdk_errors(lambda: request):
            response = self.http.send(request)
        return self._checked(response)

    @contextlib.contextmanager
    def _sdk_errors(self, request_of: Callable[[], Any]) -> Iterator[None]:
        """The HTTP client's timeouts and transport errors raised as the SDK raises them, for the request
        `request_of` gives (built only then, where the request was sent without one)."""
        try:
            yield
        except self.timeout_errors() as exc:
            raise openai.APITimeoutError(request=request_of()) from exc
        except openai.OpenAIError:
            raise
        except self.transport_errors() as exc:
            raise openai.APIConnectionError(request=request_of()) from exc

    def _checked(self, response: Any) -> Any:
        try:
            response.raise_for_status()
        except self.status_errors():
            status_error = self.status_error()
            if status_error is None:  # the client was dropped while one of its requests was out
                raise
            raise status_error(response) from None
        return response

    def _post_direct(self, direct: DirectChannel, content: bytes) -> Any:
        request = None
        with self._sdk_errors(lambda: request or self._build_request(content)):
            if len(self.http.cookies.jar):  # the client adds a Cookie header from its jar: let it build the request
                request = self._build_request(content)
                payload = _serialized_head(request) + content
            else:
                payload = direct.payload(content)
            raw = direct.pool.exchange(payload, direct.timeouts)
        if 200 <= raw.status_code < 300 and not any(name.lower() in _CLIENT_HANDLED_HEADERS for name, _ in raw.headers):
            if _http_client_logger.isEnabledFor(logging.INFO):
                _log_answer(self.url, raw)
            return ChatResponse(status_code=raw.status_code, headers=raw.headers, content=raw.content)
        return self._finish_through_http_client(request or self._build_request(content), raw)

    def _finish_through_http_client(self, request: Any, raw: RawResponse) -> Any:
        """What the HTTP client does with an answer it received (httpx2's `send`), then the SDK's status check."""
        import httpx2

        http = self.http
        response = httpx2.Response(raw.status_code, headers=raw.headers, stream=httpx2.ByteStream(raw.content),
                                   extensions={"http_version": raw.http_version, "reason_phrase": raw.reason},
                                   request=request)
        with self._sdk_errors(lambda: request):
            http.cookies.extract_cookies(response)
            response.default_encoding = http._default_encoding
            if _http_client_logger.isEnabledFor(logging.INFO):
                _log_answer(request.url, raw)
            if http.follow_redirects and response.has_redirect_location:
                redirect = http._build_redirect_request(request, response)
                response.read()
                response = http._send_handling_redirects(redirect, follow_redirects=True, history=[response])
            response.read()  # decodes the body as its Content-Encoding says
        return self._checked(response)


def _serialized_head(request: Any) -> bytes:
    """The request line and headers of `request` as httpcore2 has h11 write them."""
    import h11
    import httpx2

    try:
        head = h11.Connection(our_role=h11.CLIENT).send(
            h11.Request(method=request.method.encode(), target=request.url.raw_path, headers=request.headers.raw)
        )
    except h11.LocalProtocolError as exc:  # as httpcore2 and httpx2 report a header h11 refuses
        raise httpx2.LocalProtocolError(str(exc)) from exc
    assert head is not None
    return head


def _log_answer(url: Any, raw: RawResponse) -> None:
    _http_client_logger.info('HTTP Request: %s %s "%s %d %s"', "POST", url, raw.http_version.decode("ascii"),
                             raw.status_code, raw.reason.decode("ascii", errors="ignore"))


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
    # Raw names: the HTTP client writes each name as it was given ("Accept-Encoding", "authorization").
    headers = type(sample.headers)([(name, value) for name, value in sample.headers.raw
                                    if name.lower() not in _DERIVED_HEADERS])
    return ChatRoute(
        http=http,
        url=sample.url,
        headers=headers,
        extensions=dict(sample.extensions),
        timeout_errors=timeout_exceptions,
        transport_errors=request_exceptions,
        status_errors=status_exceptions,
        status_error=status_error,
        direct=_direct_channel(client, http, sample.url, headers, dict(sample.extensions)),
    )


def _direct_channel(
    client: OpenAI, http: Any, url: Any, headers: Any, extensions: dict[str, Any]
) -> DirectChannel | None:
    """The route's own connections when they would send what `http` sends, where it sends it; else None."""
    try:
        import h11  # noqa: F401  (what httpcore2 writes requests with: the head is serialized by it)
        import httpcore2
        import httpx2
        from httpcore2._backends.sync import SyncBackend
        from openai._base_client import SyncHttpxClientWrapper

        # Only the SDK's own client classes: an application's own client is its business.
        if type(http) not in (SyncHttpxClientWrapper, openai.DefaultHttpxClient):
            return None
        if http.auth is not None or any(http.event_hooks.values()):
            return None
        if not all(hasattr(http, name) for name in _HTTP_CLIENT_INTERNALS):
            return None
        transport = http._transport_for_url(url)  # a proxy (from the environment too) or a mount is another transport
        if transport is not http._transport or type(transport) is not httpx2.HTTPTransport:
            return None
        pool = transport._pool
        if type(pool) is not httpcore2.ConnectionPool or type(pool._network_backend) is not SyncBackend:
            return None
        if not pool._http1 or pool._http2 or pool._uds is not None or pool._retries or pool._proxy is not None:
            return None
        if url.scheme not in DEFAULT_PORTS or (url.scheme == "https" and pool._ssl_context is None):
            return None
        if set(extensions) != {"timeout"}:  # sni_hostname, trace hooks and the like: httpcore2's business
            return None
        timeout = extensions["timeout"]
        # The request as `build_request` makes it for a body of two bytes, less the cookie jar's header.
        sample = httpx2.Request("POST", url, headers=http._merge_headers(headers), content=b"{}",
                                extensions=extensions)
        if any(name.lower() == b"connection" and b"close" in value.lower() for name, value in sample.headers.raw):
            return None
        head = _serialized_head(sample)
        length_lines = [b"\r\n%s: 2\r\n" % name for name, _ in sample.headers.raw if name.lower() == b"content-length"]
        if len(length_lines) != 1 or head.count(length_lines[0]) != 1:
            return None
        before, after = head.split(length_lines[0])
        length_name = length_lines[0][: -len(b"2\r\n")]
        channel = DirectChannel(
            pool=KeepAlivePool(
                scheme=url.scheme,
                host=url.raw_host.decode("ascii"),
                port=url.port or DEFAULT_PORTS[url.scheme],
                ssl_context=pool._ssl_context,
                max_connections=pool._max_connections,
                max_keepalive=pool._max_keepalive_connections,
                keepalive_expiry=pool._keepalive_expiry,
                socket_options=pool._socket_options or (),
                local_address=pool._local_address,
            ),
            timeouts=Timeouts(connect=timeout.get("connect"), read=timeout.get("read"),
                              write=timeout.get("write"), pool=timeout.get("pool")),
            head_before_length=before + length_name,
            head_after_length=b"\r\n" + after,
        )
    except (ImportError, AttributeError, TypeError, KeyError, ValueError):
        return None
    weakref.finalize(channel, channel.pool.close)  # its connections close with the route, whose life is the client's
    return channel
