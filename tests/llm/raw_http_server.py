"""A local HTTP/1.1 server on a real socket that records every request byte for byte and answers from a script.

The chat route's own transport (app/llm/keepalive_pool.py) is compared with the SDK's HTTP client on it:
what each writes on the wire (`requests[i].raw`: request line, headers, body, as received), which
connection carried it (`requests[i].connection`), and how each behaves when the server misbehaves.
Each scripted step answers one request:

    server.enqueue(answer(200, b"{}"), Hangup(), answer(429, b"{}", {"Retry-After": "7"}))

`Answer` writes its bytes then keeps the connection (or closes it, `close=True`); `Hangup` closes the
connection after reading the request, before any byte of an answer; `Silence` never answers. With the
script empty the server answers `default` (a JSON completion). `close_idle_connections` closes every
connection waiting for its next request, as a server whose keep-alive timeout passed. With `echo`, the
default answer's body is the request's body. Given an `ssl_context`, the server speaks https.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

COMPLETION = json.dumps({
    "id": "chatcmpl-raw", "object": "chat.completion", "created": 1_700_000_000, "model": "fake-model",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "{}", "refusal": None}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}).encode()


@dataclass(frozen=True)
class Answer:
    raw: bytes
    close: bool = False  # close the connection once written
    delay: float = 0.0  # seconds to wait before writing


@dataclass(frozen=True)
class Hangup:
    """Close the connection after reading the request, without a byte of an answer."""


@dataclass(frozen=True)
class Silence:
    """Read the request and never answer (until the server stops)."""


@dataclass(frozen=True)
class Trickle:
    """Write `answer` a few bytes at a time, `every` seconds apart: each read gets a byte within its timeout,
    the whole answer takes far longer."""

    answer: Answer
    every: float
    bytes_at_a_time: int = 16


Step = Answer | Hangup | Silence | Trickle


def answer(status: int, body: bytes, headers: Mapping[str, str] | None = None, *, reason: str = "",
           content_type: str = "application/json", close: bool = False, delay: float = 0.0) -> Answer:
    """An answer with a Content-Length, `headers` after the usual ones."""
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Whatever')}", f"content-type: {content_type}",
             f"content-length: {len(body)}", *(f"{name}: {value}" for name, value in (headers or {}).items())]
    return Answer(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body, close=close, delay=delay)


def chunked(body: bytes, pieces: int = 3) -> Answer:
    size = max(1, len(body) // pieces)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return Answer(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                  + chunks + b"0\r\n\r\n")


def gzipped(body: bytes) -> Answer:
    return answer(200, gzip.compress(body), {"content-encoding": "gzip"})


_REASONS = {200: "OK", 307: "Temporary Redirect", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


@dataclass(frozen=True)
class RawRequest:
    connection: int  # 1 for the first connection accepted, and so on
    raw: bytes  # the request as received: request line, headers, blank line, body

    @property
    def head(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[0]

    @property
    def path(self) -> str:
        return self.raw.split(b" ", 2)[1].decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.decode().lower() == name.lower():
                return value.strip().decode("latin-1")
        return None


class RawHTTPServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.default: Step = answer(200, COMPLETION)
        self.echo = False
        self._ssl_context = ssl_context
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        self._idle: set[socket.socket] = set()
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.02)  # accept() wakes up to see the server stopping
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="raw-http", daemon=True)

    @property
    def base_url(self) -> str:
        port = self._listener.getsockname()[1]
        if self._ssl_context is None:
            return f"http://127.0.0.1:{port}/v1"
        return f"https://localhost:{port}/v1"  # the name the test certificate is for

    def idle_connections(self) -> int:
        with self._lock:
            return len(self._idle)

    def enqueue(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def close_idle_connections(self) -> int:
        """Close every connection waiting for its next request; returns how many."""
        with self._lock:
            idle, self._idle = self._idle, set()
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(idle)

    def start(self) -> RawHTTPServer:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._open.add(sock)
            thread = threading.Thread(target=self._serve, args=(sock, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, plain: socket.socket, number: int) -> None:
        buffer = b""
        sock = plain
        try:
            if self._ssl_context is not None:
                sock.settimeout(5)
                sock = self._ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
            while True:
                with self._lock:
                    self._idle.add(sock)
                request, buffer = _read_request(sock, buffer)
                with self._lock:
                    self._idle.discard(sock)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(RawRequest(connection=number, raw=request))
                    step = self._script.popleft() if self._script else self.default
                if step is self.default and self.echo:
                    step = answer(200, request.partition(b"\r\n\r\n")[2])
                if isinstance(step, Hangup):
                    return
                if isinstance(step, Silence):
                    self._stopping.wait()
                    return
                if isinstance(step, Trickle):
                    raw = step.answer.raw
                    for start in range(0, len(raw), step.bytes_at_a_time):
                        sock.sendall(raw[start:start + step.bytes_at_a_time])
                        if self._stopping.wait(step.every):
                            return
                    continue
                if step.delay:
                    self._stopping.wait(step.delay)
                sock.sendall(step.raw)
                if step.close:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._idle.discard(sock)
                self._open.discard(plain)
            sock.close()


def _read_request(sock: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            return None, b""
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]
