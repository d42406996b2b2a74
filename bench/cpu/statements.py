"""Where a processed call's PostgreSQL work goes: backend CPU per call, and per statement (triggers' too).

    .venv/bin/python -m bench.cpu.statements [--calls 200] [--schema 0011] [--schema head] [--rounds 3]
        [--timings immediate] [--timings batched]

The same real calls and zero-delay local model as bench/cpu/run.py go through `process_call` one after
another on a temporary PostgreSQL database per round. `--schema` (repeatable) migrates that database to
a revision (e.g. 0011, the trigger set before 0012) or head; the schemas alternate round after round so
the box's load falls on each alike, and each one's figure is the median of its rounds. The CPU is the
session backend's run time from /proc/<pid>/schedstat (the server runs on this machine).

`--timings` (repeatable, each crossed with each schema) says how the runs' late timings are written:
`batched` (the default) as workers write them, by a `TimingsRecorder` (app/pipeline/timings.py) with
the settings' batch size and interval, written out before the measurement ends; `immediate` one UPDATE
per call, as `postcall process` does. Beside the backend's CPU the report gives this process's (every
thread's, the recorder's included) per call. `--timings-only` processes every call first, holding its
timings, and measures only their writing: the part of a call's cost these options change, without the
rest's noise.

With `--statements`, the server must load pg_stat_statements (`shared_preload_libraries`; a test server
usually does not, so start one of your own and point POSTCALL_TEST_PG_PORT at it): the report then lists
each statement's executions and execution time per call, nested ones (trigger bodies) marked, its plans
and planning time per call (0 unless the server sets `pg_stat_statements.track_planning`: a statement
planned on most executions is one whose generic plan the server rejects), and the trigger functions'
time (`track_functions`). Both add overhead: read CPU figures from runs without it.

`--without-triggers` disables the user triggers of calls, extraction_runs and claims (the counters, ledgers
and rollups; foreign keys are still checked) once migrated: what the same statements cost PostgreSQL
without the work the read paths' counters add (docs/benchmarks.md, "What PostgreSQL <= 1 ms per call would
take"). The stored rollups are then wrong: a measurement, never a configuration.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

import app
from app.config import get_settings
from app.db.migrate import downgrade, upgrade
from app.db.session import make_session_factory
from app.llm.prompt import PromptTemplate
from app.llm.scripted_server import ScriptedOpenAIServer
from app.pipeline.run import claim_group_for, persist_group_for, process_call
from app.pipeline.timings import RunTimings, TimingsRecorder, write_timings_now
from bench.answers.run import PROMPT_NAME, real_transcripts, scripted_provider, store_calls
from bench.cpu.run import answer
from bench.cpu.side import backend_cpu_seconds, engine_with_backend_pids
from bench.databases import analyze_calls
from tests.support.services import PG_HOST, PG_PORT, PG_USER, temporary_pg_database

STATEMENTS = """
    SELECT calls, total_exec_time, toplevel, query, plans, total_plan_time FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time DESC LIMIT %s"""
FUNCTIONS = "SELECT funcname, calls, total_time FROM pg_stat_user_functions ORDER BY total_time DESC"
# A group's wait for company (`--group`): long enough that the calls, processed side by side, fill their groups.
GROUP_WAIT_SECONDS = 0.5
# The tables whose user triggers keep the counters, ledgers and rollups (`--without-triggers`).
TRIGGERED_TABLES = ("calls", "extraction_runs", "claims")


class _Held:
    """Keeps the timings `process_call` hands it, for `--timings-only` to write them afterwards."""

    def __init__(self) -> None:
        self.rows: list[RunTimings] = []

    def record(self, timings: RunTimings) -> None:
        self.rows.append(timings)


def _write(engine: Any, rows: list[RunTimings], timings: str) -> None:
    """Write `rows` as `process_call` would have: one at a time, or through a recorder."""
    if timings == "immediate":
        for row in rows:
            write_timings_now(engine, [row])
        return
    settings = get_settings()
    recorder = TimingsRecorder(engine, batch_size=settings.timings_batch_size,
                               flush_seconds=settings.timings_flush_seconds)
    for row in rows:
        recorder.record(row)
    recorder.close()


def measure(schema: str, timings: str, transcripts: list[Any], base_url: str, warmup: int,
            statements: int, timings_only: bool = False, analyze: bool = False,
            without_triggers: bool = False, group: int = 1) -> dict[str, Any]:
    """Process the calls on a fresh database at `schema`, their timings written `timings` (batched or
    immediate); the backend's and this process's CPU per measured call, and the statement and function
    lines when `statements` asks for that many. With `timings_only`, every call is processed first, its
    timings held, and only their writing is measured. With `analyze`, calls is analyzed once stored
    (bench/databases.py `analyze_calls`)."""
    settings = get_settings()
    prompt = PromptTemplate.load(Path(app.__file__).resolve().parents[1] / "prompts", PROMPT_NAME)
    provider = scripted_provider(get_settings(), base_url)
    measured = len(transcripts) - warmup
    with temporary_pg_database() as url:
        upgrade(url)
        if schema != "head":
            downgrade(url, schema)
        database = url.rsplit("/", 1)[1]
        admin_dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"
        if without_triggers:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                for table in TRIGGERED_TABLES:
                    admin.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        if statements:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                # For the sessions opened from now on: trigger bodies' statements and functions counted.
                admin.execute(f'ALTER DATABASE "{database}" SET pg_stat_statements.track = \'all\'')
                admin.execute(f'ALTER DATABASE "{database}" SET track_functions = \'pl\'')
        engine, pids = engine_with_backend_pids(url, connections=max(10, group))
        factory = make_session_factory(engine)
        call_ids = store_calls(factory, transcripts)
        if analyze:
            analyze_calls(engine)
        recorder = TimingsRecorder(engine, batch_size=settings.timings_batch_size,
                                   flush_seconds=settings.timings_flush_seconds) if timings == "batched" else None
        held = _Held()
        if timings_only:
            for call_id in call_ids:
                process_call(factory, call_id, provider, prompt, timings=held)  # type: ignore[arg-type]
            _write(engine, held.rows[:warmup], timings)
        persist_group = persist_group_for(factory, max_calls=group, wait_seconds=GROUP_WAIT_SECONDS)
        claim_group = claim_group_for(factory, max_calls=group, wait_seconds=GROUP_WAIT_SECONDS)

        def process(ids: list[str]) -> None:
            if persist_group is None:
                for call_id in ids:
                    process_call(factory, call_id, provider, prompt, timings=recorder)
                return
            # Side by side, as a threaded worker's slots: claimed and their results stored `group` to a transaction.
            with ThreadPoolExecutor(max_workers=group) as pool:
                list(pool.map(lambda call_id: process_call(factory, call_id, provider, prompt, timings=recorder,
                                                           claim_group=claim_group, persist_group=persist_group),
                              ids))

        if not timings_only:
            process(call_ids[:warmup])
        if recorder is not None:
            recorder.flush()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            if statements:
                admin.execute("SELECT pg_stat_statements_reset(), pg_stat_reset()")
            known = set(pids)
            before = backend_cpu_seconds(known)
            started, process_started = time.perf_counter(), time.process_time()
            if not timings_only:
                process(call_ids[warmup:])
            if timings_only:
                _write(engine, held.rows[warmup:], timings)
            if recorder is not None:
                recorder.close()  # the last batch belongs to these calls
            wall = time.perf_counter() - started
            process_cpu = time.process_time() - process_started
            cpu = backend_cpu_seconds(known) - before + backend_cpu_seconds(pids - known)
            lines: list[str] = []
            if statements:
                time.sleep(0.6)  # the statistics collector's flush of function counts
                for name, calls, total in admin.execute(FUNCTIONS):
                    lines.append(f"  function {name:34} {calls / measured:5.2f} per call {total / measured:7.3f} ms")
                for calls, total, toplevel, query, plans, plan_time in admin.execute(STATEMENTS, (statements,)):
                    text = " ".join(query.split())[:110]
                    nested = "" if toplevel else "nested "
                    lines.append(f"  {nested}{calls / measured:5.2f} x {total / measured:7.3f} ms "
                                 f"(plans {plans / measured:4.2f}, {plan_time / measured:6.3f} ms)  {text}")
        engine.dispose()
    for name, made in (("claims", claim_group), ("results", persist_group)):
        if made is not None:
            stats = made.stats
            lines.append(f"  {name}: {stats.groups} groups holding {stats.pieces} (largest {stats.largest}, "
                         f"{stats.written_alone} alone)")
    return {"cpu_ms": 1000 * cpu / measured, "process_cpu_ms": 1000 * process_cpu / measured,
            "wall_ms": 1000 * wall / measured, "lines": lines}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--schema", action="append", help="a migration revision or head (repeatable; default head)")
    parser.add_argument("--timings", action="append", choices=["batched", "immediate"],
                        help="how runs' late timings are written (repeatable; default batched, as workers do)")
    parser.add_argument("--timings-only", action="store_true",
                        help="measure only the writing of the calls' late timings (processed beforehand)")
    parser.add_argument("--statements", type=int, default=0, metavar="N",
                        help="list the N costliest statements (needs pg_stat_statements loaded)")
    parser.add_argument("--analyze-calls", action="store_true",
                        help="ANALYZE calls once they are stored (bench/databases.py `analyze_calls` says why)")
    parser.add_argument("--group", type=int, action="append",
                        help="calls claimed and their results stored N to a transaction, processed in N threads "
                             "(group commit; repeatable; default 1: one by one)")
    parser.add_argument("--without-triggers", action="store_true",
                        help="disable the user triggers of calls, extraction_runs and claims (a measurement only)")
    args = parser.parse_args(argv)
    sides = [(schema, timings, group) for schema in args.schema or ["head"] for timings in args.timings or ["batched"]
             for group in args.group or [1]]
    transcripts = real_transcripts(args.warmup + args.calls)
    results: dict[tuple[str, str, int], list[dict[str, Any]]] = {side: [] for side in sides}
    with ScriptedOpenAIServer(answer) as server:
        for number in range(args.rounds):
            for schema, timings, group in sides:
                result = measure(schema, timings, transcripts, server.base_url, args.warmup, args.statements,
                                 args.timings_only, args.analyze_calls, args.without_triggers, group)
                results[(schema, timings, group)].append(result)
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"round {number + 1} schema {schema} timings {timings} group {group}: PostgreSQL backend CPU "
                      f"{result['cpu_ms']:.2f} ms per call, this process {result['process_cpu_ms']:.2f} ms, "
                      f"wall {result['wall_ms']:.1f} ms, load {load}")
                for line in result["lines"]:
                    print(line)
    for (schema, timings, group), rounds in results.items():
        figures = [r["cpu_ms"] for r in rounds]
        process = [r["process_cpu_ms"] for r in rounds]
        print(f"schema {schema} timings {timings} group {group}: median PostgreSQL backend CPU "
              f"{statistics.median(figures):.2f} ms per call ({', '.join(f'{cpu:.2f}' for cpu in figures)}), "
              "this process "
              f"{statistics.median(process):.2f} ms ({', '.join(f'{cpu:.2f}' for cpu in process)}) over "
              f"{len(rounds)} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
