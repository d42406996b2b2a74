"""Migration 0021: new outbox payloads are compressed with lz4 on PostgreSQL (older ones stay pglz, and both
read back as written); its downgrade returns the column to the server's default compression."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory
from tests.db.test_calls_trigger_when_migration import _write
from tests.support.analytics import build_world
from tests.support.old_schema import todays_code
from tests.support.services import temporary_pg_database

BEFORE = "0020"
COMPRESSION = text("SELECT attcompression FROM pg_attribute "
                   "WHERE attrelid = 'outbox'::regclass AND attname = 'payload'")
# Each compressed payload's method (NULL: stored as it is, below the size PostgreSQL compresses at).
METHODS = text("SELECT pg_column_compression(payload), COUNT(*) FROM outbox GROUP BY 1")
PAYLOADS = text("SELECT id, payload::text FROM outbox ORDER BY id")


@pytest.fixture
def url_before() -> Iterator[str]:
    with temporary_pg_database() as url:
        upgrade(url, BEFORE)
        yield url


def test_new_payloads_are_lz4_and_every_payload_reads_back(url_before: str) -> None:
    url = url_before
    engine = create_db_engine(url)
    try:
        with todays_code(engine):
            build_world(make_session_factory(engine))  # events written with pglz
        with engine.connect() as conn:
            assert conn.execute(COMPRESSION).scalar_one() == ""  # the server's default
            methods = dict(conn.execute(METHODS).all())
            written = conn.execute(PAYLOADS).all()
        assert methods.get("pglz"), methods  # payloads large enough to be compressed
        assert "lz4" not in methods

        upgrade(url)
        with engine.connect() as conn:
            assert conn.execute(COMPRESSION).scalar_one() == "l"
            assert conn.execute(PAYLOADS).all() == written  # the old values untouched
        _write(url, 1)  # a call reprocessed (its event's payload compressed) and one deleted
        with engine.connect() as conn:
            methods_after = dict(conn.execute(METHODS).all())
            payloads = conn.execute(PAYLOADS).all()
        assert methods_after.get("lz4"), methods_after
        old = dict(written)
        new = [payload for event_id, payload in payloads if event_id not in old]
        assert new and all(json.loads(payload) for payload in new)  # the lz4 ones read back whole

        downgrade(url, BEFORE)
        with engine.connect() as conn:
            assert conn.execute(COMPRESSION).scalar_one() == ""
            assert conn.execute(PAYLOADS).all() == payloads  # lz4 values still read after the downgrade
    finally:
        engine.dispose()
