"""CPU per call of `process_call` in one process at several thread counts and switch intervals, alternated.

    .venv/bin/python -m bench.throughput.threads --threads 4,32,128,315 --calls 300 --rounds 2 --delay 0.2

Each setting runs its own `--calls` stored calls through `process_call` on that many threads, the model
answering after `--delay` seconds (bench/throughput/model_server.py), with `sys.setswitchinterval` set to
each of `--switch-intervals`. Settings alternate within each round, so a change in the box's load falls
on all of them alike. Reported per setting, median over rounds: process CPU per call, thread CPU per call
p50 and calls/s. A fresh PostgreSQL database is created and dropped.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from app.config import Settings
from app.db.session import create_db_engine, make_session_factory
from app.llm.prompt import PromptTemplate
from app.llm.registry import build_provider
from app.pipeline.run import process_call
from bench.burst.run import sample_transcripts, store_call
from bench.databases import migrated_pg_database
from bench.throughput.run import model_server
from tests.support.fake_openai import FAKE_API_KEY, unused_port

WARMUP_CALLS = 50
DB_POOL_SIZE = 20  # the sizing rule's limit per process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="4,32,128,315")
    parser.add_argument("--switch-intervals", default="0.005,0.05", help="seconds, sys.setswitchinterval")
    parser.add_argument("--calls", type=int, default=300, help="calls per setting and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the model takes per answer")
    args = parser.parse_args(argv)
    settings_grid = list(itertools.product([int(t) for t in args.threads.split(",")],
                                           [float(s) for s in args.switch_intervals.split(",")]))
    with ExitStack() as stack:
        database_url, engine, factory = migrated_pg_database(stack)
        transcripts = sample_transcripts()
        total = WARMUP_CALLS + args.calls * len(settings_grid) * args.rounds
        print(f"storing {total} calls ...", file=sys.stderr)
        ids = iter([store_call(factory, transcripts, n) for n in range(total)])
        engine.dispose()
        port = unused_port()
        stack.enter_context(model_server(port, args.delay, Path(tempfile.mkdtemp()) / "model-server.log"))
        os.environ["OPENAI_API_KEY"] = FAKE_API_KEY
        os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
        settings = Settings(database_url=database_url, llm_provider="openai", openai_model="bench-model",
                            openai_max_attempts=1)
        provider = build_provider("openai", settings)
        prompt = PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
        pooled = create_db_engine(database_url, pool_size=DB_POOL_SIZE, max_overflow=0)
        stack.callback(pooled.dispose)
        sessions = make_session_factory(pooled)

        def run_one(call_id: str, spent: list[float], lock: threading.Lock) -> None:
            before = time.thread_time()
            process_call(sessions, call_id, provider, prompt, redact_for_llm=settings.redact_for_llm)
            with lock:
                spent.append(time.thread_time() - before)

        for _ in range(WARMUP_CALLS):  # imports, connections and the SDK client, once
            run_one(next(ids), [], threading.Lock())
        results: dict[tuple[int, float], list[tuple[float, float, float]]] = {s: [] for s in settings_grid}
        for round_number in range(args.rounds):
            for threads, interval in settings_grid:
                sys.setswitchinterval(interval)
                batch = [next(ids) for _ in range(args.calls)]
                spent: list[float] = []
                lock = threading.Lock()
                cpu_before, wall_before = time.process_time(), time.monotonic()
                with ThreadPoolExecutor(threads) as executor:
                    list(executor.map(run_one, batch, itertools.repeat(spent), itertools.repeat(lock)))
                cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
                row = (cpu * 1000 / args.calls, statistics.median(spent) * 1000, args.calls / wall)
                results[(threads, interval)].append(row)
                print(f"round {round_number} threads={threads} switch={interval}: process {row[0]:.2f} ms/call, "
                      f"thread p50 {row[1]:.2f} ms, {row[2]:.1f} calls/s, load {os.getloadavg()[0]:.1f}",
                      file=sys.stderr)
    print("threads  switch_s  process_cpu_ms_per_call  thread_cpu_ms_p50  calls_per_s  (medians over rounds)")
    for (threads, interval), rows in results.items():
        medians = [statistics.median(row[i] for row in rows) for i in range(3)]
        print(f"{threads:7d}  {interval:8g}  {medians[0]:23.2f}  {medians[1]:17.2f}  {medians[2]:11.1f}")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
