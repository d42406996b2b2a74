"""One side of the CPU benchmark: `process_call` in-process on PostgreSQL, calls one after another.

Run by bench/cpu/run.py with the working directory set to the checkout under test (this one, or a clean
copy of main), so the same measurement runs against both versions of the code. Per call it takes the
main thread's CPU time (`time.thread_time`) of each stage, and the CPU the session's PostgreSQL backend
spent (its run time in /proc/<pid>/schedstat: the server runs on this machine).

Stages are timed by wrapping the functions `process_call` calls through its module: what is left of the
call's CPU once claim, redaction, the provider, verification and de-duplication are taken out is the
persist step (including the hand-off record and the commits).

With `--timings batched` (what workers do; a version without app/pipeline/timings.py writes them at once
whatever this says) the runs' late timings go to a `TimingsRecorder`, whose thread writes them outside
the calls' own CPU: the loop's figures (`loop_process_cpu_ms_per_call`, `loop_backend_cpu_ms_per_call`:
this process's every thread, and every backend, from the first measured call to the last batch written)
are then the ones to compare.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

import app
import app.pipeline.run as pipeline_run
from app.config import get_settings
from app.db.migrate import upgrade
from app.db.session import create_db_engine, make_session_factory
from app.llm.prompt import PromptTemplate
from app.schemas.transcript import Transcript
from bench.answers.run import PROMPT_NAME, scripted_provider, store_calls
from bench.answers.stored import dump_calls, write_dump
from tests.support.services import temporary_pg_database

# Functions of app.pipeline.run timed as stages (those absent in a version are skipped).
TOP_STAGES = {"_claim": "claim", "redact_transcript": "redact", "verify_extraction": "verify",
              "deduplicate": "dedup"}
# Parts of the persist step, timed inside it where the version calls them through the module.
PERSIST_PARTS = {"add_run": "persist.run", "add_claims": "persist.claims", "record_event": "persist.handoff_event",
                 "write_succeeded_run": "persist.write"}


class StageClock:
    """Main-thread CPU seconds per stage for the call being processed."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    def wrap(self, function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[stage] += time.thread_time() - started
        return timed


def backend_cpu_seconds(pids: set[int]) -> float:
    """CPU seconds the backends have run, from /proc/<pid>/schedstat (nanoseconds; /proc/<pid>/stat
    counts in 10 ms ticks, too coarse for a call's share)."""
    total = 0
    for pid in list(pids):  # a copy: a connection opening meanwhile (another thread) adds to the set
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except FileNotFoundError:
            continue  # a backend that closed: its CPU up to the last reading is already counted
    return total / 1e9


