"""Sustained throughput of real `postcall worker` processes at a given model latency and arrival rate.

    .venv/bin/python -m bench.throughput.run --redis-url redis://127.0.0.1:6394/3 --calls 5000 --rate 250

What runs: a fresh PostgreSQL database (dropped afterwards), the given Redis (its database is flushed
first), the asyncio model server of bench/throughput/model_server.py answering after `--llm-delay`
seconds, and `--workers` `postcall worker` processes using the openai provider against it. Unless
`--concurrency`/`--pool` are given the workers size themselves by the rule in app/worker/sizing.py, told
the target rate per process and the model latency. Calls are stored first (not measured; with
`--analyze-calls` the table is then analyzed: bench/databases.py `analyze_calls`), then their ids are
published at `--rate` per second.

Reported: the rate the ids were actually published at (below the target when this process was starved of
CPU: the run then measures the publisher, not the workers), sustained calls/s (the middle half of the
completions, where the arrival and completion rates are steady), end-to-end latency p50/p95 (publish ->
final state), CPU per call across the box (workers, model server and this database's PostgreSQL backends,
from /proc; not this script's own session watching for finished calls), the kernel's share of the
PostgreSQL figure (system time: the sessions' socket reads and writes, WAL writes and flushes), the WAL per
call (pg_stat_wal, server-wide, so the server should be otherwise idle: bytes, full-page images, flushes),
the pipeline's own CPU per call (`process_call` run in this process on other calls, the model answering at
once, and the thread CPU inside `process_call` in the workers, from bench/throughput/probe.py), the Celery
overhead (worker CPU per call minus process_call's CPU in the workers; under gevent, minus the in-process
figure), the wall time each call's run spent in the database (`db_ms` p50/p95: how long a call holds a
pooled connection, which the pool sizing rule uses), messages left in Redis, and PostgreSQL sessions opened
(counted when they end, so the workers are stopped first; the few of this script's own polling are
included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.config import PROJECT_ROOT, Settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.llm.prompt import PromptTemplate
from app.llm.registry import build_provider
from app.models import Call, CallState, ExtractionRun, RunStatus
from app.pipeline.run import process_call
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from bench.burst.run import machine, sample_transcripts, store_call
from bench.databases import analyze_calls, migrated_pg_database
from bench.throughput.probe import PROBE_FILE_VARIABLE
from tests.support.fake_openai import FAKE_API_KEY, unused_port
from tests.support.processes import postcall_env, stop_process, wait_until

DONE_STATES = (CallState.ready_for_review, CallState.needs_attention, CallState.failed)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PUBLISH_TICK_SECONDS = 0.02
POLL_SECONDS = 0.5
# This script's own sessions on the measured database, told apart from the workers' (PostgresBackends).
MONITOR_APPLICATION = "postcall-bench-monitor"
WORKER_READY_TIMEOUT = 120.0
# Calls run before the clock starts: imports, connections and the SDK client are made once per process.
WARMUP_CALLS_PER_WORKER = 40
# Calls run through process_call in this process to measure the pipeline's own CPU.
PIPELINE_SAMPLE_CALLS = 200
SETTLE_SECONDS = 3.0


@dataclass
class ThroughputResult:
    calls: int
    target_rate: float
    published_calls_per_s: float
    llm_delay_s: float
    workers: int
    pool: str
    concurrency: str
    sustained_calls_per_s: float
    overall_calls_per_s: float
    latency_p50_s: float
    latency_p95_s: float
    states: dict[str, int]
    cpu_ms_per_call_box: float
    cpu_ms_per_call_workers: float
    cpu_ms_per_call_model_server: float
    cpu_ms_per_call_postgres: float
    # Of that, the kernel's (system time: socket reads and writes, WAL writes and flushes).
    postgres_kernel_ms_per_call: float
    # WAL the server wrote per call over the run (pg_stat_wal: server-wide, so the server should be idle
    # otherwise), its full-page images, and the WAL flushes (fdatasync) per call.
    wal_bytes_per_call: float
    wal_full_pages_per_call: float
    wal_syncs_per_call: float
    pipeline_cpu_ms_p50: float
    pipeline_cpu_ms_mean: float
    process_call_cpu_ms_in_workers: float | None
    celery_overhead_ms: float
    db_ms_p50: float | None
    db_ms_p95: float | None
    messages_left: int
    postgres_sessions_opened: int
    load_average: str
    machine: str
    # Calls per group of the workers' group commits (claims, results), over every worker; None without them.
    claims_per_group: float | None = None
    results_per_group: float | None = None


# -- CPU from /proc ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces: the fields after it follow the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, its exited children included."""
    return sum(user_and_system_seconds(pid))


