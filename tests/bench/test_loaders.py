"""The benchmark loaders fill a fresh PostgreSQL database the way their docs say: rows written at the
revision before the counter triggers (0009), then migrated to the head, whose backfills fill what later
revisions added (claims.tenant_id from the claim's call, among others)."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import make_url

from app.config import PROJECT_ROOT
from app.db.migrate import alembic_config
from tests.support.services import temporary_pg_database

CALLS = 300
CLAIMS_PER_CALL = 3


@pytest.mark.parametrize("loader", ["bench.analysts.load", "bench.reads.load"])
def test_a_loader_fills_a_fresh_database_and_migrates_it_to_the_head(loader: str) -> None:
    with temporary_pg_database() as url:
        done = subprocess.run(
            [sys.executable, "-m", loader, "--url", url, "--calls", str(CALLS),
             "--claims-per-call", str(CLAIMS_PER_CALL)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        parsed = make_url(url)
        dsn = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"
        with psycopg.connect(dsn) as conn:
            (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
            calls = conn.execute("SELECT count(*) FROM calls").fetchone()
            succeeded_runs = conn.execute(
                "SELECT count(*) FROM extraction_runs WHERE status = 'succeeded'").fetchone()
            claims = conn.execute("SELECT count(*) FROM claims").fetchone()
            strays = conn.execute(
                "SELECT count(*) FROM claims cl JOIN calls c ON c.id = cl.call_id "
                "WHERE cl.tenant_id IS DISTINCT FROM c.tenant_id").fetchone()
            tenants = conn.execute("SELECT count(DISTINCT tenant_id) FROM claims").fetchone()
    assert revision == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert calls == (CALLS,)
    assert succeeded_runs is not None and succeeded_runs[0] >= CALLS * 0.9
    assert claims == (succeeded_runs[0] * CLAIMS_PER_CALL,)
    assert strays == (0,) and tenants == (2,)
