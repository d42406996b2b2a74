"""Runs' whole-call timings written in batches (`TimingsRecorder`, as workers do) or at once (everyone
else): when each batch goes, what a stop writes out, what a failed write does, and that the stored values
are the ones `process_call` measured."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import create_db_engine, unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.models import ExtractionRun
from app.pipeline.run import process_call
from app.pipeline.timings import RunTimings, TimingsRecorder
from tests.models.test_rollups import assert_rollups_match
from tests.pipeline.test_counts import _check
from tests.pipeline.test_run import _prompt, _store
from tests.support.processes import wait_until


class _Capturing(TimingsRecorder):
    """A recorder that also keeps what it was handed."""

    def __init__(self, engine: Engine, *, batch_size: int, flush_seconds: float) -> None:
        super().__init__(engine, batch_size=batch_size, flush_seconds=flush_seconds)
        self.recorded: list[RunTimings] = []

    def record(self, timings: RunTimings) -> None:
        self.recorded.append(timings)
        super().record(timings)


def _engine(factory: sessionmaker[Session]) -> Engine:
    engine: Engine = factory.kw["bind"]
    return engine


def _process(factory: sessionmaker[Session], count: int, recorder: TimingsRecorder | None) -> list[int]:
    """Process `count` new calls; their runs' ids."""
    run_ids = []
    with unit_of_work(factory) as session:
        known = session.scalar(select(func.count()).select_from(ExtractionRun)) or 0
    for number in range(known, known + count):
        call_id = _store(factory, external_id=f"call-{number}")
        outcome = process_call(factory, call_id, HeuristicProvider(), _prompt(), timings=recorder)
        assert outcome.run_id is not None
        run_ids.append(outcome.run_id)
    return run_ids


def _stored(factory: sessionmaker[Session], run_ids: list[int]) -> dict[int, tuple[float | None, ...]]:
    with unit_of_work(factory) as session:
        rows = session.execute(select(ExtractionRun.id, ExtractionRun.db_ms, ExtractionRun.total_ms,
                                      ExtractionRun.cpu_ms).where(ExtractionRun.id.in_(run_ids))).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _written(factory: sessionmaker[Session], run_ids: list[int]) -> set[int]:
    return {run_id for run_id, values in _stored(factory, run_ids).items() if values[1] is not None}


def test_a_full_batch_goes_at_once_and_the_rest_waits_for_the_interval_or_a_flush(
    session_factory: sessionmaker[Session],
) -> None:
    recorder = _Capturing(_engine(session_factory), batch_size=3, flush_seconds=3600)
    try:
        run_ids = _process(session_factory, 7, recorder)
        # Two full batches of three are written without waiting; the seventh waits for its interval.
        assert wait_until(lambda: recorder.batches_written == 2, timeout=10)
        assert _written(session_factory, run_ids) == set(run_ids[:6])
        assert recorder.flush(timeout=10)
        assert _written(session_factory, run_ids) == set(run_ids)
        assert recorder.batches_written == 3
        # What was stored is what process_call measured, to the bit (as it would have written it at once).
        stored = _stored(session_factory, run_ids)
        assert {r.run_id: (r.db_ms, r.total_ms, r.cpu_ms) for r in recorder.recorded} == stored
        assert all(0 < db <= total and 0 < cpu <= total for db, total, cpu in stored.values())  # type: ignore[operator]
    finally:
        recorder.close()
    assert_rollups_match(session_factory)
    with session_factory() as session:
        _check(session, [])


def test_timings_are_written_within_the_interval_unasked(session_factory: sessionmaker[Session]) -> None:
    recorder = TimingsRecorder(_engine(session_factory), batch_size=100, flush_seconds=0.2)
    try:
        run_ids = _process(session_factory, 2, recorder)
        assert wait_until(lambda: _written(session_factory, run_ids) == set(run_ids), timeout=10)
        assert recorder.batches_written in (1, 2)  # one batch, or two if the interval ended between them
    finally:
        recorder.close()


def test_close_writes_what_is_queued_and_later_timings_at_once(session_factory: sessionmaker[Session]) -> None:
    recorder = TimingsRecorder(_engine(session_factory), batch_size=100, flush_seconds=3600)
    run_ids = _process(session_factory, 3, recorder)
    assert _written(session_factory, run_ids) == set()  # queued for an hour
    recorder.close()
    assert _written(session_factory, run_ids) == set(run_ids)
    assert recorder.batches_written == 1  # the three in one statement
    assert recorder._thread is not None and not recorder._thread.is_alive()
    # A task that finishes after the stop (none should) still gets its timings stored.
    (late,) = _process(session_factory, 1, recorder)
    assert _written(session_factory, [late]) == {late}
    recorder.close()  # a second stop is harmless


def test_without_a_recorder_timings_are_stored_before_process_call_returns(
    session_factory: sessionmaker[Session],
) -> None:
    (run_id,) = _process(session_factory, 1, None)
    assert _written(session_factory, [run_id]) == {run_id}


def test_a_failed_write_is_logged_and_the_writer_goes_on(
    session_factory: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    broken = create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every write fails
    recorder = TimingsRecorder(broken, batch_size=100, flush_seconds=3600)
    try:
        with caplog.at_level(logging.WARNING, logger="app.pipeline.timings"):
            run_ids = _process(session_factory, 1, recorder)  # the call is processed, nothing raised
            assert recorder.flush(timeout=10)
        assert "could not record the timings of runs" in caplog.text
        assert recorder.batches_written == 0 and _written(session_factory, run_ids) == set()
        # The thread survived the failure: the next batch, with the database back, is written.
        recorder.engine = _engine(session_factory)
        more = _process(session_factory, 1, recorder)
        assert recorder.flush(timeout=10)
        assert _written(session_factory, more) == set(more)
    finally:
        recorder.close()
        broken.dispose()