USER, SYSTEM = 0, 1  # the parts of `user_and_system_seconds`


def user_and_system_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU of one process, its exited children's included in each."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0, 0.0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + cutime) / CLOCK_TICKS, (stime + cstime) / CLOCK_TICKS


def process_group_cpu(pgid: int) -> float:
    """CPU of every live process in a group (a prefork worker's children are in its group)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid:
            total += cpu_seconds(int(entry.name))
    return total


class PostgresBackends:
    """CPU of the backends serving one database, polled so that a backend that exits is still counted. The
    backends of this script's own watching (`MONITOR_APPLICATION`: its polls for finished calls) are left out:
    they are the benchmark's cost, not the workers'."""

    def __init__(self, admin_dsn: str, database: str) -> None:
        self.connection = psycopg.connect(admin_dsn, autocommit=True)
        self.database = database
        self.own_pid = int(self.connection.info.backend_pid)
        self.baseline: dict[int, tuple[float, float]] = {}
        self.latest: dict[int, tuple[float, float]] = {}
        self.wal_at_start: tuple[float, ...] = ()

    def _pids(self) -> list[int]:
        rows = self.connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name <> %s",
            (self.database, MONITOR_APPLICATION))
        return [int(pid) for (pid,) in rows if pid != self.own_pid]

    def _wal(self) -> tuple[float, ...]:
        row = self.connection.execute("SELECT wal_bytes, wal_fpi, wal_sync FROM pg_stat_wal").fetchone()
        return tuple(float(value) for value in row) if row else (0.0, 0.0, 0.0)

    def start(self) -> None:
        self.baseline = {pid: user_and_system_seconds(pid) for pid in self._pids()}
        self.latest = dict(self.baseline)
        self.wal_at_start = self._wal()

    def poll(self) -> None:
        for pid in self._pids():
            seconds = user_and_system_seconds(pid)
            if sum(seconds):
                self.latest[pid] = seconds

    def used(self) -> float:
        return self._since_start(USER) + self._since_start(SYSTEM)

    def system(self) -> float:
        return self._since_start(SYSTEM)

    def _since_start(self, part: int) -> float:
        """CPU seconds of one kind (`USER` or `SYSTEM`) the backends spent since `start`."""
        return sum(seconds[part] - self.baseline.get(pid, (0.0, 0.0))[part] for pid, seconds in self.latest.items())

    def wal_since_start(self) -> tuple[float, ...]:
        """WAL bytes, full-page images and flushes (fdatasync) written since `start`, server-wide."""
        return tuple(now - then for now, then in zip(self._wal(), self.wal_at_start, strict=True))

    def sessions(self) -> int:
        row = self.connection.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.database,))
        return int(row.fetchone()[0])  # type: ignore[index]


# -- processes --------------------------------------------------------------------------------------


@contextmanager
def model_server(port: int, delay: float, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.throughput.model_server", "--port", str(port), "--delay", str(delay)],
            cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            if not wait_until(lambda: "listening" in log.read_text(), 30):
                raise SystemExit("model server did not start:\n" + log.read_text())
            yield proc
        finally:
            stop_process(proc)


def start_worker(env: dict[str, str], args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    """`postcall worker` with the CPU probe (bench/throughput/probe.py) writing next to its log."""
    argv = [sys.executable, "-m", "bench.throughput.probe", "worker", f"--loglevel={args.loglevel}"]
    env = {**env, PROBE_FILE_VARIABLE: str(log.with_suffix(".probe.json"))}
    if args.concurrency:
        argv.append(f"--concurrency={args.concurrency}")
    if args.pool:
        argv.append(f"--pool={args.pool}")
    return subprocess.Popen(
        argv, env=env, cwd=PROJECT_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


# -- the run ----------------------------------------------------------------------------------------


def publish_at_rate(broker: str, call_ids: Sequence[str], rate: float) -> dict[str, float]:
    """Publish the ids at `rate` per second; returns each id's publish time (epoch seconds)."""
    from app.worker.enqueue import enqueue_calls

    published: dict[str, float] = {}
    started = time.monotonic()
    sent = 0
    while sent < len(call_ids):
        due = min(len(call_ids), int((time.monotonic() - started) * rate) + 1)
        if due > sent:
            batch = call_ids[sent:due]
            # Stamped before publishing: a worker may finish the first of a large batch before the last is sent.
            published.update(dict.fromkeys(batch, time.time()))
            enqueue_calls(batch, broker_url=broker)
            sent = due
        time.sleep(PUBLISH_TICK_SECONDS)
    return published


