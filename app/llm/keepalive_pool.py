"""HTTP/1.1 keep-alive connections to one origin, for a request whose bytes the caller already has.

The chat-completions route (app/llm/openai_route.py) knows the head of its request byte for byte (the
SDK's HTTP stack built it once); what is left per request is socket work: send the bytes, read the
answer, keep the connection for the next request. The SDK's client (httpx2 over httpcore2 and h11)
spends about three times the CPU of this module on that part, in request and response objects,
protocol events and per-request pool bookkeeping. This pool does what httpcore2's pool does for that
case and no more:

- connections are opened as httpcore2 opens them (`socket.create_connection` with the connect timeout,
  TCP_NODELAY, then TLS through the SDK pool's own `ssl.SSLContext`, ALPN http/1.1, SNI the host);
- at most `max_connections` at once (a request waits up to the pool timeout for one, else
  `PoolTimeout`), at most `max_keepalive` kept idle, each for `keepalive_expiry` seconds;
- an idle connection the server has closed (readable while idle) is dropped before use, as httpcore2
  does; one that was closed while the request was being sent (the race that check cannot close) is
  retried once on a new connection, and only when no byte of an answer arrived: the server cannot
  have processed a request it never answered on a connection it was closing. Never after an answer
  started, never on a new connection, never after a timeout;
- each socket read waits at most the read timeout and each write the write timeout, as httpcore2's, and
  besides, the whole exchange (the request sent, the answer read) ends by the read timeout counted from
  its start: a server trickling its answer a byte at a time kept a request (and its worker slot) alive
  for as long as it liked, past the broker's visibility timeout, while each read stayed within its limit;
- the answer is parsed by the standard library's `http.client.HTTPResponse` (status line, headers,
  Content-Length, chunked or close-delimited bodies), 1xx interim answers skipped as h11 skips them;
- failures are raised as httpx2 raises them, same types and messages (`ConnectError`, `ConnectTimeout`,
  `WriteTimeout`, `ReadTimeout`, `ReadError`, `RemoteProtocolError`, `PoolTimeout`), so the SDK's own
  lists of its HTTP library's exceptions sort them.

Why http.client rather than urllib3: measured on this box, CPU of the calling thread per POST of a ~5 kB
JSON body to a local server on a kept-alive connection, JSON encoding and parsing included: a socket plus
`http.client.HTTPResponse` (this module) ~0.2-0.3 ms, `http.client.HTTPConnection` ~0.3-0.4 ms, a urllib3
pool ~0.6-0.9 ms, httpx2 ~0.8-1.0 ms. urllib3 wraps http.client in its own pool and retry layers (its
retry of a dropped connection would also re-send after an answer started unless tuned off); the one
retry rule above is explicit here. A hand-written response parser saved another ~0.07 ms and was not
worth owning chunked decoding and the rest of HTTP/1.1 framing.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx2


class _DeadlineReader(io.RawIOBase):
    """The socket as an answer is read from it: each read waits at most the read timeout, and never past the
    exchange's deadline (then it raises TimeoutError, as a socket read that timed out does)."""

    def __init__(self, sock: socket.socket, timeout: float | None, deadline: float | None) -> None:
        self._sock, self._timeout, self._deadline = sock, timeout, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise TimeoutError("the answer did not arrive whole within the timeout")
        self._sock.settimeout(_within(self._timeout, self._deadline))
        return self._sock.recv_into(buffer)


def _within(timeout: float | None, deadline: float | None) -> float | None:
    """`timeout`, cut to what is left before `deadline`; a deadline already past leaves a moment, so the
    next read or write times out at once rather than blocking."""
    if deadline is None:
        return timeout
    left = max(deadline - time.monotonic(), 0.001)
    return left if timeout is None else min(timeout, left)


# What httpcore2 raises (and httpx2 passes on) when the server closes without answering.
SERVER_DISCONNECTED = "Server disconnected without sending a response."


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds (None: no limit), as in httpx2's `Timeout`."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An answer as received: header values stripped of surrounding blanks (as h11 does), body not decoded."""

    http_version: bytes  # b"HTTP/1.1"
    status_code: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    content: bytes


