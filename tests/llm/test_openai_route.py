"""The chat-completions route sends what the SDK's `post` sends and fails as it fails, on a real local server."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from app.llm.openai_route import CHAT_COMPLETIONS_PATH, ChatRoute, chat_route
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
    fake_openai.enqueue(completion_reply("{}", delay=1.0), completion_reply("{}", delay=1.0))

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
