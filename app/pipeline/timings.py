"""A run's whole-call timings (db_ms, total_ms, cpu_ms), measured once its result was committed, and how
they are written: now (one UPDATE per run) or in batches by a `TimingsRecorder`.

Each timing UPDATE costs the database a statement and the triggers' counter work, and the writer a
connection checkout and a commit. A worker process hands its timings to one `TimingsRecorder`, whose
thread writes them every `timings_flush_seconds` or every `timings_batch_size` runs as ONE statement
(on PostgreSQL migration 0017's statement trigger then moves the counters once per batch). A timing is
a measurement, not a result: one that cannot be written is logged and dropped, and a crash loses what
was not yet written (normally less than one batch), never a result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from app.pipeline.persist import record_timings

logger = logging.getLogger(__name__)

# A fixed-shape statement whatever the batch's size (four arrays), so PostgreSQL parses and plans it once
# per connection, as psycopg prepares a statement it sees repeatedly.
_BATCH_UPDATE_POSTGRESQL = text(
    "UPDATE extraction_runs AS r SET db_ms = t.db_ms, total_ms = t.total_ms, cpu_ms = t.cpu_ms "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:db AS double precision[]), CAST(:total AS double precision[]), "
    "CAST(:cpu AS double precision[])) AS t(id, db_ms, total_ms, cpu_ms) WHERE r.id = t.id"
).bindparams(bindparam("ids"), bindparam("db"), bindparam("total"), bindparam("cpu"))


@dataclass(frozen=True)
class RunTimings:
    run_id: int
    db_ms: float
    total_ms: float
    cpu_ms: float


def write_timings(connection: Connection, rows: Sequence[RunTimings]) -> None:
    """Write the timings of `rows`. PostgreSQL: one UPDATE for all of them (a single run: the plain
    UPDATE by key); SQLite (one writer, no server to spare): the single-run UPDATE, executed for each.
    Runs in id order, so two writers lock runs in one order; a run listed twice keeps its last timings."""
    latest = {row.run_id: row for row in rows}
    ordered = [latest[run_id] for run_id in sorted(latest)]
    if not ordered:
        return
    if connection.dialect.name == "postgresql" and len(ordered) > 1:
        connection.execute(_BATCH_UPDATE_POSTGRESQL, {
            "ids": [r.run_id for r in ordered], "db": [r.db_ms for r in ordered],
            "total": [r.total_ms for r in ordered], "cpu": [r.cpu_ms for r in ordered],
        })
        return
    for row in ordered:
        record_timings(connection, row.run_id, db_ms=row.db_ms, total_ms=row.total_ms, cpu_ms=row.cpu_ms)


def write_timings_now(engine: Engine, rows: Sequence[RunTimings]) -> bool:
    """Write `rows` in autocommit (one statement is atomic on its own: BEGIN and COMMIT would be two more
    round trips). A failure is logged, not raised; returns whether they were written."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            write_timings(connection, rows)
        return True
    except SQLAlchemyError:
        logger.warning("could not record the timings of runs %s", [r.run_id for r in rows], exc_info=True)
        return False


class _Flush:
    """A request, queued behind the timings before it, to write them all now."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class TimingsRecorder:
    """Collects runs' timings and writes them in batches from a daemon thread of its own (started by the
    first `record`). `close` writes what is left; a process that dies without it loses what was queued."""

    def __init__(self, engine: Engine, *, batch_size: int, flush_seconds: float) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue[RunTimings | _Flush | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches_written = 0  # statements sent, for the bench and the tests

    def record(self, timings: RunTimings) -> None:
        """Queue a run's timings; they are written within `flush_seconds`. After `close`, written now."""
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._start()
                self._queue.put(timings)
        if closed:
            self._write([timings])

    def flush(self, timeout: float | None = None) -> bool:
        """Write every timing recorded so far before returning; False if that took past `timeout`."""
        with self._lock:
            if self._thread is None or self._closed:
                return True  # nothing queued (`close` wrote what was)
            request = _Flush()
            self._queue.put(request)
        return request.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread. Idempotent; later `record`s write at once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("the timings writer did not finish within %.0f s; some timings may be lost", timeout)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="postcall-timings", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            batch: list[RunTimings] = []
            item = self._queue.get()
            deadline = time.monotonic() + self.flush_seconds
            stop = False
            flushes: list[_Flush] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                elif isinstance(item, RunTimings):
                    batch.append(item)
                if stop or flushes or len(batch) >= self.batch_size:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for request in flushes:
                request.done.set()
            if stop:
                return

    def _write(self, batch: list[RunTimings]) -> None:
        try:
            if write_timings_now(self.engine, batch):
                self.batches_written += 1
        except Exception:  # a bug must not stop the thread: every later timing would wait forever
            logger.exception("could not record the timings of runs %s", [r.run_id for r in batch])