class _NoAnswer(Exception):
    """No byte of an answer arrived: `error` is what to raise if the request cannot be retried."""

    def __init__(self, error: httpx2.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection:
    __slots__ = ("expire_at", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.expire_at: float | None = None


class _FinalResponse(http.client.HTTPResponse):
    """`HTTPResponse` that passes over every 1xx interim answer but 101, as h11 does (http.client skips only 100)."""

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        while 100 < status < 200 and status != 101:
            http.client.parse_headers(self.fp)  # the interim answer's headers, discarded
            version, status, reason = super()._read_status()  # type: ignore[misc]
        return version, status, reason


class KeepAlivePool:
    """Connections to one origin (`scheme` http or https); thread-safe."""

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        max_connections: int | None,
        max_keepalive: int | None,
        keepalive_expiry: float | None,
        socket_options: Iterable[tuple[Any, ...]] = (),
        local_address: str | None = None,
    ) -> None:
        if scheme == "https" and ssl_context is None:
            raise ValueError("an https pool needs the SSL context to verify the server with")
        self.scheme = scheme
        self.host = host
        self.port = port
        self._ssl_context = ssl_context if scheme == "https" else None
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._socket_options = tuple(socket_options)
        self._source_address = None if local_address is None else (local_address, 0)
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._idle: deque[_Connection] = deque()  # oldest on the left; reuse takes the newest
        self._open = 0  # connections open or being opened, idle ones included
        self._closed = False

    # -- the exchange ---------------------------------------------------------------------------

    def exchange(self, payload: bytes, timeouts: Timeouts) -> RawResponse:
        """Send `payload` (a whole request) and read the whole answer, within the read timeout as a whole."""
        connection = self._acquire(timeouts.pool)
        reused = connection is not None
        try:
            if connection is None:
                connection = self._connect(timeouts.connect)
            # Counted once a connection is at hand: waiting for one is the pool timeout's, connecting the
            # connect timeout's.
            deadline = time.monotonic() + timeouts.read if timeouts.read is not None else None
            while True:
                try:
                    response, sent_whole = self._send(connection.sock, payload, timeouts, deadline)
                    break
                except _NoAnswer as nothing:
                    self._close_socket(connection.sock)
                    if not reused:
                        raise nothing.error from nothing.__cause__
                    reused = False  # once: a new connection now
                    connection = None
                    connection = self._connect(timeouts.connect)
            try:
                answer = self._read(response)
            finally:
                response.close()
        except BaseException:
            if connection is not None:
                self._close_socket(connection.sock)
            self._free_slot()
            raise
        # h11 keeps only HTTP/1.1 alive, and only once the request was sent whole (an early answer, a 413 say,
        # can come before); a 101 hands the connection over to another protocol.
        reusable = sent_whole and not response.will_close and answer.http_version == b"HTTP/1.1"
        if not reusable or answer.status_code == 101:
            self._close_socket(connection.sock)
            self._free_slot()
        else:
            self._release(connection)
        return answer

    @staticmethod
    def _send(
        sock: socket.socket, payload: bytes, timeouts: Timeouts, deadline: float | None
    ) -> tuple[_FinalResponse, bool]:
        """Write the request and wait for the first byte of an answer (left buffered in the response).

        Returns the response to read and whether the whole request was written."""
        sent_whole = True
        try:
            view = memoryview(payload)
            while view:
                sock.settimeout(_within(timeouts.write, deadline))
                sent = sock.send(view)
                view = view[sent:]
        except TimeoutError as exc:
            raise httpx2.WriteTimeout(str(exc)) from exc
        except OSError:
            sent_whole = False  # as httpcore2, read on: the server may have answered before reading it all
        response = _FinalResponse(sock, method="POST")
        # Every read of the answer (status line, headers, chunk sizes, body) through the deadline: a server
        # trickling its headers a few bytes at a time got each read within its timeout, for as long as it liked.
        buffered = response.fp
        response.fp = io.BufferedReader(_DeadlineReader(sock, timeouts.read, deadline))
        buffered.close()  # nothing read from it yet; closing it lets the socket close when the pool does
        try:
            first = response.fp.peek(1)
        except TimeoutError as exc:
            response.close()
            raise httpx2.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            response.close()
            error = httpx2.ReadError(str(exc))
            error.__cause__ = exc
            raise _NoAnswer(error) from exc
        if not first:
            response.close()
            raise _NoAnswer(httpx2.RemoteProtocolError(SERVER_DISCONNECTED))
        return response, sent_whole

    @staticmethod
    def _read(response: _FinalResponse) -> RawResponse:
        try:
            response.begin()
            content = response.read()
        except TimeoutError as exc:
            raise httpx2.ReadTimeout(str(exc) or "the answer did not arrive whole within the timeout") from exc
        except OSError as exc:
            raise httpx2.ReadError(str(exc)) from exc
        except (http.client.HTTPException, ValueError) as exc:
            raise httpx2.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
        return RawResponse(
            http_version=b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
            status_code=response.status,
            reason=response.reason.encode("latin-1"),
            headers=[(name.encode("latin-1"), value.strip(" \t").encode("latin-1"))
                     for name, value in response.msg.items()],
            content=content,
        )

    # -- connections ----------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> _Connection:
        try:
            sock = socket.create_connection((self.host, self.port), timeout, source_address=self._source_address)
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpx2.ConnectError(str(exc)) from exc
        try:
            for option in self._socket_options:
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                self._ssl_context.set_alpn_protocols(["http/1.1"])  # what httpcore2 sets for HTTP/1.1 only
                sock.settimeout(timeout)
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError as exc:
            sock.close()
            raise httpx2.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            sock.close()
            raise httpx2.ConnectError(str(exc)) from exc
        return _Connection(sock)

    def _acquire(self, timeout: float | None) -> _Connection | None:
        """An idle connection still usable, or None with a slot reserved for a new one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise httpx2.ConnectError("the connection pool was closed")
                now = time.monotonic()
                while self._idle:
                    connection = self._idle.pop()
                    expired = connection.expire_at is not None and now > connection.expire_at
                    if expired or _is_readable(connection.sock):  # expired, or the server closed (or wrote)
                        self._close_socket(connection.sock)
                        self._open -= 1
                        continue
                    return connection
                if self._max_connections is None or self._open < self._max_connections:
                    self._open += 1
                    return None
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    raise httpx2.PoolTimeout("")
                self._slot_freed.wait(remaining)

    def _release(self, connection: _Connection) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed or (self._max_keepalive is not None and len(self._idle) >= self._max_keepalive):
                self._close_socket(connection.sock)
                self._open -= 1
            else:
                if self._keepalive_expiry is not None:
                    connection.expire_at = now + self._keepalive_expiry
                self._idle.append(connection)
            # Idle connections past their expiry are closed now, not whenever they would next be picked.
            while self._idle and self._idle[0].expire_at is not None and now > self._idle[0].expire_at:
                self._close_socket(self._idle.popleft().sock)
                self._open -= 1
            self._slot_freed.notify()

    def _free_slot(self) -> None:
        with self._lock:
            self._open -= 1
            self._slot_freed.notify()

    @staticmethod
    def _close_socket(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()

    def close(self) -> None:
        """Close the idle connections; those in use close when their request ends."""
        with self._lock:
            self._closed = True
            while self._idle:
                self._close_socket(self._idle.pop().sock)
                self._open -= 1
            self._slot_freed.notify_all()

    @property
    def idle_connections(self) -> int:
        with self._lock:
            return len(self._idle)


def _is_readable(sock: socket.socket) -> bool:
    """Whether a read would not block: on an idle connection, the server closed it (or sent what it must not)."""
    fileno = sock.fileno()
    if fileno < 0:
        return True
    if getattr(select, "poll", None) is None:  # as httpcore2 does where poll is missing
        readable, _, _ = select.select([fileno], [], [], 0)
        return bool(readable)
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))
