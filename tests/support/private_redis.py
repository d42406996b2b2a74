"""A throwaway redis-server child process on a free port: the fault tests crash and restart one without
disturbing anybody, and under pytest-xdist every test worker runs against its own (tests/conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.fake_openai import unused_port
from tests.support.processes import wait_until
from tests.support.services import require_binary

SERVICE_START_TIMEOUT = 30.0


class PortTakenError(RuntimeError):
    """The chosen port was taken by another process before this test's server bound it."""


class PrivateRedis:
    """A redis-server child process. By default without persistence: a crash loses every message, as in
    production Redis without AOF, which is exactly the case the reconciler exists for. `durable` gives it
    an append-only file synced on every write (as docker-compose runs it, but fsync'd always): a crash
    then loses nothing, and a restart is only a lost connection for its clients."""

    def __init__(self, *, durable: bool = False) -> None:
        self.binary = require_binary("redis-server")
        self.port = unused_port()
        self._data_dir = Path(tempfile.mkdtemp(prefix="postcall-faults-redis-")) if durable else None
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_timeout=5)

    def start(self) -> None:
        persistence = ["--appendonly", "no"]
        if self._data_dir is not None:
            persistence = ["--dir", str(self._data_dir), "--appendonly", "yes", "--appendfsync", "always"]
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_until(self._answers, SERVICE_START_TIMEOUT):
            raise RuntimeError(f"private redis-server did not start on port {self.port}")

    def _answers(self) -> bool:
        """Whether this process's own server answers. The port was free when chosen, but another test
        process may take it before the server binds it: then the server exits, and a ping alone would be
        answered by the other process's Redis, silently shared (flushes included)."""
        if self._proc is not None and self._proc.poll() is not None:
            raise PortTakenError(f"private redis-server exited at start (port {self.port} taken?)")
        try:
            info = self.client().info("server")
        except redis.RedisError:
            return False
        if self._proc is None or int(info["process_id"]) != self._proc.pid:
            raise PortTakenError(f"port {self.port} is answered by another Redis, not this test's own")
        return True

    def fill(self) -> None:
        """Bring the server to the state a full production broker is in: noeviction and a maxmemory below
        what it uses, so its writes are refused. A limit just above the memory in use (the first try) was
        not deterministic: the server's use drops a little as client buffers are freed, and it was then
        neither full nor refusing."""
        client = self.client()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", max(1, int(client.info("memory")["used_memory"]) // 2))
        try:
            client.set("postcall-test-fill", "x")
        except redis.exceptions.OutOfMemoryError:
            return
        raise RuntimeError("the private redis-server took a write over its maxmemory")

    def crash(self) -> None:
        """SIGKILL: everything in memory (queued and unacknowledged messages) is gone."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def stop(self) -> None:
        self.crash()
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)


# Starts on a port another process took meanwhile (see `PrivateRedis._answers`) before giving up.
START_ATTEMPTS = 3


def start_private_redis(*, durable: bool = False) -> PrivateRedis:
    """A started `PrivateRedis`, on a new free port if the first one chosen was taken meanwhile."""
    for attempt in range(1, START_ATTEMPTS + 1):
        server = PrivateRedis(durable=durable)
        try:
            server.start()
            return server
        except PortTakenError:
            server.stop()
            if attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


@contextmanager
def private_redis(*, durable: bool = False) -> Iterator[PrivateRedis]:
    server = start_private_redis(durable=durable)
    try:
        yield server
    finally:
        server.stop()