def finished_at(factory: Any, call_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
    wanted = set(call_ids)
    with unit_of_work(factory) as session:
        rows = session.execute(select(Call.id, Call.state, Call.state_changed_at).where(Call.state.in_(DONE_STATES)))
        return {cid: (CallState(state).value, at.timestamp()) for cid, state, at in rows if cid in wanted}


def database_ms(factory: Any, call_ids: Sequence[str]) -> list[float]:
    """The wall time each measured call's succeeded run spent in the database (`db_ms`: the claim, the
    final write and its commit), which is how long it held a pooled connection."""
    wanted = set(call_ids)
    with unit_of_work(factory) as session:
        rows = session.execute(select(ExtractionRun.call_id, ExtractionRun.db_ms)
                               .where(ExtractionRun.status == RunStatus.succeeded, ExtractionRun.db_ms.is_not(None)))
        return [float(ms) for cid, ms in rows if cid in wanted]


def pipeline_cpu(factory: Any, call_ids: Sequence[str], base_url: str, settings: Settings) -> list[float]:
    """CPU of process_call per call, in this process, the model answering at once."""
    os.environ["OPENAI_API_KEY"] = FAKE_API_KEY
    os.environ["OPENAI_BASE_URL"] = base_url
    provider = build_provider("openai", settings)
    prompt = PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
    spent: list[float] = []
    for call_id in call_ids:
        before = time.process_time()
        process_call(factory, call_id, provider, prompt, redact_for_llm=settings.redact_for_llm)
        spent.append(time.process_time() - before)
    return spent[len(spent) // 10 :]  # the first calls pay for imports and connections


def percentile(values: Sequence[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def run(args: argparse.Namespace) -> ThroughputResult:
    transcripts = sample_transcripts()
    log_dir = Path(tempfile.mkdtemp(prefix="postcall-throughput-"))
    broker_client = redis.Redis.from_url(args.redis_url)
    broker_client.flushdb()
    with ExitStack() as stack:
        database_url, engine, factory = migrated_pg_database(stack, args.schema)
        warmup = WARMUP_CALLS_PER_WORKER * args.workers
        total = PIPELINE_SAMPLE_CALLS + warmup + args.calls
        print(f"storing {total} calls ...", file=sys.stderr)
        ids = [store_call(factory, transcripts, n) for n in range(total)]
        if args.analyze_calls:
            analyze_calls(engine)
        sample_ids, warmup_ids = ids[:PIPELINE_SAMPLE_CALLS], ids[PIPELINE_SAMPLE_CALLS : -args.calls]
        call_ids = ids[-args.calls :]

        port = unused_port()
        server = stack.enter_context(model_server(port, args.llm_delay, log_dir / "model-server.log"))
        model_url = f"http://127.0.0.1:{port}/v1"
        settings = Settings(database_url=database_url, llm_provider="openai", openai_model="bench-model",
                            openai_max_attempts=1)
        print("measuring the pipeline's own CPU ...", file=sys.stderr)
        spent = pipeline_cpu(factory, sample_ids, f"http://127.0.0.1:{port}/nodelay/v1", settings)

        engine.dispose()  # its sessions are counted now, not among the workers'
        # From here on this script watches through sessions of its own name, which the count leaves out.
        monitor = create_db_engine(
            make_url(database_url).update_query_dict({"application_name": MONITOR_APPLICATION}).render_as_string(
                hide_password=False), pool_size=1, max_overflow=0)
        stack.callback(monitor.dispose)
        factory = make_session_factory(monitor)
        time.sleep(SETTLE_SECONDS)
        url = make_url(database_url)
        backends = PostgresBackends(f"host={url.host} port={url.port or 5432} user={url.username} dbname=postgres",
                                    url.database or "")
        stack.callback(backends.connection.close)
        sessions_before = backends.sessions()
        env = postcall_env(
            database_url, args.redis_url,
            POSTCALL_LLM_PROVIDER="openai", OPENAI_API_KEY=FAKE_API_KEY, OPENAI_BASE_URL=model_url,
            POSTCALL_OPENAI_MODEL="bench-model", POSTCALL_OPENAI_MAX_ATTEMPTS="1", POSTCALL_OPENAI_TIMEOUT="60",
            POSTCALL_WORKER_TARGET_CALLS_PER_SECOND=str(args.rate / args.workers),
            POSTCALL_WORKER_MODEL_LATENCY_SECONDS=str(args.llm_delay),
            **dict(setting.split("=", 1) for setting in args.env),
        )
        workers = []
        for number in range(args.workers):
            proc = start_worker(env, args, log_dir / f"worker{number + 1}.log")
            stack.callback(stop_process, proc, timeout=60)
            workers.append(proc)
        logs = [log_dir / f"worker{n + 1}.log" for n in range(args.workers)]
        # Celery says "ready." at INFO; at quieter levels the warm-up calls below show the workers are up.
        announces = args.loglevel.upper() in ("INFO", "DEBUG")
        if announces and not wait_until(lambda: all("ready." in log.read_text() for log in logs), WORKER_READY_TIMEOUT):
            raise SystemExit("workers did not become ready; logs in " + str(log_dir))
        sizing = [line for line in logs[0].read_text().splitlines() if "worker sizing:" in line]
        print(sizing[-1] if sizing else "(no sizing line)", file=sys.stderr)
        publish_at_rate(args.redis_url, warmup_ids, args.rate)
        if not wait_until(lambda: len(finished_at(factory, warmup_ids)) == len(warmup_ids), WORKER_READY_TIMEOUT * 2,
                          POLL_SECONDS):
            raise SystemExit("warm-up calls did not finish; logs in " + str(log_dir))

        backends.start()
        worker_cpu_before = sum(process_group_cpu(w.pid) for w in workers)
        server_cpu_before = cpu_seconds(server.pid)

        print(f"publishing {args.calls} calls at {args.rate}/s ...", file=sys.stderr)
        published = publish_at_rate(args.redis_url, call_ids, args.rate)
        deadline = time.monotonic() + args.calls / args.rate + args.llm_delay * 10 + 120
        done: dict[str, tuple[str, float]] = {}
        while time.monotonic() < deadline:
            backends.poll()
            done = finished_at(factory, call_ids)
            print(f"  {len(done)}/{len(call_ids)} finished", file=sys.stderr, end="\r")
            if len(done) == len(call_ids):
                break
            if any(w.poll() is not None for w in workers):
                raise SystemExit("a worker died; logs in " + str(log_dir))
            time.sleep(POLL_SECONDS)
        backends.poll()
        worker_cpu = sum(process_group_cpu(w.pid) for w in workers) - worker_cpu_before
        server_cpu = cpu_seconds(server.pid) - server_cpu_before
        postgres_cpu, postgres_kernel = backends.used(), backends.system()
        wal_bytes, wal_full_pages, wal_syncs = backends.wal_since_start()
        time.sleep(SETTLE_SECONDS)
        left = int(broker_client.llen(QUEUE_NAME)) + int(broker_client.hlen(KOMBU_UNACKED_KEY))
        for proc in workers:
            stop_process(proc, timeout=60)
        engine.dispose()
        monitor.dispose()
        time.sleep(SETTLE_SECONDS)  # a session's statistics are reported when it ends
        sessions = backends.sessions() - sessions_before
        held = database_ms(factory, call_ids)
        probed = [json.loads(log.with_suffix(".probe.json").read_text()) for log in logs
                  if log.with_suffix(".probe.json").exists()]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())

    finish_times = sorted(at for _, at in done.values())
    quarter = len(finish_times) // 4
    middle = finish_times[quarter : len(finish_times) - quarter]
    sustained = (len(middle) - 1) / (middle[-1] - middle[0]) if len(middle) > 1 and middle[-1] > middle[0] else 0.0
    first_publish = min(published.values())
    latencies = [at - published[cid] for cid, (_, at) in done.items()]
    states: dict[str, int] = {}
    for state, _ in done.values():
        states[state] = states.get(state, 0) + 1
    finished = max(1, len(done))
    worker_ms = worker_cpu * 1000 / finished
    pipeline_mean = statistics.fmean(spent) * 1000
    probed_calls = sum(p["calls"] for p in probed)
    in_workers = sum(p["cpu_seconds"] for p in probed) * 1000 / probed_calls if probed_calls else None
    return ThroughputResult(
        calls=args.calls,
        target_rate=args.rate,
        published_calls_per_s=round(len(published) / max(1e-9, max(published.values()) - first_publish), 1),
        llm_delay_s=args.llm_delay,
        workers=args.workers,
        pool=args.pool or "default (sizing rule)",
        concurrency=str(args.concurrency or "default (sizing rule)"),
        sustained_calls_per_s=round(sustained, 1),
        overall_calls_per_s=round(len(done) / (max(finish_times) - first_publish), 1) if finish_times else 0.0,
        latency_p50_s=round(percentile(latencies, 50), 2) if latencies else 0.0,
        latency_p95_s=round(percentile(latencies, 95), 2) if latencies else 0.0,
        states=states,
        cpu_ms_per_call_box=round((worker_cpu + server_cpu + postgres_cpu) * 1000 / finished, 2),
        cpu_ms_per_call_workers=round(worker_ms, 2),
        cpu_ms_per_call_model_server=round(server_cpu * 1000 / finished, 2),
        cpu_ms_per_call_postgres=round(postgres_cpu * 1000 / finished, 2),
        postgres_kernel_ms_per_call=round(postgres_kernel * 1000 / finished, 2),
        wal_bytes_per_call=round(wal_bytes / finished),
        wal_full_pages_per_call=round(wal_full_pages / finished, 2),
        wal_syncs_per_call=round(wal_syncs / finished, 3),
        pipeline_cpu_ms_p50=round(statistics.median(spent) * 1000, 2),
        pipeline_cpu_ms_mean=round(pipeline_mean, 2),
        process_call_cpu_ms_in_workers=round(in_workers, 2) if in_workers is not None else None,
        celery_overhead_ms=round(worker_ms - (in_workers if in_workers is not None else pipeline_mean), 2),
        db_ms_p50=round(percentile(held, 50), 2) if held else None,
        db_ms_p95=round(percentile(held, 95), 2) if held else None,
        messages_left=left,
        postgres_sessions_opened=sessions,
        load_average=load,
        machine=machine(),
        claims_per_group=_per_group(probed, "claim"),
        results_per_group=_per_group(probed, "persist"),
    )


def _per_group(probed: Sequence[dict[str, Any]], name: str) -> float | None:
    """Mean calls per group of the workers' `name` group commit (bench/throughput/probe.py writes its stats)."""
    stats = [p["groups"][name] for p in probed if name in p.get("groups", {})]
    groups = sum(s["groups"] for s in stats)
    return round(sum(s["pieces"] for s in stats) / groups, 2) if groups else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", required=True, help="a Redis database this run may flush")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=250.0, help="calls published per second")
    parser.add_argument("--llm-delay", type=float, default=2.0, help="seconds the model takes per answer")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one per core)")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the sizing rule")
    parser.add_argument("--pool", default=None, help="default: POSTCALL_WORKER_POOL / the sizing rule")
    parser.add_argument("--loglevel", default="INFO", help="the workers' log level (INFO is the default)")
    parser.add_argument("--env", action="append", default=[], metavar="POSTCALL_X=VALUE",
                        help="a setting for the workers (repeatable), e.g. POSTCALL_DB_POOL_SIZE=10")
    parser.add_argument("--analyze-calls", action="store_true",
                        help="ANALYZE calls once they are stored (bench/databases.py `analyze_calls` says why)")
    parser.add_argument("--schema", default="head",
                        help="the migration revision of the database (an earlier one, to compare its triggers)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    document: dict[str, Any] = asdict(result)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        for key, value in document.items():
            print(f"{key:>30}: {value}")
    return 0 if result.messages_left == 0 and sum(result.states.values()) == result.calls else 1


if __name__ == "__main__":
    sys.exit(main())
