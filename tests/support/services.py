"""Real PostgreSQL and Redis for tests. Under CI=true a missing service fails the test; elsewhere it skips
with a message that says which service is down and how to start it.

Under pytest-xdist every worker runs against its own Redis server (tests/conftest.py starts it and calls
`use_worker_redis`): tests flush their databases and count the server's connections, which a Redis shared
between workers would make race. PostgreSQL is shared: every test gets its own database, copied from one
migrated template per run."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NoReturn

import pytest

PG_HOST = os.environ.get("POSTCALL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("POSTCALL_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("POSTCALL_TEST_PG_USER", "postgres")
_redis_address = (
    os.environ.get("POSTCALL_TEST_REDIS_HOST", "127.0.0.1"),
    int(os.environ.get("POSTCALL_TEST_REDIS_PORT", "6379")),
)

START_HINT = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# Why this process has no Redis to test against (a pytest-xdist worker without redis-server), if so.
_no_redis_because: str | None = None


def redis_address() -> tuple[str, int]:
    """The test Redis: POSTCALL_TEST_REDIS_HOST/PORT, or this pytest-xdist worker's own server."""
    return _redis_address


def use_worker_redis(port: int | None, *, missing: str = "") -> None:
    """Point this process's tests at its own Redis server on 127.0.0.1 (a pytest-xdist worker's), or, with
    no port, at none: tests needing Redis then skip (fail under CI=true) saying `missing`."""
    global _redis_address, _no_redis_because
    if port is None:
        _redis_address, _no_redis_because = ("127.0.0.1", 1), missing  # nothing listens on port 1
    else:
        _redis_address, _no_redis_because = ("127.0.0.1", port), None


def require_service(name: str) -> None:
    if name == "redis" and _no_redis_because:
        skip_or_fail(_no_redis_because)
    host, port = (PG_HOST, PG_PORT) if name == "postgres" else redis_address()
    if _port_open(host, port):
        return
    skip_or_fail(f"{name} is not reachable at {host}:{port}; start it with: {START_HINT[name]}")


def skip_or_fail(message: str) -> NoReturn:
    """Skip with `message`, or fail under CI=true: CI must never pass by skipping what it cannot run."""
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require_binary(name: str, *extra_dirs: str) -> str:
    """The path of an executable; skips (fails under CI=true) when it is not installed."""
    found = shutil.which(name)
    for folder in extra_dirs:
        if found:
            break
        candidate = Path(folder) / name
        found = str(candidate) if candidate.is_file() else None
    if not found:
        skip_or_fail(f"{name} is not installed; tests start their own throwaway server with it")
    return found


def pg_admin_url(database: str = "postgres") -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


@contextmanager
def temporary_pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards (connections terminated first)."""
    import psycopg

    require_service("postgres")
    name = f"postcall_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_admin_url(name)
    finally:
        _drop_pg_database(name)


_migrated_templates: dict[str, str] = {}


def _pg_admin_dsn() -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def shared_pg_template_name(test_run: str) -> str:
    """The migrated template every pytest-xdist worker of test run `test_run` copies from."""
    return f"postcall_template_{test_run}"


def drop_pg_database_if_exists(name: str) -> None:
    """For the end of a run: the database is gone, or PostgreSQL is (nothing to drop then)."""
    import psycopg

    with suppress(psycopg.OperationalError):
        _drop_pg_database(name)


def _migrated_pg_template() -> str:
    """A database migrated to head, copied for every test that wants a migrated one: `CREATE DATABASE ...
    TEMPLATE` copies files in a fraction of the time the migration chain takes. One per test process, or
    under pytest-xdist one per run, shared by the workers (the controller drops it at the end)."""
    if "postgres" not in _migrated_templates:
        test_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
        if test_run:
            name = shared_pg_template_name(test_run)
            _create_shared_template(name)
        else:
            name = f"postcall_template_{uuid.uuid4().hex[:12]}"
            _create_migrated_database(name)
            atexit.register(_drop_pg_database, name)
        _migrated_templates["postgres"] = name
    return _migrated_templates["postgres"]


def _create_migrated_database(name: str) -> None:
    import psycopg

    from app.db.migrate import upgrade

    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(pg_admin_url(name))  # its engine is disposed: nobody stays connected to the template
    except BaseException:
        _drop_pg_database(name)
        raise


def _create_shared_template(name: str) -> None:
    """The first worker to get here migrates the template; the others wait on the advisory lock, then see
    it exists. It is migrated under another name and renamed when complete, so no worker ever copies a
    half-migrated one (and a failed migration leaves nothing behind)."""
    import psycopg

    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        try:
            if lock.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return
            building = f"postcall_building_{uuid.uuid4().hex[:12]}"
            _create_migrated_database(building)
            try:
                lock.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            except BaseException:
                _drop_pg_database(building)
                raise
        finally:
            lock.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))


# Copies are made and dropped on one background thread, so a test neither waits for its own copy (made
# while the test before it ran) nor for the drop of the one before. Each test still gets a fresh copy.
_pg_copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-test-databases")
_spare_copies: list[Future[str]] = []


def _copy_of(template: str) -> str:
    import psycopg

    name = f"postcall_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def _drop_spare_copies() -> None:
    """At exit (the copier has finished its queue by then): the copy made for a test that never came."""
    while _spare_copies:
        spare = _spare_copies.pop()
        with suppress(Exception):  # a copy that failed to be made has nothing to drop
            _drop_pg_database(spare.result())


@contextmanager
def migrated_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database at the head revision (a copy of the migrated template), dropped afterwards."""
    require_service("postgres")
    template = _migrated_pg_template()
    if not _spare_copies:  # the first copy of this process
        atexit.register(_drop_spare_copies)  # runs before the template's drop (atexit is last-in, first-out)
        _spare_copies.append(_pg_copier.submit(_copy_of, template))
    name = _spare_copies.pop().result()  # there is always a spare from here on
    _spare_copies.append(_pg_copier.submit(_copy_of, template))  # the next test's, made while this one runs
    try:
        yield pg_admin_url(name)
    finally:
        _pg_copier.submit(_drop_pg_database, name)


def migrated_sqlite_database(path: str) -> str:
    """A SQLite database at the head revision at `path`: a copy (backup API, WAL included) of a template
    migrated once per test process."""
    from app.db.migrate import upgrade

    if "sqlite" not in _migrated_templates:
        import tempfile

        template = os.path.join(tempfile.mkdtemp(prefix="postcall-template-"), "template.db")
        upgrade(f"sqlite:///{template}")
        _migrated_templates["sqlite"] = template
    with sqlite3.connect(_migrated_templates["sqlite"]) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return f"sqlite:///{path}"


def redis_url(db: int) -> str:
    require_service("redis")
    host, port = redis_address()
    return f"redis://{host}:{port}/{db}"
