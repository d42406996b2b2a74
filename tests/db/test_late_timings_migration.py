"""Migration 0017 moves a run's late timings (db_ms, total_ms alone) from 0012's row trigger to a statement
trigger on PostgreSQL; its downgrade puts the row trigger back as 0012 made it. On a database with rows it
changes no data, and the counters and ledgers keep equalling the aggregates of the rows either way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text

from app.db.migrate import downgrade, upgrade
from app.db.session import create_db_engine, make_session_factory
from app.models import RunRollup
from app.pipeline.timings import TimingsRecorder
from tests.db.test_trigger_work_migration import _assert_counts_match
from tests.pipeline.test_timings import _process
from tests.support.analytics import build_world
from tests.support.old_schema import todays_code
from tests.support.services import temporary_pg_database

TRIGGERS = text("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid = 'extraction_runs'::regclass AND NOT tgisinternal")


@pytest.fixture
def url_at_0016() -> Iterator[str]:
    with temporary_pg_database() as url:
        upgrade(url, "0016")
        yield url


def _triggers(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(TRIGGERS).all())  # type: ignore[arg-type]


def _ledger_rows(engine: Engine) -> int:
    with make_session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(RunRollup)) or 0


def test_upgrade_and_downgrade_swap_the_late_timings_trigger_and_keep_the_counts(url_at_0016: str) -> None:
    url = url_at_0016
    engine = create_db_engine(url)
    try:
        factory = make_session_factory(engine)
        with todays_code(engine):
            build_world(factory)  # written through 0016's triggers
        before = _triggers(engine)
        assert "runs_late_timings" not in before and "db_ms" in before["runs_ledgers_change"]
        _assert_counts_match(url)

        upgrade(url)
        after = _triggers(engine)
        assert set(after) == {*before, "runs_late_timings"}
        assert "FOR EACH STATEMENT" in after["runs_late_timings"]
        assert "db_ms" not in after["runs_ledgers_change"] and "total_ms" not in after["runs_ledgers_change"]
        assert "status" in after["runs_ledgers_change"]  # every other column still moves the row trigger
        _assert_counts_match(url)  # nothing was rewritten

        # Three calls processed now, their timings written in one statement: their runs share a ledger key
        # (tenant, day, team, model, prompt, status), so the statement adds one ledger row, not two per run.
        recorder = TimingsRecorder(engine, batch_size=100, flush_seconds=3600)
        run_ids = _process(factory, 3, recorder)
        rows = _ledger_rows(engine)
        recorder.close()
        assert recorder.batches_written == 1
        assert _ledger_rows(engine) == rows + 1
        _assert_counts_match(url)

        downgrade(url, "0016")
        assert _triggers(engine) == before
        _assert_counts_match(url)
        # Late timings through 0016's row trigger again: two ledger rows per run.
        rows = _ledger_rows(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE extraction_runs SET db_ms = db_ms + 1, total_ms = total_ms + 1 "
                              "WHERE id = ANY(:ids)"), {"ids": run_ids})
        assert _ledger_rows(engine) == rows + 2 * len(run_ids)
        _assert_counts_match(url)
    finally:
        engine.dispose()
