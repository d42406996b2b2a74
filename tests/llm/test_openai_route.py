"""The chat-completions route sends what the SDK's `post` sends and fails as it fails, on a real local server."""

from __future__ import annotations

import gc
import json
import ssl
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai import OpenAI

from app.config import Settings
from app.llm.keepalive_pool import Timeouts
from app.llm.openai_provider import keepalive_connections, shared_client, translate_api_error
from app.llm.openai_route import CHAT_COMPLETIONS_PATH, ChatResponse, ChatRoute, DirectChannel, chat_route
from tests.llm.raw_http_server import (
    COMPLETION,
    Answer,
    Hangup,
    RawHTTPServer,
    Silence,
    answer,
    chunked,
    gzipped,
)
from tests.support.fake_openai import (
    FAKE_API_KEY,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    completion_reply,
    error_reply,
    unused_port,
)

BODY: dict[str, Any] = {
    "model": "fake-model",
    "messages": [{"role": "system", "content": "Extract."},
                 {"role": "user", "content": "[0] agent (Agent): Caf\u00e9 \u2014 \u201cquoted\u201d, <tag> & 1.5e3"}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {}}},
    "max_completion_tokens": 100,
}


def make_client(base_url: str, **options: Any) -> OpenAI:
    settings: dict[str, Any] = {"api_key": FAKE_API_KEY, "max_retries": 0, "timeout": 5.0, **options}
    return OpenAI(base_url=base_url, **settings)


def route_of(client: OpenAI) -> ChatRoute:
    route = chat_route(client)
    assert route is not None
    return route


def sdk_post(client: OpenAI) -> Any:
    return client.post(CHAT_COMPLETIONS_PATH, body=BODY, cast_to=httpx.Response)


def last_two(fake: FakeOpenAIServer) -> tuple[RecordedRequest, RecordedRequest]:
    assert len(fake.requests) >= 2
    return fake.requests[-2], fake.requests[-1]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"organization": "org-7", "project": "proj-9", "default_headers": {"X-Team": "ops"}},
        {"default_query": {"api-version": "2024-10-21"}, "timeout": 12.5},
    ],
    ids=["plain", "organization-project-headers", "query-and-timeout"],
)
def test_the_route_sends_the_request_the_sdk_sends(fake_openai: FakeOpenAIServer, options: dict[str, Any]) -> None:
    client = make_client(fake_openai.base_url, **options)
    fake_openai.enqueue(completion_reply("{}"), completion_reply("{}"))

    by_sdk = sdk_post(client)
    by_route = route_of(client).post(BODY)

    sdk_request, route_request = last_two(fake_openai)
    assert route_request.path == sdk_request.path
    assert route_request.headers == sdk_request.headers
    assert route_request.raw == sdk_request.raw
    assert json.loads(route_request.raw) == BODY
    assert by_route.status_code == by_sdk.status_code == 200
    assert by_route.content == by_sdk.content
    if "organization" in options:
        assert route_request.headers["openai-organization"] == "org-7"
        assert route_request.headers["openai-project"] == "proj-9"
        assert route_request.headers["x-team"] == "ops"
    if "default_query" in options:
        assert route_request.path.endswith("/chat/completions?api-version=2024-10-21")
        assert route_request.headers["x-stainless-read-timeout"] == "12.5"


def test_cookies_the_server_set_are_sent_back_on_both_paths(fake_openai: FakeOpenAIServer) -> None:
    client = make_client(fake_openai.base_url)
    fake_openai.enqueue(
        ScriptedReply(body=b"{}", headers={"set-cookie": "__cf_bm=abc123; Path=/"}),
        completion_reply("{}"),
        completion_reply("{}"),
    )

    route_of(client).post(BODY)
    sdk_post(client)
    route_of(client).post(BODY)

    sdk_request, route_request = last_two(fake_openai)
    assert sdk_request.headers.get("cookie") == "__cf_bm=abc123"
    assert route_request.headers == sdk_request.headers


