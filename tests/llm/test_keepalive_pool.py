"""The keep-alive pool's own rules (limits, expiry, the one retry), on a real local server that records requests."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from app.llm.keepalive_pool import KeepAlivePool, Timeouts
from tests.llm.raw_http_server import COMPLETION, Hangup, RawHTTPServer, Silence, Trickle, answer
from tests.support.fake_openai import unused_port

TIMEOUTS = Timeouts(connect=2.0, read=2.0, write=2.0, pool=2.0)


_pools: list[KeepAlivePool] = []


@pytest.fixture(autouse=True)
def close_pools() -> Iterator[None]:
    yield
    while _pools:
        _pools.pop().close()


def pool_for(server: RawHTTPServer, **options: Any) -> KeepAlivePool:
    settings: dict[str, Any] = {"max_connections": 10, "max_keepalive": 10, "keepalive_expiry": 5.0, **options}
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    pool = KeepAlivePool(scheme="http", host="127.0.0.1", port=port, ssl_context=None, **settings)
    _pools.append(pool)
    return pool


def request(number: int = 0) -> bytes:
    body = b'{"n": %d}' % number
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_an_answer_comes_back_whole_and_the_connection_is_kept(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server)
    raw_server.enqueue(answer(429, b"{}", {"Retry-After": " 7 "}))

    first = pool.exchange(request(), TIMEOUTS)
    second = pool.exchange(request(), TIMEOUTS)

    assert (first.status_code, first.reason, first.http_version) == (429, b"Too Many Requests", b"HTTP/1.1")
    assert (b"Retry-After", b"7") in first.headers  # blanks around a value dropped, as h11 drops them
    assert second.content == COMPLETION
    assert [sent.raw for sent in raw_server.requests] == [request(), request()]
    assert [sent.connection for sent in raw_server.requests] == [1, 1]


def test_a_request_waits_for_a_free_connection_then_times_out(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server, max_connections=1)
    raw_server.enqueue(Silence())
    # The only connection stays taken this long: well past the waiting request's pool timeout, even when a
    # loaded box delays the waiting request's start (it must time out waiting, not get the connection).
    held_for = 3.0

    def hold() -> None:
        with pytest.raises(httpx2.ReadTimeout):
            pool.exchange(request(), Timeouts(2.0, held_for, 2.0, 2.0))

    holder = threading.Thread(target=hold)
    holder.start()
    while not raw_server.requests:
        time.sleep(0.005)

    started = time.monotonic()
    with pytest.raises(httpx2.PoolTimeout):
        pool.exchange(request(), Timeouts(2.0, 2.0, 2.0, pool=0.2))
    assert 0.2 <= time.monotonic() - started < held_for  # gave up at its pool timeout, not when the holder did
    holder.join()
    # The timed-out request gave its connection back (closed): the next one gets a new connection.
    assert pool.exchange(request(), TIMEOUTS).status_code == 200
    assert raw_server.connections == 2


def test_a_waiting_request_takes_the_connection_given_back(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server, max_connections=1)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(pool.exchange(request(), TIMEOUTS).status_code))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 6
    assert raw_server.connections == 1


def test_idle_connections_beyond_the_keepalive_limit_are_closed(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server, max_connections=3, max_keepalive=1)
    # Three at once: three connections. Slow enough that on a loaded box the third request is sent before
    # the first answer has freed a connection.
    slow = answer(200, COMPLETION, delay=1.0)
    raw_server.enqueue(slow, slow, slow)
    threads = [threading.Thread(target=pool.exchange, args=(request(number), TIMEOUTS)) for number in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert raw_server.connections == 3
    assert pool.idle_connections == 1
    deadline = time.monotonic() + 5
    while raw_server.idle_connections() > 1:  # the server sees the two others closed
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_an_idle_connection_past_its_expiry_is_not_used(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server, keepalive_expiry=0.1)
    pool.exchange(request(), TIMEOUTS)
    time.sleep(0.2)
    pool.exchange(request(), TIMEOUTS)
    assert [sent.connection for sent in raw_server.requests] == [1, 2]


def test_one_retry_only_and_only_on_a_kept_connection(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server)
    raw_server.enqueue(Hangup())
    with pytest.raises(httpx2.RemoteProtocolError, match="Server disconnected without sending a response"):
        pool.exchange(request(), TIMEOUTS)  # a new connection: not retried
    pool.exchange(request(), TIMEOUTS)
    raw_server.enqueue(Hangup(), Hangup())
    with pytest.raises(httpx2.RemoteProtocolError):
        pool.exchange(request(), TIMEOUTS)  # kept connection, then one new one: both hung up
    assert [sent.connection for sent in raw_server.requests] == [1, 2, 2, 3]
    assert pool.exchange(request(), TIMEOUTS).status_code == 200  # the slots were all given back


def test_a_refused_connection_is_httpx2s_connect_error() -> None:
    pool = KeepAlivePool(scheme="http", host="127.0.0.1", port=unused_port(), ssl_context=None,
                         max_connections=1, max_keepalive=1, keepalive_expiry=5.0)
    for _ in range(2):  # the slot is given back after each failure
        with pytest.raises(httpx2.ConnectError, match="Connection refused"):
            pool.exchange(request(), Timeouts(1.0, 1.0, 1.0, pool=0.1))


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that never accepts and never reads: a connection to it completes
    (the kernel accepts it into the backlog) but no byte is ever read or answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        yield listener


@pytest.fixture
def full_listener() -> Iterator[socket.socket]:
    """A listening socket whose backlog is full: the kernel drops further connection attempts, so a
    connect waits out its timeout (no route off the machine is needed to make one time out)."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        fillers = []
        try:
            while True:  # fill the accept queue until one more connect times out
                filler = socket.socket()
                filler.settimeout(0.2)
                try:
                    filler.connect(listener.getsockname())
                except TimeoutError:
                    filler.close()
                    break
                fillers.append(filler)
            yield listener
        finally:
            for filler in fillers:
                filler.close()


