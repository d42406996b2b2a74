"""Health checks shared by `postcall health` and the web app's /healthz."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME

if TYPE_CHECKING:
    import redis

CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


# Used memory at or above this share of maxmemory: the broker is full (its next writes are refused).
BROKER_FULL_SHARE = 0.98


def check_database(settings: Settings) -> Check:
    from app.db.migrate import current_revision, head_revision

    try:
        current = current_revision(settings.database_url)
    except Exception as exc:
        return Check("database", False, f"unreachable: {exc.__class__.__name__}: {exc}"[:300])
    head = head_revision()
    if current != head:
        return Check("database", False, f"schema at {current}, code expects {head}: run `postcall db upgrade`")
    return Check("database", True, f"reachable, schema at {current}")


def broker_client(settings: Settings, timeout: float) -> redis.Redis:
    """The process's Redis client for the broker that gives up after `timeout` seconds (probes must not
    hang). Shared, one per broker URL and timeout, and never closed: its connections are kept for the next
    probe, where a client per probe connected afresh each time (`/healthz` is open to anyone, and every
    metrics scrape asks too). redis-py's pool connects again in a forked child and after the broker
    restarted, and is safe across threads."""
    return _shared_broker_client(settings.broker_url, timeout)


@functools.cache
def _shared_broker_client(broker_url: str, timeout: float) -> redis.Redis:
    import redis

    return redis.Redis.from_url(broker_url, socket_connect_timeout=timeout, socket_timeout=timeout)


def broker_messages(settings: Settings, timeout: float, *, memory: bool = False) -> tuple[int, int, dict[str, Any]]:
    """(waiting, unacknowledged) messages of the postcall queue and, with `memory`, the broker's INFO memory
    (else empty), read in one round trip; raises redis.RedisError when unreachable."""
    with broker_client(settings, timeout).pipeline(transaction=False) as pipe:
        pipe.llen(QUEUE_NAME)
        pipe.hlen(KOMBU_UNACKED_KEY)
        if memory:
            pipe.info("memory")
        answers = pipe.execute()
    return int(answers[0]), int(answers[1]), answers[2] if memory else {}


def check_broker(settings: Settings) -> Check:
    from kombu.utils.url import maybe_sanitize_url, url_to_parts

    shown = maybe_sanitize_url(settings.broker_url)  # the password masked: this is printed and logged
    database = url_to_parts(settings.broker_url).path
    if database and not database.isdigit():
        # redis-py reads such a URL, but Celery's transport (what workers and ingest use) refuses it.
        return Check("broker", False, f"{shown}: the Redis database must be a number 0-15, not {database!r}")
    try:
        depth, _, memory = broker_messages(settings, CHECK_TIMEOUT_SECONDS, memory=True)
    except Exception as exc:
        return Check("broker", False, f"{shown}: {exc.__class__.__name__}: {exc}"[:300])
    full = broker_full(memory)
    if full is not None:
        return Check("broker", False, f"{shown}: {full}")
    return Check("broker", True, f"reachable, {depth} tasks waiting")


def broker_full(memory: dict[str, Any]) -> str | None:
    """Why a Redis is full, from its INFO memory, or None. At its maxmemory with noeviction it answers
    PING and reads but refuses every write: new calls are not handed over and workers cannot start,
    while a ping-only check said "reachable"."""
    limit, used = int(memory.get("maxmemory") or 0), int(memory.get("used_memory") or 0)
    if limit and used >= limit * BROKER_FULL_SHARE and memory.get("maxmemory_policy") == "noeviction":
        return (f"out of memory ({used} of maxmemory {limit} bytes, noeviction): it refuses writes; raise "
                "maxmemory or drain the queue")
    return None


def check_provider(settings: Settings) -> Check:
    from app.errors import PostcallError
    from app.llm.prompt import PromptTemplate

    try:
        PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
    except PostcallError as exc:
        return Check("provider", False, str(exc))
    if settings.llm_provider == "openai":
        if not settings.openai_key:
            return Check("provider", False, "openai provider selected but OPENAI_API_KEY is not set")
        base = settings.openai_base_url or "https://api.openai.com/v1"
        return Check("provider", True, f"openai, model {settings.openai_model} at {base}")
    stranded = batch_calls_stranded(settings)
    if stranded:
        shown = f"{stranded - 1}+" if stranded > STRANDED_COUNT_LIMIT else str(stranded)
        return Check("provider", False, (
            f"{shown} batch-mode calls wait for a batch, but {settings.llm_provider} has no Batch API: nothing "
            "will answer them. `postcall retry --state queued --mode sync` processes them now, or set "
            "POSTCALL_LLM_PROVIDER=openai"))
    return Check("provider", True, f"{settings.llm_provider} (offline), prompt {settings.prompt_version}")


# Counted up to this many (and shown as "N+"): a health probe must not scan a large backlog.
STRANDED_COUNT_LIMIT = 10_000


def batch_calls_stranded(settings: Settings) -> int:
    """Queued batch-mode calls (in a batch or waiting for one), for a provider without a Batch API: no
    collector sends them and no worker takes them (they are the collector's), so they wait for ever while
    every other check says ok. 0 when the database cannot be read (the database check says why)."""
    from sqlalchemy import func, select

    from app.db.session import get_engine
    from app.models import Call, CallState, LlmMode

    pending = (select(Call.id).where(Call.state == CallState.queued, Call.llm_mode == LlmMode.batch)
               .limit(STRANDED_COUNT_LIMIT + 1).subquery())
    try:
        with get_engine(settings.database_url).connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(pending)) or 0)
    except Exception:
        return 0


def run_checks(settings: Settings) -> list[Check]:
    return [check_database(settings), check_broker(settings), check_provider(settings)]