ERRORS = [
    error_reply(429, "Rate limit reached", code="rate_limit_exceeded", headers={"Retry-After": "7"}),
    error_reply(429, "You exceeded your current quota", code="insufficient_quota"),
    error_reply(500, "boom", error_type="server_error", headers={"retry-after-ms": "1500"}),
    error_reply(503, "overloaded"),
    error_reply(400, "too long", code="context_length_exceeded"),
    error_reply(401, "Incorrect API key provided", code="invalid_api_key"),
    error_reply(403, "no access"),
    error_reply(404, "The model does not exist", code="model_not_found"),
    error_reply(409, "conflict"),
    ScriptedReply(status=502, body=b"<html>Bad gateway</html>", content_type="text/html"),
]


@pytest.mark.parametrize("reply", ERRORS, ids=lambda reply: str(reply.status))
def test_status_errors_are_the_sdks_errors(fake_openai: FakeOpenAIServer, reply: ScriptedReply) -> None:
    client = make_client(fake_openai.base_url)
    fake_openai.enqueue(reply, reply)

    with pytest.raises(openai.APIStatusError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APIStatusError) as by_route:
        route_of(client).post(BODY)

    sdk_error, route_error = by_sdk.value, by_route.value
    assert type(route_error) is type(sdk_error)
    assert route_error.status_code == sdk_error.status_code == reply.status
    assert route_error.message == sdk_error.message
    assert route_error.body == sdk_error.body
    assert route_error.code == sdk_error.code
    assert dict(route_error.response.headers) | {"date": ""} == dict(sdk_error.response.headers) | {"date": ""}
    assert route_error.__cause__ is None and route_error.__suppress_context__


def test_a_timeout_is_the_sdks_timeout_error(fake_openai: FakeOpenAIServer) -> None:
    client = make_client(fake_openai.base_url, timeout=0.2)
    # Answers that come long after the timeout (the server's stop releases them), so a client delayed on a
    # loaded box still times out rather than getting one.
    fake_openai.enqueue(completion_reply("{}", delay=30.0), completion_reply("{}", delay=30.0))

    with pytest.raises(openai.APITimeoutError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APITimeoutError) as by_route:
        route_of(client).post(BODY)

    assert by_route.value.message == by_sdk.value.message
    assert isinstance(by_route.value.__cause__, type(by_sdk.value.__cause__))


def test_a_refused_connection_is_the_sdks_connection_error() -> None:
    client = make_client(f"http://127.0.0.1:{unused_port()}/v1")

    with pytest.raises(openai.APIConnectionError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APIConnectionError) as by_route:
        route_of(client).post(BODY)

    assert type(by_route.value) is type(by_sdk.value) is openai.APIConnectionError
    assert by_route.value.message == by_sdk.value.message
    assert isinstance(by_route.value.__cause__, type(by_sdk.value.__cause__))


def test_a_body_that_is_not_json_comes_back_as_it_came(fake_openai: FakeOpenAIServer) -> None:
    client = make_client(fake_openai.base_url)
    fake_openai.enqueue(ScriptedReply(body=b"<html>ok?</html>", content_type="text/html"))

    response = route_of(client).post(BODY)

    assert response.status_code == 200
    assert response.content == b"<html>ok?</html>"


def test_clients_whose_request_can_change_go_through_the_sdk(fake_openai: FakeOpenAIServer) -> None:
    assert chat_route(make_client(fake_openai.base_url, max_retries=2)) is None  # retries and their header
    assert chat_route(make_client(fake_openai.base_url, api_key=lambda: "rotated")) is None  # key read per request
    client = make_client(fake_openai.base_url)
    assert chat_route(client) is chat_route(client)  # built once per client


def test_a_route_does_not_keep_its_client_alive(fake_openai: FakeOpenAIServer) -> None:
    client = make_client(fake_openai.base_url)
    route_of(client)
    alive = weakref.ref(client)
    del client
    gc.collect()
    assert alive() is None


# ---------------------------------------------------------------------------------------------
# The route's own connections (app/llm/keepalive_pool.py), against the SDK's HTTP client, on a server that
# records each request as received.


