"""One side of the ingest CPU benchmark: real calls handed over as the API does, one after another.

Run by bench/ingest_cpu/run.py with the working directory set to the checkout under test. Per call it
takes the main thread's CPU time (`time.thread_time`) of parsing the transcript file's bytes
(`parse_bytes`, auto-detected) and of storing it as a queued call and committing (`store_transcript` in
one unit of work, what `POST /api/calls` and `postcall ingest` do), and the CPU the session's PostgreSQL
backend spent over the measured calls (/proc/<pid>/schedstat). Every call is new (a fresh database).
Writes the figures, and a dump of every stored call and utterance (ids and times left out) to compare
the sides' results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.db.migrate import upgrade
from app.db.session import make_session_factory, unit_of_work
from app.ingest import parse_bytes
from app.pipeline.store import store_transcript
from bench.cpu.side import backend_cpu_seconds, engine_with_backend_pids
from tests.support.services import temporary_pg_database

TENANT = "acme"
# Columns that differ between two runs of the same input (generated ids and moments).
_CALL_COLUMNS = ("external_id", "agent_id", "team", "started_at", "language", "source_format", "source_name",
                 "transcript_hash", "vendor_hints", "ingest_warnings", "state", "attempts", "llm_mode",
                 "llm_batch_id", "current_run_id", "review_rank", "flagged_items", "last_error", "case_note")
_JSON_COLUMNS = ("vendor_hints", "ingest_warnings")


def stored_dump(connection: Any) -> list[dict[str, Any]]:
    # JSON columns as text: a JSON null and an SQL NULL read back alike otherwise.
    columns = ", ".join(f"{name}::text AS {name}" if name in _JSON_COLUMNS else name for name in _CALL_COLUMNS)
    calls = connection.execute(text(
        f"SELECT id, {columns} FROM calls ORDER BY external_id")).mappings().all()
    utterances: dict[str, list[list[Any]]] = {}
    for row in connection.execute(text(
            "SELECT call_id, index, speaker, role, role_confidence, start_s, end_s, text FROM utterances "
            "ORDER BY call_id, index")):
        utterances.setdefault(row[0], []).append(list(row[1:]))
    counts = connection.execute(text(
        "SELECT sum(calls_queued) FROM call_counts")).scalar_one()
    return [{**{name: (str(call[name]) if call[name] is not None else None) for name in _CALL_COLUMNS},
             "utterances": utterances.get(call["id"], []), "queued_counted": int(counts or 0)}
            for call in calls]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=Path, required=True, help="JSON list of [external id, file text]")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dump", type=Path)
    args = parser.parse_args()
    files = [(external_id, body.encode()) for external_id, body in json.loads(args.files.read_text("utf-8"))]
    with ExitStack() as stack:
        url = stack.enter_context(temporary_pg_database())
        upgrade(url)
        engine, backend_pids = engine_with_backend_pids(url)
        stack.callback(engine.dispose)
        factory = make_session_factory(engine)
        parse_ms: list[float] = []
        store_ms: list[float] = []
        backend_start = 0.0
        for number, (external_id, data) in enumerate(files):
            if number == args.warmup:
                backend_start = backend_cpu_seconds(backend_pids)
            started = time.thread_time()
            transcript = parse_bytes(data, source_name=external_id).transcript
            parsed = time.thread_time()
            with unit_of_work(factory) as session:
                store_transcript(session, transcript, tenant=TENANT, external_id=external_id,
                                 source_name=external_id)
            stored = time.thread_time()
            if number >= args.warmup:
                parse_ms.append((parsed - started) * 1000)
                store_ms.append((stored - parsed) * 1000)
        measured = len(files) - args.warmup
        backend_ms = (backend_cpu_seconds(backend_pids) - backend_start) * 1000 / measured
        if args.dump:
            with engine.connect() as connection:
                args.dump.write_text(json.dumps(stored_dump(connection)), encoding="utf-8")
    args.out.write_text(json.dumps({
        "calls": measured,
        "parse_ms": statistics.median(parse_ms),
        "store_ms": statistics.median(store_ms),
        "store_mean_ms": statistics.fmean(store_ms),
        "backend_ms": backend_ms,
    }), encoding="utf-8")


if __name__ == "__main__":
    main()