def pool_to(listener: socket.socket, scheme: str = "http") -> KeepAlivePool:
    context = ssl.create_default_context() if scheme == "https" else None
    pool = KeepAlivePool(scheme=scheme, host="127.0.0.1", port=listener.getsockname()[1], ssl_context=context,
                         max_connections=1, max_keepalive=1, keepalive_expiry=5.0)
    _pools.append(pool)
    return pool


SHORT = Timeouts(connect=0.3, read=0.3, write=0.3, pool=0.1)


def sdk_stack_error(listener: socket.socket, body: bytes = b"", scheme: str = "http") -> type[Exception]:
    """What httpx2 (the SDK's HTTP stack) raises for the same request to the same listener."""
    timeout = httpx2.Timeout(connect=SHORT.connect, read=SHORT.read, write=SHORT.write, pool=SHORT.pool)
    with httpx2.Client(timeout=timeout, verify=ssl.create_default_context()) as client:
        try:
            client.post(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/v1/chat/completions", content=body)
        except httpx2.TransportError as exc:
            return type(exc)
    raise AssertionError("httpx2 got an answer from a listener that never answers")


def test_a_connect_that_gets_no_answer_is_a_connect_timeout(full_listener: socket.socket) -> None:
    pool = pool_to(full_listener)
    for _ in range(2):  # the slot is given back: the second try connects again, it does not wait for a slot
        with pytest.raises(httpx2.ConnectTimeout):
            pool.exchange(request(), SHORT)
    assert sdk_stack_error(full_listener) is httpx2.ConnectTimeout


def test_a_tls_handshake_that_gets_no_answer_is_a_connect_timeout(silent_listener: socket.socket) -> None:
    pool = pool_to(silent_listener, "https")
    for _ in range(2):
        with pytest.raises(httpx2.ConnectTimeout):
            pool.exchange(request(), SHORT)
    assert sdk_stack_error(silent_listener, scheme="https") is httpx2.ConnectTimeout


def test_a_body_the_server_never_reads_is_a_write_timeout(silent_listener: socket.socket) -> None:
    # Far more than the loopback socket buffers on both sides hold, so the writer blocks.
    body = b"x" * (64 << 20)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    pool = pool_to(silent_listener)
    for _ in range(2):
        with pytest.raises(httpx2.WriteTimeout):
            pool.exchange(head + body, SHORT)
    assert pool.idle_connections == 0  # a connection cut mid-request is never kept
    assert sdk_stack_error(silent_listener, body) is httpx2.WriteTimeout


def test_close_closes_the_idle_connections(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server)
    pool.exchange(request(), TIMEOUTS)
    assert pool.idle_connections == 1
    pool.close()
    assert pool.idle_connections == 0
    while raw_server.idle_connections():  # the server sees the connection end
        time.sleep(0.005)


def test_an_https_pool_needs_its_ssl_context() -> None:
    with pytest.raises(ValueError, match="SSL context"):
        KeepAlivePool(scheme="https", host="localhost", port=443, ssl_context=None,
                      max_connections=1, max_keepalive=1, keepalive_expiry=5.0)


def test_an_answer_trickling_in_ends_at_the_read_timeout_as_a_whole(raw_server: RawHTTPServer) -> None:
    # Each read got a few bytes well within its timeout; the whole answer took ~20 s: a worker slot (and the
    # call, past the visibility timeout) was held for as long as the server liked.
    pool = pool_for(raw_server)
    raw_server.enqueue(Trickle(answer(200, COMPLETION), every=0.1))
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        pool.exchange(request(), Timeouts(connect=2.0, read=1.0, write=2.0, pool=2.0))
    assert time.monotonic() - started < 3.0
    # An answer arriving whole within the limit, in pieces, is read as before.
    raw_server.enqueue(Trickle(answer(200, COMPLETION), every=0.01, bytes_at_a_time=64))
    assert pool.exchange(request(), Timeouts(connect=2.0, read=5.0, write=2.0, pool=2.0)).content == COMPLETION


def test_headers_trickling_in_end_at_the_read_timeout_too(raw_server: RawHTTPServer) -> None:
    # The body's reads were bounded; the status line and headers (read by http.client line by line) were not.
    pool = pool_for(raw_server)
    headers = {f"x-padding-{n}": "y" * 40 for n in range(12)}
    raw_server.enqueue(Trickle(answer(200, COMPLETION, headers), every=0.2))
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        pool.exchange(request(), Timeouts(connect=2.0, read=1.0, write=2.0, pool=2.0))
    assert time.monotonic() - started < 3.0


def test_waiting_for_a_connection_does_not_eat_the_read_timeout(raw_server: RawHTTPServer) -> None:
    pool = pool_for(raw_server, max_connections=1)
    raw_server.enqueue(answer(200, COMPLETION, delay=0.6), answer(200, COMPLETION, delay=0.6))
    results: list[bytes] = []

    def one() -> None:
        results.append(pool.exchange(request(), Timeouts(connect=2.0, read=1.0, write=2.0, pool=5.0)).content)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [COMPLETION, COMPLETION]  # the second waited ~0.6 s for the connection, then had 1 s