def engine_with_backend_pids(url: str, *, connections: int = 10) -> tuple[Engine, set[int]]:
    """An engine for `url`, and the set its connections add their PostgreSQL backend's pid to. Its pool keeps
    `connections` open and opens no more: a connection closed on its way back to the pool (an overflow) would
    take its backend's CPU with it, uncounted."""
    engine = create_db_engine(url, pool_size=connections, max_overflow=0)
    backend_pids: set[int] = set()

    @event.listens_for(engine, "connect")
    def _remember_backend(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pids.add(cursor.fetchone()[0])
        dbapi_connection.commit()

    return engine, backend_pids


def _recorder(engine: Engine, timings: str) -> tuple[Any, str]:
    """A `TimingsRecorder` with the settings' batch size and interval when asked for and the version under
    test has one; and how this side writes the timings."""
    if timings != "batched" or importlib.util.find_spec("app.pipeline.timings") is None:
        return None, "immediate"
    from app.pipeline.timings import TimingsRecorder

    settings = get_settings()
    return TimingsRecorder(engine, batch_size=settings.timings_batch_size,
                           flush_seconds=settings.timings_flush_seconds), "batched"


def _freeze_as_workers_do() -> bool:
    """What a worker does once set up, before its first call, when the version under test does it: its
    startup objects frozen out of the garbage collector's reach (app/worker/tasks.py)."""
    try:
        from app.worker.tasks import freeze_startup_objects  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return False
    freeze_startup_objects()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls-file", type=Path, required=True, help="JSON list of [external_id, transcript]")
    parser.add_argument("--base-url", required=True, help="the local model server")
    parser.add_argument("--warmup", type=int, default=20, help="calls processed first and not measured")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dump", type=Path, help="write every stored result here (bench/answers/stored.py)")
    parser.add_argument("--timings", choices=["batched", "immediate"], default="batched",
                        help="how runs' late timings are written (default batched, as workers do)")
    args = parser.parse_args(argv)

    raw = json.loads(args.calls_file.read_text(encoding="utf-8"))
    transcripts = [(external_id, Transcript.model_validate(body)) for external_id, body in raw]
    settings = get_settings()
    prompt = PromptTemplate.load(Path(app.__file__).resolve().parents[1] / "prompts", PROMPT_NAME)
    clock = StageClock()
    for name, stage in {**TOP_STAGES, **PERSIST_PARTS}.items():
        if hasattr(pipeline_run, name):
            setattr(pipeline_run, name, clock.wrap(getattr(pipeline_run, name), stage))
    provider = scripted_provider(settings, args.base_url)
    provider.extract = clock.wrap(provider.extract, "provider")  # type: ignore[method-assign]
    provider.repair = clock.wrap(provider.repair, "provider")  # type: ignore[method-assign]

    with temporary_pg_database() as url:
        upgrade(url)
        engine, backend_pids = engine_with_backend_pids(url)
        factory = make_session_factory(engine)
        call_ids = store_calls(factory, transcripts)
        recorder, timings = _recorder(engine, args.timings)
        frozen = _freeze_as_workers_do()
        extra = {"timings": recorder} if recorder is not None else {}
        per_call: list[dict[str, float]] = []
        backend_seconds = 0.0
        loop_started: tuple[float, float, set[int]] | None = None
        for number, call_id in enumerate(call_ids):
            if number == args.warmup:
                if recorder is not None:
                    recorder.flush()  # the warm-up's timings are not the measured calls' work
                loop_started = (time.process_time(), backend_cpu_seconds(backend_pids), set(backend_pids))
            clock.current.clear()
            backend_before = backend_cpu_seconds(backend_pids)
            pids_before = set(backend_pids)
            thread_started, process_started, wall_started = time.thread_time(), time.process_time(), time.perf_counter()
            pipeline_run.process_call(factory, call_id, provider, prompt, **extra)
            thread_cpu = time.thread_time() - thread_started
            process_cpu = time.process_time() - process_started
            wall = time.perf_counter() - wall_started
            new_pids = backend_pids - pids_before
            backend = backend_cpu_seconds(pids_before) - backend_before + backend_cpu_seconds(new_pids)
            if number < args.warmup:
                continue
            backend_seconds += backend
            stages = dict(clock.current)
            top = sum(stages.get(stage, 0.0) for stage in (*TOP_STAGES.values(), "provider"))
            stages["persist"] = thread_cpu - top
            stages["total"] = thread_cpu
            stages["process_cpu"] = process_cpu
            stages["wall"] = wall
            per_call.append(stages)
        if recorder is not None:
            recorder.close()  # the last batch belongs to the measured calls
        assert loop_started is not None, "no call measured"
        process_before, backend_before, pids_before = loop_started
        loop_process = time.process_time() - process_before
        loop_backend = (backend_cpu_seconds(pids_before) - backend_before
                        + backend_cpu_seconds(backend_pids - pids_before))
        if args.dump:
            with factory() as session:
                write_dump(dump_calls(session, call_ids), args.dump)
        engine.dispose()

    names = sorted({name for stages in per_call for name in stages})
    result = {
        "app": str(Path(app.__file__).resolve().parent),
        "calls": len(per_call),
        "p50_ms": {name: 1000 * statistics.median(s.get(name, 0.0) for s in per_call) for name in names},
        "mean_ms": {name: 1000 * statistics.fmean(s.get(name, 0.0) for s in per_call) for name in names},
        "postgres_backend_cpu_ms_per_call": 1000 * backend_seconds / max(1, len(per_call)),
        "postgres_sessions": len(backend_pids),
        "timings": timings,
        "heap_frozen": frozen,
        "loop_process_cpu_ms_per_call": 1000 * loop_process / max(1, len(per_call)),
        "loop_backend_cpu_ms_per_call": 1000 * loop_backend / max(1, len(per_call)),
    }
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