def direct_of(route: ChatRoute) -> DirectChannel:
    assert route.direct is not None
    return route.direct


def wait_until(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def sdk_limits(**limits: Any) -> Any:
    return type(openai.DEFAULT_CONNECTION_LIMITS)(**limits)


OPTIONS = [
    {},
    {"organization": "org-7", "project": "proj-9", "default_headers": {"X-Team": "ops"}},
    {"default_query": {"api-version": "2024-10-21"}, "timeout": 12.5},
    # What the provider's shared client is: the SDK's own client class, with its limits and timeout.
    {"http_client": openai.DefaultHttpxClient(limits=sdk_limits(max_connections=1000, max_keepalive_connections=300),
                                              timeout=5.0)},
]
OPTION_IDS = ["plain", "organization-project-headers", "query-and-timeout", "default-httpx-client"]


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_the_route_writes_the_bytes_the_sdk_writes(raw_server: RawHTTPServer, options: dict[str, Any]) -> None:
    client = make_client(raw_server.base_url, **options)
    route = route_of(client)
    direct_of(route)

    by_sdk = sdk_post(client)
    by_route = route.post(BODY)

    sdk_request, route_request = raw_server.requests
    assert route_request.raw == sdk_request.raw  # request line, every header in order, body
    assert json.loads(route_request.raw.partition(b"\r\n\r\n")[2]) == BODY
    assert isinstance(by_route, ChatResponse)
    assert by_route.status_code == by_sdk.status_code == 200
    assert by_route.content == by_sdk.content == COMPLETION


def test_the_providers_shared_client_sends_on_the_routes_connections_with_its_limits(
    raw_server: RawHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", raw_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    settings = Settings(openai_max_attempts=1, openai_timeout=7.0, worker_concurrency=150)
    client = shared_client(settings)
    direct = direct_of(route_of(client))

    sdk_post(client)
    route_of(client).post(BODY)

    sdk_request, route_request = raw_server.requests
    assert route_request.raw == sdk_request.raw
    assert direct.timeouts == Timeouts(7.0, 7.0, 7.0, 7.0)
    sdk_pool = client._client._transport._pool
    assert (direct.pool._max_connections, direct.pool._max_keepalive, direct.pool._keepalive_expiry) == (
        sdk_pool._max_connections, sdk_pool._max_keepalive_connections, sdk_pool._keepalive_expiry)
    assert direct.pool._max_keepalive == keepalive_connections(settings) == 150


def test_the_timeouts_are_the_sdks(raw_server: RawHTTPServer) -> None:
    default = OpenAI(base_url=raw_server.base_url, api_key=FAKE_API_KEY, max_retries=0)
    assert direct_of(route_of(default)).timeouts == Timeouts(connect=5.0, read=600, write=600, pool=600)
    explicit = make_client(raw_server.base_url, timeout=12.5)
    assert direct_of(route_of(explicit)).timeouts == Timeouts(12.5, 12.5, 12.5, 12.5)


def test_connections_are_kept_alive_and_reused(raw_server: RawHTTPServer) -> None:
    route = route_of(make_client(raw_server.base_url))
    for _ in range(3):
        route.post(BODY)
    assert [request.connection for request in raw_server.requests] == [1, 1, 1]
    assert direct_of(route).pool.idle_connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_without_resending(raw_server: RawHTTPServer) -> None:
    route = route_of(make_client(raw_server.base_url))
    route.post(BODY)
    wait_until(lambda: raw_server.idle_connections() == 1)
    assert raw_server.close_idle_connections() == 1

    assert route.post(BODY).content == COMPLETION
    assert [request.connection for request in raw_server.requests] == [1, 2]


def test_a_kept_connection_closed_before_any_answer_is_retried_once_on_a_new_one(raw_server: RawHTTPServer) -> None:
    route = route_of(make_client(raw_server.base_url))
    route.post(BODY)
    raw_server.enqueue(Hangup())  # reads the request, then closes: the race the idle check cannot see

    assert route.post(BODY).content == COMPLETION
    first, lost, retried = raw_server.requests
    assert [first.connection, lost.connection, retried.connection] == [1, 1, 2]
    assert retried.raw == lost.raw


def test_a_kept_connection_closed_twice_is_retried_only_once(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    route = route_of(client)
    route.post(BODY)
    sdk_post(client)
    raw_server.enqueue(Hangup(), Hangup(), Hangup())

    with pytest.raises(openai.APIConnectionError) as by_sdk:
        sdk_post(client)  # on its kept connection: httpcore2 does not retry
    with pytest.raises(openai.APIConnectionError) as by_route:
        route.post(BODY)

    assert len(raw_server.requests) == 2 + 1 + 2
    assert type(by_route.value.__cause__) is type(by_sdk.value.__cause__) is httpx2.RemoteProtocolError
    assert str(by_route.value.__cause__) == str(by_sdk.value.__cause__)


def test_a_new_connection_closed_before_any_answer_is_not_retried(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    raw_server.enqueue(Hangup(), Hangup())

    with pytest.raises(openai.APIConnectionError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APIConnectionError) as by_route:
        route_of(client).post(BODY)

    assert len(raw_server.requests) == 2
    assert by_route.value.message == by_sdk.value.message
    assert type(by_route.value.__cause__) is type(by_sdk.value.__cause__) is httpx2.RemoteProtocolError
    assert str(by_route.value.__cause__) == str(by_sdk.value.__cause__)
    assert str(translate(by_route.value)) == str(translate(by_sdk.value))


def test_an_answer_cut_short_is_never_resent(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    route = route_of(client)
    route.post(BODY)
    sdk_post(client)
    cut = Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial", close=True)
    raw_server.enqueue(cut, cut)

    with pytest.raises(openai.APIConnectionError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APIConnectionError) as by_route:
        route.post(BODY)

    assert len(raw_server.requests) == 4  # each sent once, on its kept connection
    assert type(by_route.value.__cause__) is type(by_sdk.value.__cause__) is httpx2.RemoteProtocolError


def test_an_answer_that_never_comes_is_the_sdks_timeout(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url, timeout=0.3)
    raw_server.enqueue(Silence(), Silence())

    with pytest.raises(openai.APITimeoutError) as by_sdk:
        sdk_post(client)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError) as by_route:
        route_of(client).post(BODY)
    waited = time.monotonic() - started

    assert 0.3 <= waited < 5.0  # gave up at its timeout (a loaded box may add seconds), not re-sent
    assert len(raw_server.requests) == 2  # not re-sent after the timeout
    assert by_route.value.message == by_sdk.value.message
    assert type(by_route.value.__cause__) is type(by_sdk.value.__cause__) is httpx2.ReadTimeout
    assert str(by_route.value.__cause__) == str(by_sdk.value.__cause__)
    assert str(translate(by_route.value)) == str(translate(by_sdk.value))


def translate(error: openai.APIError) -> Any:
    return translate_api_error(error, model="fake-model", base_url="http://local")


RAW_ERRORS = [
    answer(429, json.dumps({"error": {"message": "Rate limit reached", "type": "requests",
                                      "code": "rate_limit_exceeded"}}).encode(), {"Retry-After": "7"}),
    answer(500, json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode(),
           {"retry-after-ms": "1500"}),
    answer(503, b"<html>overloaded</html>", content_type="text/html"),
    answer(400, json.dumps({"error": {"message": "too long", "code": "context_length_exceeded"}}).encode()),
]


@pytest.mark.parametrize("reply", RAW_ERRORS, ids=["429-retry-after", "500", "503-html", "400"])
def test_status_errors_on_the_routes_connections_are_the_sdks(raw_server: RawHTTPServer, reply: Answer) -> None:
    client = make_client(raw_server.base_url)
    raw_server.enqueue(reply, reply)

    with pytest.raises(openai.APIStatusError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APIStatusError) as by_route:
        route_of(client).post(BODY)

    sdk_error, route_error = by_sdk.value, by_route.value
    assert type(route_error) is type(sdk_error)
    assert route_error.status_code == sdk_error.status_code
    assert (route_error.message, route_error.body, route_error.code) == (sdk_error.message, sdk_error.body,
                                                                         sdk_error.code)
    assert route_error.response.headers.multi_items() == sdk_error.response.headers.multi_items()
    assert route_error.response.reason_phrase == sdk_error.response.reason_phrase
    assert route_error.__cause__ is None and route_error.__suppress_context__
    sdk_translated, route_translated = translate(sdk_error), translate(route_error)
    assert type(route_translated) is type(sdk_translated)
    assert str(route_translated) == str(sdk_translated)
    assert getattr(route_translated, "retry_after", None) == getattr(sdk_translated, "retry_after", None)
    assert [request.connection for request in raw_server.requests] == [1, 2]  # one each (two pools)


@pytest.mark.parametrize(
    "reply",
    [answer(200, b"<html>ok?</html>", content_type="text/html"), chunked(COMPLETION), gzipped(COMPLETION),
     Answer(b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n" + answer(200, COMPLETION).raw),
     Answer(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n" + COMPLETION, close=True)],
    ids=["not-json", "chunked", "gzip", "early-hints", "http-1.0-close-delimited"],
)
def test_bodies_come_back_as_the_sdks_http_client_returns_them(raw_server: RawHTTPServer, reply: Answer) -> None:
    client = make_client(raw_server.base_url)
    raw_server.enqueue(reply, reply)

    by_sdk = sdk_post(client)
    by_route = route_of(client).post(BODY)

    assert by_route.status_code == by_sdk.status_code == 200
    assert by_route.content == by_sdk.content


def test_a_connection_the_answer_closes_is_not_kept(raw_server: RawHTTPServer) -> None:
    route = route_of(make_client(raw_server.base_url))
    raw_server.enqueue(answer(200, COMPLETION, {"connection": "close"}, close=True))

    route.post(BODY)
    route.post(BODY)

    assert [request.connection for request in raw_server.requests] == [1, 2]


def test_cookies_the_server_sets_are_sent_back_byte_for_byte(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    route = route_of(client)
    raw_server.enqueue(answer(200, COMPLETION, {"set-cookie": "__cf_bm=abc123; Path=/"}))

    assert route.post(BODY).content == COMPLETION  # handed to the HTTP client, which keeps the cookie
    assert client._client.cookies.get("__cf_bm") == "abc123"
    sdk_post(client)
    route.post(BODY)

    sdk_request, route_request = raw_server.requests[-2:]
    assert route_request.header("cookie") == "__cf_bm=abc123"
    assert route_request.raw == sdk_request.raw


def test_a_redirect_is_followed_as_the_sdks_http_client_follows_it(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    moved = answer(307, b"", {"location": "/v2/chat/completions"})
    raw_server.enqueue(moved, answer(200, b'{"by": "sdk"}'), moved, answer(200, b'{"by": "route"}'))

    by_sdk = sdk_post(client)
    by_route = route_of(client).post(BODY)

    assert (by_sdk.content, by_route.content) == (b'{"by": "sdk"}', b'{"by": "route"}')
    sdk_first, sdk_moved, route_first, route_moved = raw_server.requests
    assert route_first.raw == sdk_first.raw and route_moved.raw == sdk_moved.raw
    assert route_moved.path == "/v2/chat/completions"


def test_threads_share_one_bounded_pool(raw_server: RawHTTPServer) -> None:
    limits = sdk_limits(max_connections=4, max_keepalive_connections=4)  # none closed: each one counted is one open
    route = route_of(make_client(raw_server.base_url, http_client=openai.DefaultHttpxClient(limits=limits)))
    raw_server.echo = True
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for turn in range(15):
                body = {**BODY, "metadata": {"worker": number, "turn": turn}}
                assert json.loads(route.post(body).content) == body
        except BaseException as exc:  # reported below, with the thread's own error
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert len(raw_server.requests) == 12 * 15
    assert raw_server.connections <= 4
    assert direct_of(route).pool.idle_connections == raw_server.connections


def test_a_closed_client_fails_as_the_sdk_does(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    route = route_of(client)
    route.post(BODY)
    client.close()

    with pytest.raises(RuntimeError) as by_sdk:
        sdk_post(client)
    with pytest.raises(RuntimeError) as by_route:
        route.post(BODY)
    assert str(by_route.value) == str(by_sdk.value)
    assert direct_of(route).pool.idle_connections == 0


def test_clients_the_route_cannot_match_send_through_their_http_client(
    raw_server: RawHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = raw_server.base_url
    assert route_of(make_client(url)).direct is not None
    unmatched = {
        "own-httpx2-client": make_client(url, http_client=httpx2.Client()),
        "legacy-httpx-client": make_client(url, http_client=httpx.Client()),
        "event-hooks": make_client(url, http_client=openai.DefaultHttpxClient(event_hooks={"request": [print]})),
        "auth": make_client(url, http_client=openai.DefaultHttpxClient(auth=("user", "secret"))),
        "connect-retries": make_client(url, http_client=openai.DefaultHttpxClient(
            transport=httpx2.HTTPTransport(retries=2))),
        "mounted-transport": make_client(url, http_client=openai.DefaultHttpxClient(
            mounts={"http://127.0.0.1": httpx2.HTTPTransport()})),
        "proxy-argument": make_client(url, http_client=openai.DefaultHttpxClient(proxy="http://127.0.0.1:9")),
    }
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    unmatched["proxy-from-environment"] = make_client(url)
    for name, client in unmatched.items():
        route = chat_route(client)
        assert route is not None and route.direct is None, name
    # A proxy the environment names, but not for this host: the client connects directly, and so can the route.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert route_of(make_client(url)).direct is not None


def test_a_route_with_its_own_connections_does_not_keep_its_client_alive(raw_server: RawHTTPServer) -> None:
    client = make_client(raw_server.base_url)
    route = route_of(client)
    route.post(BODY)
    pool = direct_of(route).pool
    alive = weakref.ref(client)
    del client, route
    gc.collect()
    assert alive() is None
    assert pool.idle_connections == 0  # closed with the client


# https: the route's connections verify the server with the SDK pool's own SSL context.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[RawHTTPServer]:
    key, cert = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = RawHTTPServer(ssl_context=context).start()
    try:
        yield server
    finally:
        server.stop()


def test_https_with_the_sdks_default_verification_rejects_an_unknown_certificate(tls_server: RawHTTPServer) -> None:
    client = make_client(tls_server.base_url)
    route = route_of(client)
    direct_of(route)

    with pytest.raises(openai.APIConnectionError) as by_sdk:
        sdk_post(client)
    with pytest.raises(openai.APIConnectionError) as by_route:
        route.post(BODY)

    assert type(by_route.value.__cause__) is type(by_sdk.value.__cause__) is httpx2.ConnectError
    assert "CERTIFICATE_VERIFY_FAILED" in str(by_route.value.__cause__)
    assert str(by_route.value.__cause__) == str(by_sdk.value.__cause__)
    assert tls_server.requests == []


def test_https_with_a_trusted_certificate_sends_the_bytes_the_sdk_sends(
    tls_server: RawHTTPServer, certificate: tuple[Path, Path]
) -> None:
    trusted = ssl.create_default_context(cafile=str(certificate[1]))
    client = make_client(tls_server.base_url, http_client=openai.DefaultHttpxClient(verify=trusted))
    route = route_of(client)
    direct_of(route)

    by_sdk = sdk_post(client)
    by_route = route.post(BODY)
    route.post(BODY)

    client.close()
    sdk_request, route_request, again = tls_server.requests
    assert route_request.raw == sdk_request.raw
    assert by_route.content == by_sdk.content == COMPLETION
    assert again.connection == route_request.connection  # kept alive over TLS too
