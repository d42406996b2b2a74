"""A local OpenAI-compatible test server that answers from a script and records every request.

Tests of the `openai` provider talk real HTTP to it through the official SDK, so status codes,
headers (Retry-After), slow answers (timeouts), malformed bodies and closed ports are exercised
exactly as the SDK sees them, and no test reaches the internet.

    server.enqueue(extraction_reply({...}), error_reply(429, headers={"retry-after": "7"}))
    ... run the provider ...
    assert server.requests[0].response_format["type"] == "json_schema"

Replies are served in order; when the queue is empty, `responder` (if set) computes a reply from
the request, otherwise the server answers 500 "no scripted reply" so a test fails loudly.

The Batch API is served too: `POST /v1/files` (upload), `GET /v1/files/{id}[/content]`,
`POST /v1/batches`, `GET /v1/batches[/{id}]`, `POST /v1/batches/{id}/cancel`. Each created batch follows
a `BatchScript` (queued with `script_batches`, default: validating -> in_progress -> finalizing ->
completed), one step per retrieve; its lines are answered by `batch_responder` (else `responder`)
when it finishes. Batch traffic is recorded in `api_requests`, never in `requests`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FAKE_API_KEY = "sk-test-fake"
DEFAULT_MODEL = "fake-model"
# The request timeout of tests that expect this server to answer: generous, as a loaded 2-core box (the suite
# runs in parallel) has kept a loopback answer waiting for seconds. Timeout tests set their own short one.
ANSWER_TIMEOUT = 30.0
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
    raw: bytes = b""  # the body as sent

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


@dataclass
class BatchScript:
    """How one created batch behaves: the statuses shown on successive retrieves, then how it ends.

    `outcome`: completed (every line answered), failed (validation: no output at all), expired (only
    the first `answered` lines answered, the rest listed as `batch_expired` in the error file).
    `errored` picks lines that come back as a 500 in the error file (a partially errored batch).
    A cancelled batch shows `cancelling` once, then ends `cancelled` like an expired one.
    """

    progress: Sequence[str] = ("validating", "in_progress", "finalizing")
    outcome: str = "completed"
    answered: int = 0
    errored: Callable[[str], bool] | None = None
    validation_error: str = "scripted validation failure"


@dataclass
class _FakeBatch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any]
    script: BatchScript
    created_at: int
    status: str
    step: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    total: int = 0
    errors: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


class FakeOpenAIServer:
    """POST /v1/chat/completions on 127.0.0.1, answered from a queue of scripted replies."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.responder: Callable[[RecordedRequest], ScriptedReply] | None = None
        # Batch API: uploaded files, created batches, the requests made to /files and /batches.
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _FakeBatch] = {}
        self.api_requests: list[RecordedRequest] = []
        # TCP connections accepted: a client that keeps its connections alive opens each one once.
        self.connections = 0
        self.batch_responder: Callable[[RecordedRequest], ScriptedReply] | None = None
        # Replies served (in order) instead of the real answer, per operation: "files.create",
        # "files.content", "batches.create", "batches.retrieve", "batches.list", "batches.cancel".
        self.api_failures: dict[str, deque[ScriptedReply]] = {}
        self._batch_scripts: deque[BatchScript] = deque()
        self._ids = itertools.count(1)
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

    # -- Batch API ------------------------------------------------------------------------------

    def script_batches(self, *scripts: BatchScript) -> None:
        """How the next created batches behave, in order (then the default script)."""
        with self._lock:
            self._batch_scripts.extend(scripts)

    def fail_api(self, operation: str, *replies: ScriptedReply) -> None:
        """Answer the next `operation` requests with `replies` (e.g. error_reply(503))."""
        with self._lock:
            self.api_failures.setdefault(operation, deque()).extend(replies)

    def batch_lines(self, batch_id: str) -> list[dict[str, Any]]:
        """The request lines of a batch's input file."""
        content = self.files[self.batches[batch_id].input_file_id]
        return [json.loads(line) for line in content.decode().splitlines() if line.strip()]

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-fake-{next(self._ids)}"

    def _api(self, operation: str, method: str, path: str, body: bytes, content_type: str) -> ScriptedReply:
        with self._lock:
            self.api_requests.append(RecordedRequest(method, path, {"operation": operation}, {}))
            failures = self.api_failures.get(operation)
            if failures:
                return failures.popleft()
            return self._api_answer(operation, path, body, content_type)

    def _api_answer(self, operation: str, path: str, body: bytes, content_type: str) -> ScriptedReply:
        parts = path.split("?")[0].rstrip("/").split("/")
        if operation == "files.create":
            fields = _multipart_fields(content_type, body)
            file_id = self._new_id("file")
            self.files[file_id] = fields.get("file", b"")
            return _json_reply(self._file_object(file_id, str(fields.get("purpose", b"batch").decode())))
        if operation in ("files.retrieve", "files.content"):
            file_id = parts[-2] if operation == "files.content" else parts[-1]
            if file_id not in self.files:
                return error_reply(404, f"no such file {file_id}")
            if operation == "files.retrieve":
                return _json_reply(self._file_object(file_id, "batch"))
            return ScriptedReply(body=self.files[file_id], content_type="application/octet-stream")
        if operation == "batches.create":
            request = json.loads(body or b"{}")
            input_file_id = str(request.get("input_file_id"))
            if input_file_id not in self.files:
                return error_reply(400, f"no such file {input_file_id}")
            script = self._batch_scripts.popleft() if self._batch_scripts else BatchScript()
            lines = [line for line in self.files[input_file_id].decode().splitlines() if line.strip()]
            batch = _FakeBatch(
                id=self._new_id("batch"),
                input_file_id=input_file_id,
                endpoint=str(request.get("endpoint")),
                completion_window=str(request.get("completion_window")),
                metadata=dict(request.get("metadata") or {}),
                script=script,
                created_at=int(time.time()),
                status=script.progress[0] if script.progress else script.outcome,
                total=len(lines),
            )
            self.batches[batch.id] = batch
            if not script.progress:
                self._finish(batch, script.outcome)
            return _json_reply(batch.as_json())
        if operation == "batches.list":
            newest_first = sorted(self.batches.values(), key=lambda b: int(b.id.rsplit("-", 1)[1]), reverse=True)
            data = [b.as_json() for b in newest_first]
            ends = {"first_id": data[0]["id"], "last_id": data[-1]["id"]} if data else {}
            return _json_reply({"object": "list", "data": data, "has_more": False, **ends})
        batch_id = parts[-2] if operation == "batches.cancel" else parts[-1]
        fake = self.batches.get(batch_id)
        if fake is None:
            return error_reply(404, f"no such batch {batch_id}")
        if operation == "batches.cancel":
            if fake.status not in ("completed", "failed", "expired", "cancelled"):
                fake.status = "cancelling"
            return _json_reply(fake.as_json())
        self._advance(fake)
        return _json_reply(fake.as_json())

    def _file_object(self, file_id: str, purpose: str) -> dict[str, Any]:
        return {"id": file_id, "object": "file", "bytes": len(self.files[file_id]), "created_at": int(time.time()),
                "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed"}

    def _advance(self, batch: _FakeBatch) -> None:
        """One retrieve: the next scripted status, or the end."""
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return
        if batch.status == "cancelling":
            self._finish(batch, "cancelled")
            return
        batch.step += 1
        if batch.step < len(batch.script.progress):
            batch.status = batch.script.progress[batch.step]
            if batch.status == "in_progress":
                batch.completed = batch.total // 2
        else:
            self._finish(batch, batch.script.outcome)

    def _finish(self, batch: _FakeBatch, outcome: str) -> None:
        script = batch.script
        batch.status = outcome
        if outcome == "failed":
            batch.errors = [{"code": "invalid_request", "message": script.validation_error, "line": 1,
                             "param": None}]
            batch.completed = batch.failed = 0
            return
        lines = [json.loads(line) for line in self.files[batch.input_file_id].decode().splitlines() if line.strip()]
        answered = len(lines) if outcome == "completed" else script.answered
        output: list[str] = []
        errors: list[str] = []
        for number, line in enumerate(lines):
            custom_id = str(line["custom_id"])
            entry: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": custom_id}
            if number >= answered:
                code = "batch_expired" if outcome == "expired" else "batch_cancelled"
                errors.append(json.dumps({**entry, "response": None,
                                          "error": {"code": code, "message": f"scripted: {outcome}"}}))
                continue
            if script.errored is not None and script.errored(custom_id):
                reply = error_reply(500, "scripted batch line failure", error_type="server_error")
            else:
                reply = self._answer_line(line)
            response = {"status_code": reply.status, "request_id": f"req_{number}", "body": json.loads(reply.body)}
            (output if reply.status == 200 else errors).append(json.dumps({**entry, "response": response,
                                                                            "error": None}))
        batch.completed, batch.failed = len(output), len(errors)
        if output:
            batch.output_file_id = self._new_id("file")
            self.files[batch.output_file_id] = ("\n".join(output) + "\n").encode()
        if errors:
            batch.error_file_id = self._new_id("file")
            self.files[batch.error_file_id] = ("\n".join(errors) + "\n").encode()

    def _answer_line(self, line: dict[str, Any]) -> ScriptedReply:
        request = RecordedRequest("POST", str(line.get("url")), {}, dict(line.get("body") or {}))
        answer = self.batch_responder or self.responder
        if answer is None:
            return error_reply(500, "fake server: no batch responder", error_type="server_error")
        return answer(request)


