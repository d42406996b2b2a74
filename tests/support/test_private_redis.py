"""A private Redis never silently shares another process's server when its chosen port is taken meanwhile."""

from __future__ import annotations

import pytest

from tests.support import private_redis as module
from tests.support.private_redis import PortTakenError, PrivateRedis, private_redis, start_private_redis


def test_a_port_taken_before_the_server_binds_it_is_refused_not_shared() -> None:
    with private_redis() as other:
        late = PrivateRedis()
        late.port = other.port  # another process bound it between the choice and the start
        try:
            with pytest.raises(PortTakenError):
                late.start()
        finally:
            late.stop()
        assert other.client().ping()  # the other one is untouched


def test_the_start_moves_to_a_new_port_when_the_first_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with private_redis() as other:
        ports = iter([other.port])
        real_unused_port = module.unused_port
        monkeypatch.setattr(module, "unused_port", lambda: next(ports, None) or real_unused_port())
        server = start_private_redis()
        try:
            assert server.port != other.port
            assert int(server.client().info("server")["process_id"]) == server._proc.pid  # type: ignore[union-attr]
        finally:
            server.stop()
