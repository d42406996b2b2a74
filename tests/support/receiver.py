"""A real webhook receiver on 127.0.0.1 for tests and benchmarks: it records every request (headers, body,
arrival time) and answers as a script says (status, Retry-After, delay).

`disable_nagle_algorithm` is set: a stock http.server handler writes headers and body separately and
meets TCP delayed acknowledgement, which would add ~40 ms to every measured latency.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from tests.support.fake_openai import SHUTDOWN_POLL_SECONDS, unused_port


@dataclass(frozen=True)
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request arrived
    peer: tuple[str, int] = ("", 0)  # the sender's address and port: one per connection

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def call_id(self) -> str:
        return str(self.payload["data"]["call_id"])

    @property
    def type(self) -> str:
        return str(self.payload["type"])


@dataclass(frozen=True)
class Reply:
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0


Script = Callable[[Received, int], Reply]  # (request, how many times this webhook-id arrived) -> reply


def always_ok(_request: Received, _seen: int) -> Reply:
    return Reply()


@dataclass
class Receiver:
    script: Script = always_ok
    port: int = field(default_factory=unused_port)
    received: list[Received] = field(default_factory=list)
    # Only requests answered 2xx (what the receiver "accepted"), with the time the answer went out.
    accepted: list[tuple[Received, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                request = Received(self.headers.get("webhook-id", ""), {k.lower(): v for k, v in self.headers.items()},
                                   body, time.time(), (str(self.client_address[0]), int(self.client_address[1])))
                with receiver._lock:
                    receiver.received.append(request)
                    seen = sum(1 for r in receiver.received if r.webhook_id == request.webhook_id)
                reply = receiver.script(request, seen)
                if reply.delay:
                    time.sleep(reply.delay)
                    if _client_gone(self.connection):
                        return  # the sender timed out or died meanwhile: nothing was accepted
                answer = b'{"ok":true}'
                self.send_response(reply.status)
                if reply.retry_after is not None:
                    self.send_header("Retry-After", reply.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                # Recorded before the answer goes out: once the sender has read it (and a test looks), the
                # acceptance must already be on the list. Taken back if the answer cannot be written.
                acceptance = (request, time.time()) if 200 <= reply.status < 300 else None
                if acceptance is not None:
                    with receiver._lock:
                        receiver.accepted.append(acceptance)
                try:
                    self.end_headers()
                    self.wfile.write(answer)
                    self.wfile.flush()
                except OSError:
                    if acceptance is not None:
                        with receiver._lock:
                            receiver.accepted.remove(acceptance)
                    return  # the client gave up (timeout): not accepted

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        # The stdlib's 0.5 s shutdown poll would make every stop() wait ~0.25 s on average.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted_requests(self) -> list[Received]:
        with self._lock:
            return [r for r, _ in self.accepted]

    def all_requests(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def _client_gone(connection: socket.socket) -> bool:
    """The peer closed its end (an idle keep-alive client sends nothing, so readable means closed)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@contextmanager
def running_receiver(script: Script = always_ok, port: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script=script) if port is None else Receiver(script=script, port=port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def verify(request: Received, secret: str) -> dict[str, Any]:
    """Verify the Standard Webhooks signature the way a receiver would; raises when it does not match."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


@contextmanager
def raw_receiver(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback HTTP server that reads each request's head and body, then hands the connection to
    `answer`, which writes whatever bytes it likes, as slowly as it likes (what `Receiver` cannot: a
    dripping answer, a compressed or binary error body). Yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def handle(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536) or b"\r\n\r\n"
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += connection.recv(65536) or b" " * length
            try:
                answer(connection)
            except OSError:
                return  # the sender gave up

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
