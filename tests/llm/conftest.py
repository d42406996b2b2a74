"""Fixtures shared by the provider's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm.raw_http_server import RawHTTPServer


@pytest.fixture
def raw_server() -> Iterator[RawHTTPServer]:
    """A local HTTP server that records the raw bytes of each request and answers as scripted."""
    server = RawHTTPServer().start()
    try:
        yield server
    finally:
        server.stop()
