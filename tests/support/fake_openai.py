"""A local OpenAI-compatible test server that answers from a script and records every request.

Tests of the `openai` provider talk real HTTP to it through the official SDK, so status codes,
headers (Retry-After), slow answers (timeouts), malformed bodies and closed ports are exercised
exactly as the SDK sees them, and no test reaches the internet.

    server.enqueue(extraction_reply({...}), error_reply(429, headers={"retry-after": "7"}))
    ... run the provider ...
    assert server.requests[0].response_format["type"] == "json_schema"

Replies are served in order; when the queue is empty, `responder` (if set) computes a reply from
the request, otherwise the server answers 500 "no scripted reply" so a test fails loudly.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FAKE_API_KEY = "sk-test-fake"
DEFAULT_MODEL = "fake-model"
# How often the serving loop checks for shutdown; the stdlib default (0.5 s) would dominate test time.
SHUTDOWN_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ScriptedReply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a client with a shorter timeout gives up)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def response_format(self) -> dict[str, Any]:
        return dict(self.body.get("response_format") or {})

    def contents(self, role: str) -> list[str]:
        return [str(m.get("content")) for m in self.messages if m.get("role") == role]

    @property
    def last_user_text(self) -> str:
        return self.contents("user")[-1]


def completion_body(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 100,
    completion_tokens: int = 20,
    cached_tokens: int = 0,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """A chat.completion object as OpenAI returns it."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
        },
    }


def completion_reply(content: str | None, *, delay: float = 0.0, **body_options: Any) -> ScriptedReply:
    """A 200 answer whose message content is `content` (any text, valid JSON or not)."""
    return ScriptedReply(body=json.dumps(completion_body(content, **body_options)).encode(), delay=delay)


def extraction_reply(extraction: dict[str, Any], **options: Any) -> ScriptedReply:
    """A 200 answer carrying `extraction` as its JSON content."""
    return completion_reply(json.dumps(extraction), **options)


def error_reply(
    status: int,
    message: str = "scripted error",
    *,
    code: str | None = None,
    error_type: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> ScriptedReply:
    """An error in OpenAI's shape: {"error": {"message", "type", "code"}}."""
    body = {"error": {"message": message, "type": error_type, "code": code, "param": None}}
    return ScriptedReply(status=status, body=json.dumps(body).encode(), headers=dict(headers or {}))


class FakeOpenAIServer:
    """POST /v1/chat/completions on 127.0.0.1, answered from a queue of scripted replies."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.responder: Callable[[RecordedRequest], ScriptedReply] | None = None
        self._queue: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _FakeHTTPServer(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="fake-openai",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers sleeping in a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def enqueue(self, *replies: ScriptedReply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not served yet."""
        with self._lock:
            return len(self._queue)

    def _reply_to(self, request: RecordedRequest) -> ScriptedReply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            return self.responder(request)
        return error_reply(500, "fake server: no scripted reply left", error_type="server_error")

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeOpenAIServer
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # Headers and body go out in separate writes; without this, delayed ACK stalls each reply ~40 ms.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        request = RecordedRequest(
            method="POST",
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        fake = self.server.fake  # type: ignore[attr-defined]
        if not self.path.rstrip("/").endswith("/chat/completions"):
            reply = error_reply(404, f"fake server: unknown path {self.path}")
            fake.requests.append(request)
        else:
            reply = fake._reply_to(request)
        if reply.delay:
            fake._wait(reply.delay)
        self._send(reply)

    def _send(self, reply: ScriptedReply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing left to tell it

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


def unused_port() -> int:
    """A local port nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """Start a server and point the SDK's OPENAI_BASE_URL / OPENAI_API_KEY at it."""
    server = FakeOpenAIServer().start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A running fake server, with the OpenAI SDK environment pointed at it."""
    with running_fake_openai(monkeypatch) as server:
        yield server


# Words quoted per statement by `extraction_quoting`: short enough to stay inside one clause.
QUOTE_WORDS = 6
_LINE = re.compile(r"^\[(?P<index>\d+)\] (?P<role>\w+) \((?P<speaker>[^)]*)\): (?P<text>.+)$")


def extraction_quoting(user_text: str) -> dict[str, Any]:
    """A valid v1 extraction whose every statement is a verbatim quote of the transcript it was shown."""
    lines: dict[str, list[tuple[int, str]]] = {}
    for raw in user_text.splitlines():
        match = _LINE.match(raw.strip())
        if match and "[" not in match["text"]:  # skip redacted lines: keep quotes plain words
            lines.setdefault(match["role"], []).append((int(match["index"]), match["text"]))
    if not lines:
        return {"summary": [], "action_items": []}
    agent = lines.get("agent") or next(iter(lines.values()))
    customer = lines.get("customer") or agent

    def statement(source: tuple[int, str]) -> dict[str, Any]:
        index, text = source
        quote = " ".join(text.split()[:QUOTE_WORDS])
        return {"text": quote, "evidence": [{"utterance": index, "quote": quote}]}

    return {
        "summary": [statement(customer[0])],
        "action_items": [{**statement(agent[-1]), "owner": "agent", "due": None}],
        "reason": statement(customer[-1]),
        "outcome": statement(agent[0]),
    }
