"""Fault-injection harness.

- `PrivateRedis` (tests/support/private_redis.py) / `PrivatePostgres`: throwaway servers on free ports
  that a test may crash and restart without disturbing the shared services other tests use;
- `ExtractingLLM`: the local OpenAI-compatible server answering every request with a valid extraction
  that quotes the transcript, after a delay; it can switch to 500s or timeouts, and it knows which worker
  sent each request (every worker gets its own base URL path), so a test can kill a worker mid-call;
- `WorkerFleet`: real `postcall worker` processes (and a beat), each in its own process group;
- `check_exactly_once`: the invariant every fault test ends with.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Executable, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.models import Call, CallState, Claim, Evidence, ExtractionRun, RunStatus
from app.pipeline.store import store_transcript
from app.worker.enqueue import enqueue_calls
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from tests.support.fake_openai import (
    FAKE_API_KEY,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    error_reply,
    extraction_quoting,
    extraction_reply,
    unused_port,
)
from tests.support.private_redis import SERVICE_START_TIMEOUT, PrivateRedis, private_redis
from tests.support.processes import POSTCALL, postcall_env, wait_until
from tests.support.services import require_binary
from tests.support.transcripts import make_transcript

DONE_STATES = frozenset({CallState.ready_for_review, CallState.needs_attention})
# The fake LLM's extraction: one summary point, one action item, a reason and an outcome, one quote each.
CLAIMS_PER_EXTRACTION = 4
WORKER_STOP_TIMEOUT = 30.0
LOG_TAIL_CHARS = 3_000

# Fast redelivery for tests: a killed worker's message comes back after this many seconds.
TEST_VISIBILITY_TIMEOUT = 5
FAULT_TENANT = "faults"


# -------------------------------------------------------------------------------------- PostgreSQL

PG_BIN_DIRS = sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free port.

    `initdb` refuses to run as root, so as root every server command runs as the `postgres` user.
    """

    def __init__(self) -> None:
        self.initdb = require_binary("initdb", *PG_BIN_DIRS)
        self.pg_ctl = require_binary("pg_ctl", *PG_BIN_DIRS)
        self.port = unused_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="postcall-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-1500:]}")

    def init(self) -> None:
        self._run(self.initdb, "-D", str(self.data_dir / "data"), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.pg_ctl, "-D", str(self.data_dir / "data"), "-l", str(self.data_dir / "server.log"),
            "-o", options, "-w", "-t", str(int(SERVICE_START_TIMEOUT)), "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` terminates every session, as a failover or a restart by an operator does."""
        self._run(self.pg_ctl, "-D", str(self.data_dir / "data"), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        with suppress(RuntimeError, subprocess.TimeoutExpired):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


# ------------------------------------------------------------------------------------- the LLM


class LLMMode(StrEnum):
    ok = "ok"
    server_error = "server_error"  # 500 on every request
    timeout = "timeout"  # answers only after the client has given up


@dataclass
class ExtractingLLM:
    """The fake OpenAI server with a responder; `mode` and `failing_marker` may change mid-test."""

    delay: float
    timeout_delay: float = 30.0
    mode: LLMMode = LLMMode.ok
    failing_marker: str | None = None  # any transcript containing it gets a 500, whatever the mode
    server: FakeOpenAIServer = field(default_factory=FakeOpenAIServer)
    _arrivals: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server.responder = self._respond

    def start(self) -> ExtractingLLM:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def base_url(self, tag: str) -> str:
        """The server's URL under a per-worker path, so every request says which worker sent it."""
        return self.server.base_url.removesuffix("/v1") + f"/{tag}/v1"

    def _respond(self, request: RecordedRequest) -> ScriptedReply:
        tag = request.path.strip("/").split("/")[0]
        with self._lock:
            self._arrivals.setdefault(tag, []).append(time.monotonic())
        text = request.last_user_text
        if self.failing_marker and self.failing_marker in text:
            return error_reply(500, "scripted failure for this transcript", error_type="server_error")
        if self.mode is LLMMode.server_error:
            return error_reply(500, "scripted outage", error_type="server_error")
        if self.mode is LLMMode.timeout:
            return extraction_reply(extraction_quoting(text), delay=self.timeout_delay)
        return extraction_reply(extraction_quoting(text), delay=self.delay)

    def requests_from(self, tag: str) -> int:
        with self._lock:
            return len(self._arrivals.get(tag, []))

    def total_requests(self) -> int:
        with self._lock:
            return sum(len(times) for times in self._arrivals.values())

    def in_flight(self, tag: str, *, younger_than: float) -> int:
        """Requests from `tag` that arrived less than `younger_than` seconds ago (still being answered
        when `younger_than` is below the reply delay)."""
        cutoff = time.monotonic() - younger_than
        with self._lock:
            return sum(1 for arrived in self._arrivals.get(tag, []) if arrived >= cutoff)


@contextmanager
def extracting_llm(delay: float) -> Iterator[ExtractingLLM]:
    llm = ExtractingLLM(delay=delay).start()
    try:
        yield llm
    finally:
        llm.stop()


# ---------------------------------------------------------------------------------------- workers


def fault_env(database_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    """Worker environment for fault tests: the openai provider against the fake server, one SDK attempt
    per try (Celery does the retrying), short backoff and a short visibility timeout."""
    settings = {
        "POSTCALL_LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": FAKE_API_KEY,
        "POSTCALL_OPENAI_MODEL": "fake-model",
        "POSTCALL_OPENAI_MAX_ATTEMPTS": "1",
        "POSTCALL_OPENAI_TIMEOUT": "10",
        "POSTCALL_BROKER_VISIBILITY_TIMEOUT": str(TEST_VISIBILITY_TIMEOUT),
        # The reconciler stays out of the way unless a test turns it on.
        "POSTCALL_STUCK_AFTER_SECONDS": "3600",
        "POSTCALL_TASK_MAX_RETRIES": "20",
        "POSTCALL_TASK_BACKOFF_BASE": "0.2",
        "POSTCALL_TASK_BACKOFF_MAX": "1",
    }
    settings.update(overrides)
    return postcall_env(database_url, broker_url, **settings)


class FaultStack(NamedTuple):
    """What every fault test starts from: the database, a private broker, the fake LLM and worker env."""

    factory: sessionmaker[Session]
    broker_server: PrivateRedis
    broker: str
    llm: ExtractingLLM
    env: dict[str, str]


@contextmanager
def fault_stack(
    database_url: str, llm_delay: float, *, durable_broker: bool = False, **overrides: str
) -> Iterator[FaultStack]:
    """A private Redis (see `PrivateRedis` for `durable_broker`) and the extracting LLM around
    `database_url`, with the workers' environment."""
    engine = create_db_engine(database_url)
    try:
        with private_redis(durable=durable_broker) as broker_server, extracting_llm(llm_delay) as llm:
            broker = broker_server.url()
            env = fault_env(database_url, broker, **overrides)
            yield FaultStack(make_session_factory(engine), broker_server, broker, llm, env)
    finally:
        engine.dispose()


@dataclass
class WorkerHandle:
    tag: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class WorkerFleet:
    """Real `postcall worker` processes, each in its own process group, all stopped on exit."""

    def __init__(self, env: dict[str, str], llm: ExtractingLLM, log_dir: Path, *, concurrency: int = 4) -> None:
        self.env = env
        self.llm = llm
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.workers: list[WorkerHandle] = []
        self.beats: list[WorkerHandle] = []

    def start(self, *, beat: bool = False, **extra_env: str) -> WorkerHandle:
        """A `postcall worker` (with the reconciler's schedule embedded when `beat`)."""
        tag = f"w{len(self.workers) + 1}"
        args = [*POSTCALL, "worker", f"--concurrency={self.concurrency}", "--loglevel=INFO"]
        if beat:
            args.append("--beat")
        handle = self._spawn(tag, args, extra_env)
        self.workers.append(handle)
        return handle

    def start_beat(self, **extra_env: str) -> WorkerHandle:
        """A standalone beat, as docker-compose runs it: it publishes the reconcile task, workers run it."""
        args = [sys.executable, "-m", "celery", "--app", "app.worker.celery_app:celery_app", "beat", "--loglevel=INFO"]
        handle = self._spawn(f"beat{len(self.beats) + 1}", args, extra_env)
        self.beats.append(handle)
        return handle

    def _spawn(self, tag: str, args: list[str], extra_env: dict[str, str]) -> WorkerHandle:
        env = {**self.env, "OPENAI_BASE_URL": self.llm.base_url(tag), **extra_env}
        log_path = self.log_dir / f"{tag}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                args, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return WorkerHandle(tag, proc, log_path, time.monotonic())

    def alive(self) -> list[WorkerHandle]:
        return [w for w in self.workers if w.alive]

    @staticmethod
    def signal(worker: WorkerHandle, sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):  # already gone
            os.killpg(worker.proc.pid, sig)

    def kill(self, worker: WorkerHandle) -> None:
        """SIGKILL the worker and everything it started: no shutdown code runs, nothing is acked."""
        self.signal(worker, signal.SIGKILL)
        worker.proc.wait(timeout=10)

    def stop_all(self) -> None:
        processes = [*self.workers, *self.beats]
        for worker in processes:
            if worker.alive:
                self.signal(worker, signal.SIGTERM)
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT
        for worker in processes:
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(worker)

    def logs(self, chars: int = LOG_TAIL_CHARS) -> str:
        shown = [*self.beats, *self.workers[-4:]]
        return "\n".join(f"--- {w.tag} (exit {w.proc.poll()})\n{w.log_tail(chars)}" for w in shown)


@contextmanager
def worker_fleet(
    env: dict[str, str], llm: ExtractingLLM, log_dir: Path, *, concurrency: int = 4
) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(env, llm, log_dir, concurrency=concurrency)
    try:
        yield fleet
    finally:
        fleet.stop_all()


# ------------------------------------------------------------------------------------------ calls


def store_calls(factory: sessionmaker[Session], count: int, prefix: str, *, marker: str | None = None) -> list[str]:
    """`count` queued calls (one transaction each, as ingestion does); `marker` goes into their last line."""
    call_ids = []
    for number in range(count):
        external_id = f"{prefix}-{number:04d}"
        transcript = make_transcript(external_id=external_id)
        if marker:
            last = transcript.utterances[-1]
            utterances = [*transcript.utterances[:-1], last.model_copy(update={"text": f"{last.text} {marker}"})]
            transcript = transcript.model_copy(update={"utterances": utterances})
        with unit_of_work(factory) as session:
            stored = store_transcript(session, transcript, tenant=FAULT_TENANT, external_id=external_id)
        call_ids.append(stored.call_id)
    return call_ids


def ingest(factory: sessionmaker[Session], broker_url: str, count: int, prefix: str) -> list[str]:
    call_ids = store_calls(factory, count, prefix)
    enqueue_calls(call_ids, broker_url=broker_url)
    return call_ids


def call_states(factory: sessionmaker[Session], call_ids: Sequence[str]) -> dict[str, CallState]:
    with unit_of_work(factory) as session:
        rows = session.execute(select(Call.id, Call.state).where(Call.id.in_(list(call_ids)))).all()
    return {call_id: CallState(state) for call_id, state in rows}


def count_in(factory: sessionmaker[Session], call_ids: Sequence[str], states: frozenset[CallState]) -> int:
    """How many of the calls are in `states`; 0 while the database is unreachable."""
    try:
        return sum(1 for state in call_states(factory, call_ids).values() if state in states)
    except SQLAlchemyError:
        return 0


def describe_unfinished(factory: sessionmaker[Session], call_ids: Sequence[str], broker: PrivateRedis | None) -> str:
    """What a timed-out wait leaves behind: the unfinished calls and the broker's queues, for the message."""
    with unit_of_work(factory) as session:
        rows = session.execute(
            select(Call.id, Call.state, Call.attempts, Call.state_changed_at, Call.last_error).where(
                Call.id.in_(list(call_ids)), Call.state.not_in(list(DONE_STATES))
            )
        ).all()
    lines = [f"{len(rows)} unfinished calls:"]
    lines += [f"  {row.id} {row.state} attempts={row.attempts} since={row.state_changed_at} {row.last_error}"
              for row in rows[:10]]
    if broker is not None:
        client = broker.client()
        waiting, unacked = client.llen(QUEUE_NAME), client.hlen(KOMBU_UNACKED_KEY)
        lines.append(f"broker: {waiting} waiting, {unacked} unacknowledged")
    return "\n".join(lines)


def wait_until_all_in(
    factory: sessionmaker[Session], call_ids: Sequence[str], states: frozenset[CallState], timeout: float
) -> bool:
    return wait_until(lambda: count_in(factory, call_ids, states) == len(call_ids), timeout, interval=0.3)


@dataclass(frozen=True)
class DeliveryReport:
    calls: int
    attempts: int  # claims of a call by a worker, summed over calls
    failed_runs: int

    @property
    def extra_attempts(self) -> int:
        return self.attempts - self.calls


def _pairs(session: Session, query: Executable) -> dict[Any, Any]:
    return {row[0]: row[1] for row in session.execute(query)}


def check_exactly_once(
    factory: sessionmaker[Session], call_ids: Sequence[str], *, claims_per_run: int = CLAIMS_PER_EXTRACTION
) -> DeliveryReport:
    """Every call finished, with exactly one succeeded run whose claims and evidence are all the call has."""
    ids = list(call_ids)
    with unit_of_work(factory) as session:
        states = _pairs(session, select(Call.id, Call.state).where(Call.id.in_(ids)))
        succeeded = _pairs(
            session,
            select(ExtractionRun.call_id, func.count())
            .where(ExtractionRun.call_id.in_(ids), ExtractionRun.status == RunStatus.succeeded)
            .group_by(ExtractionRun.call_id),
        )
        claims_by_call = _pairs(
            session, select(Claim.call_id, func.count()).where(Claim.call_id.in_(ids)).group_by(Claim.call_id)
        )
        claims_of_succeeded_run = _pairs(
            session,
            select(Claim.call_id, func.count())
            .join(ExtractionRun, Claim.run_id == ExtractionRun.id)
            .where(Claim.call_id.in_(ids), ExtractionRun.status == RunStatus.succeeded)
            .group_by(Claim.call_id),
        )
        evidence_by_call = _pairs(
            session,
            select(Claim.call_id, func.count())
            .join(Evidence, Evidence.claim_id == Claim.id)
            .where(Claim.call_id.in_(ids))
            .group_by(Claim.call_id),
        )
        attempts = session.scalar(select(func.coalesce(func.sum(Call.attempts), 0)).where(Call.id.in_(ids)))
        failed_runs = session.scalar(
            select(func.count())
            .select_from(ExtractionRun)
            .where(ExtractionRun.call_id.in_(ids), ExtractionRun.status == RunStatus.failed)
        )
    assert len(states) == len(ids), f"{len(ids) - len(states)} calls vanished from the database"
    unfinished = {call_id: state.value for call_id, state in states.items() if state not in DONE_STATES}
    assert not unfinished, f"{len(unfinished)} calls not finished: {dict(list(unfinished.items())[:5])}"
    runs_off = {call_id: succeeded.get(call_id, 0) for call_id in ids if succeeded.get(call_id, 0) != 1}
    assert not runs_off, f"calls without exactly one succeeded run: {dict(list(runs_off.items())[:5])}"
    for call_id in ids:
        assert claims_by_call.get(call_id) == claims_of_succeeded_run.get(call_id) == claims_per_run, (
            f"call {call_id}: {claims_by_call.get(call_id)} claims, "
            f"{claims_of_succeeded_run.get(call_id)} from its run, expected {claims_per_run}"
        )
        assert evidence_by_call.get(call_id) == claims_per_run, f"call {call_id}: duplicated or missing evidence"
    return DeliveryReport(calls=len(ids), attempts=int(attempts or 0), failed_runs=int(failed_runs or 0))