def _json_reply(document: dict[str, Any]) -> ScriptedReply:
    return ScriptedReply(body=json.dumps(document).encode())


def _multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (what the SDK sends to /v1/files)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


# (method, path pattern) -> Batch API operation.
_API_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/files/?$"), "files.create"),
    ("GET", re.compile(r"/files/[^/]+/content$"), "files.content"),
    ("GET", re.compile(r"/files/[^/]+$"), "files.retrieve"),
    ("POST", re.compile(r"/batches/?$"), "batches.create"),
    ("GET", re.compile(r"/batches/?$"), "batches.list"),
    ("POST", re.compile(r"/batches/[^/]+/cancel$"), "batches.cancel"),
    ("GET", re.compile(r"/batches/[^/]+$"), "batches.retrieve"),
)


def _api_operation(method: str, path: str) -> str | None:
    bare = path.split("?")[0]
    for route_method, pattern, operation in _API_ROUTES:
        if route_method == method and pattern.search(bare):
            return operation
    return None


class _FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # a worker's slots connect at once; socketserver's default backlog is 5

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeOpenAIServer
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # Headers and body go out in separate writes; without this, delayed ACK stalls each reply ~40 ms.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        fake = self.server.fake  # type: ignore[attr-defined]
        with fake._lock:
            fake.connections += 1

    def do_GET(self) -> None:
        fake = self.server.fake  # type: ignore[attr-defined]
        operation = _api_operation("GET", self.path)
        if operation is None:
            self._send(error_reply(404, f"fake server: unknown path {self.path}"))
            return
        self._send(fake._api(operation, "GET", self.path, b"", ""))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length) if length else b""
        operation = _api_operation("POST", self.path)
        if operation is not None:
            fake = self.server.fake  # type: ignore[attr-defined]
            self._send(fake._api(operation, "POST", self.path, raw, self.headers.get("content-type", "")))
            return
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        request = RecordedRequest(
            method="POST",
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            raw=raw,
        )
        fake = self.server.fake  # type: ignore[attr-defined]
        if not self.path.split("?", 1)[0].rstrip("/").endswith("/chat/completions"):  # Azure adds ?api-version
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
