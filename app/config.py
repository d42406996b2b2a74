"""The one Settings class. Every knob is an environment variable prefixed POSTCALL_ (or a line of `.env`).

The OpenAI SDK's conventional OPENAI_API_KEY / OPENAI_BASE_URL are read here too, under those names.
Secrets are `SecretStr`: they print as `**********` in logs, reprs and tracebacks.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Signs session cookies when POSTCALL_SECRET_KEY is unset: for local use only (`postcall serve --dev`).
# A key anyone could guess in a few tries is no key: "a", " ".
MIN_SECRET_KEY_CHARS = 16
DEV_SECRET_KEY = "dev-insecure-change-me"  # noqa: S105


# POSTCALL_WEBHOOK_ALLOWED_NETWORKS: the widest network it takes (10.0.0.0/8 is the widest private one).
ALLOWED_NETWORK_MIN_PREFIX_V4 = 8
ALLOWED_NETWORK_MIN_PREFIX_V6 = 32
# IPv6 forms that carry an IPv4 address (mapped, NAT64's well-known prefix, 6to4, IPv4-compatible).
_IPV4_IN_IPV6 = (ip_network("::ffff:0:0/96"), ip_network("64:ff9b::/96"), ip_network("2002::/16"),
                 ip_network("::/96"))  # the last: IPv4-compatible (deprecated), ::1 among them


class TokenPrices(BaseModel):
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="POSTCALL_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'var' / 'postcall.db'}",
        description="SQLAlchemy URL. SQLite file by default; postgresql+psycopg://... in production.",
    )
    broker_url: str = "redis://localhost:6379/0"
    # With acks_late a task held by a killed worker is redelivered only after this many seconds.
    # It must exceed the longest legitimate run (LLM retries included); the DB reconciler covers the rest.
    broker_visibility_timeout: int = 900
    # Worker sizing (app/worker/sizing.py, docs/operations.md): unset concurrency and pool size are derived
    # from the target rate per worker process and the model's expected latency (Little's law).
    worker_concurrency: int | None = Field(default=None, ge=1)
    worker_pool: Literal["threads", "prefork", "solo", "gevent"] = "threads"
    worker_target_calls_per_second: float = Field(default=125.0, gt=0)
    # Unset: 2 s for the openai provider, 0 for the offline heuristic.
    worker_model_latency_seconds: float | None = Field(default=None, ge=0)
    # Database connections a process keeps (no overflow: none is closed and reopened under load). Unset:
    # one per worker slot, at most db_pool_limit; keep the sum over processes below max_connections.
    db_pool_size: int | None = Field(default=None, ge=1)
    db_pool_limit: int = Field(default=20, ge=1)
    # PostgreSQL: how long a statement of a worker, a command or a web request waits for a row lock before
    # it gives up (a worker then retries the call). Without it a claim waited on a reviewer's or a
    # migration's lock for as long as it was held, past the visibility timeout, and the redelivered
    # messages' claims lined up behind it and each called the model once released. 0: wait for ever.
    db_lock_timeout_seconds: float = Field(default=30.0, ge=0)

    llm_provider: Literal["heuristic", "openai"] = "heuristic"
    openai_model: str = "gpt-4o-mini"
    # The names the OpenAI SDK documents; the POSTCALL_ ones are accepted too. Local servers (vLLM,
    # Ollama, llama.cpp) accept any non-empty key. An empty base URL means api.openai.com.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "POSTCALL_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "POSTCALL_OPENAI_BASE_URL")
    )
    openai_timeout: float = 60.0
    # HTTP attempts inside one task try. 1 leaves every retry to the Celery task (backoff + jitter,
    # Retry-After honoured) instead of a worker thread sleeping inside the SDK.
    openai_max_attempts: int = 1
    openai_max_input_tokens: int = 24_000
    openai_max_output_tokens: int = 4_000
    price_input_per_mtok: float = 0.15
    price_cached_input_per_mtok: float = 0.075
    price_output_per_mtok: float = 0.60
    redact_for_llm: bool = True

    prompt_version: str = "extract-v1"
    prompts_dir: Path = PROJECT_ROOT / "prompts"

    task_max_retries: int = 5
    # A call started this many times without an outcome (its worker died each time) is failed.
    max_call_attempts: int = 8
    task_backoff_base: float = 2.0
    task_backoff_max: float = 300.0
    # A call in queued/processing longer than this is re-enqueued by the reconciler. Keep it above
    # the broker visibility timeout so Redis redelivery gets the first chance.
    stuck_after_seconds: int = 1_200
    reconcile_every_seconds: int = 60
    # The beat's reconciler requeues at most this many stuck calls per run (in committed chunks of 500,
    # oldest first, each published before the next is claimed); the next run goes on.
    reconcile_max_calls_per_run: int = Field(default=50_000, ge=1)

    max_transcript_bytes: int = 20 * 1024 * 1024
    default_tenant: str = "default"

    # What `postcall analysts grant` gives a new analyst login (PostgreSQL; docs/data-model.md): its sessions
    # at once (-1 or 0: no limit), how long one of its statements may run, and how long a session may sit idle
    # inside an open transaction (which holds back vacuum on what it read), in seconds (0: no limit).
    # Roles already granted keep theirs (ALTER ROLE to change them).
    analyst_connection_limit: int = Field(default=5, ge=-1)
    analyst_statement_timeout_seconds: float = Field(default=300.0, ge=0)
    analyst_idle_in_transaction_timeout_seconds: float = Field(default=600.0, ge=0)

    log_level: str = "WARNING"

    # Signs session cookies. The default is for local use only: `postcall serve` refuses it (and an
    # empty one) unless `--dev`, and the web app warns when it is used.
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    # When set, GET /metrics answers only `Authorization: Bearer <token>` (Prometheus:
    # `authorization: {credentials: ...}`). Unset, it is open: counts only, for an internal network.
    metrics_token: SecretStr | None = None
    # Mark the session cookie Secure (`postcall serve --https-only` by default, and the app factory's default):
    # set it whenever browsers reach the app over https, directly or through a TLS-terminating proxy. Over
    # plain http a browser would not send a Secure cookie back, and signing in would not hold.
    https_only: bool = False
    # Days an API token works after it is issued (created or rotated); 0: tokens never expire. A leaked
    # token then stops on its own within this many days; rotating (`postcall users rotate-token`,
    # POST /api/me/rotate-token before the end) issues a new one with a new lifetime. Tokens issued before
    # migration 0029 keep no expiry until rotated (docs/web.md explains the default).
    token_lifetime_days: int = Field(default=90, ge=0, le=36_500)

    # Hand-off: outbox, signed webhooks, event feed (docs/handoff.md)
    # Base URL of the review app, for the record's `review_url` (e.g. https://postcall.example.com).
    public_url: str | None = None
    # Allow endpoints on loopback, link-local and private addresses, and plain http (tests, local setups).
    webhook_allow_private: bool = False
    # Networks a receiver may be in though not public (comma-separated CIDRs: "10.20.0.0/16, 192.168.7.5"):
    # an in-house CRM connector, with everything else on the box's networks still refused and https still
    # required. Narrower than POSTCALL_WEBHOOK_ALLOW_PRIVATE, which opens every address and plain http.
    webhook_allowed_networks: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    webhook_timeout_seconds: float = 10.0
    # A delivery still failing this long after its event was written is dead-lettered (replayable).
    webhook_retry_period_seconds: float = 24 * 60 * 60
    webhook_backoff_base_seconds: float = 2.0
    webhook_backoff_max_seconds: float = 60 * 60
    # A 4xx other than 408/410/425/429 (and a redirect) is tried this many times in all, then dead-lettered.
    webhook_max_client_error_attempts: int = 3
    # A record larger than this drops its evidence quotes, then its statements (flagged `truncated`).
    webhook_max_payload_bytes: int = 256 * 1024
    # Encrypts webhook signing secrets at rest; derived from POSTCALL_SECRET_KEY when unset.
    webhook_secrets_key: SecretStr | None = None
    # The beat sweep hands due deliveries (retries, lost enqueues, lapsed leases) to the workers.
    webhook_sweep_every_seconds: float = 5.0
    # Active endpoints a tenant may have: each event fans out to every one, inside the change's transaction.
    webhook_max_endpoints: int = Field(default=20, ge=1)
    # Deliveries one worker process sends at once (unset: a quarter of its slots, at least 2). A slow receiver
    # holds a slot for up to the webhook timeout; the bound keeps the rest free for calls, whatever one
    # tenant's receivers do. A delivery over the bound is put off (1 s, 2 s, ... up to 30 s) and asked again.
    webhook_delivery_slots: int | None = Field(default=None, ge=1)
    # The hand-off's history (outbox events, their payloads: whole records, quotes included) is kept this many
    # days, 0 = forever: the retention purge then deletes older events whose every delivery has finished, with
    # their deliveries and attempts, oldest first; an event with a pending delivery stays (and so do all after
    # it), and the feed answers a cursor from before what is kept with 410 (app/pipeline/retention.py).
    handoff_retention_days: int = Field(default=30, ge=0, le=36_500)  # MAX_RETENTION_DAYS, as calls
    # Input limits (bad input never reaches a 500): a call with more utterances than this is refused
    # before its object graph is built; word-level formats may carry 10x as many word fragments.
    max_utterances_per_call: int = Field(default=20_000, ge=1)
    # Privacy (docs/privacy.md): names are redacted for the model only when asked (cue-based);
    # STORE_REDACTED keeps only the redacted transcript at rest; calls older than the retention
    # period (days; a tenant's own setting wins, 0 = keep forever) are purged every PURGE_EVERY_SECONDS.
    redact_names: bool = False
    store_redacted: bool = False
    retention_days: int = Field(default=0, ge=0, le=36_500)  # MAX_RETENTION_DAYS (app/pipeline/retention.py)
    purge_every_seconds: int = 3_600
    # The beat's purge deletes at most this many calls per run (in committed chunks, oldest first), so a
    # long backlog never outlasts the broker's visibility timeout: the next run goes on.
    purge_max_calls_per_run: int = Field(default=50_000, ge=1)
    # Analysts' rollup tables gain delta rows with every write; the beat sums them every this often.
    rollup_fold_every_seconds: int = 60
    # Workers write runs' whole-call timings (measured after the result's commit) in batches, one UPDATE
    # per batch, from a thread of their own: at most this many runs a batch, at most this many seconds
    # after the first of them was measured. A crash loses at most the unwritten ones, never a result.
    timings_batch_size: int = Field(default=100, ge=1)
    timings_flush_seconds: float = Field(default=0.5, gt=0)
    # Group commit (PostgreSQL, a threads or gevent worker): the calls its slots take, and the results they
    # finish, close together are claimed and stored in one transaction each, at most this many calls to a group
    # (1: each call alone), waiting at most this many milliseconds after the first of them for the rest
    # (app/pipeline/group_commit.py; docs/operations.md, "Sizing", says what the wait buys and costs).
    group_commit_max_calls: int = Field(default=32, ge=1, le=1000)
    group_commit_wait_ms: float = Field(default=100.0, ge=0, le=1000)
    # -- Batch mode (the OpenAI Batch API; docs/providers.md) ------------------------------------
    # sync: each call is sent as it arrives; batch: calls wait for the next batch job (about half the
    # token price, answers within the completion window). `postcall ingest --mode` and
    # `POST /api/calls?mode=` choose per call.
    llm_mode: Literal["sync", "batch"] = "sync"
    # Prices per model and mode, e.g. {"gpt-4o": {"sync": {"input": 2.5, "cached_input": 1.25,
    # "output": 10}, "batch": {...}}}. A model or mode not listed costs the price_* settings above,
    # times batch_price_factor in batch mode.
    llm_price_table: dict[str, dict[Literal["sync", "batch"], TokenPrices]] = Field(default_factory=dict)
    batch_price_factor: float = 0.5
    # Limits of one batch input file (OpenAI: 50,000 requests and 200 MB); more calls make more batches.
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200 * 1024 * 1024
    batch_completion_window: str = "24h"
    batch_endpoint: str = "/v1/chat/completions"
    # The model named in batch requests when it differs from POSTCALL_OPENAI_MODEL (Azure: a Global Batch
    # deployment answers only batches, so synchronous re-asks and repairs keep POSTCALL_OPENAI_MODEL's).
    batch_model: str | None = None
    # Beat schedule: how often waiting calls are gathered into a batch, and how often batches are polled.
    batch_collect_every_seconds: int = 300
    # False: waiting calls are batched only by hand (`postcall batches collect` or `export`), e.g. for a
    # server without a Batch API whose calls go through an offline runner.
    batch_collect_automatically: bool = True
    batch_poll_every_seconds: int = 30
    # One batch is asked for its status at most this often, backing off from min to max as it runs.
    batch_poll_min_interval_seconds: float = 30.0
    batch_poll_max_interval_seconds: float = 600.0
    # A collector or poller working on a batch holds it this long; a killed one's batch is taken over after.
    batch_lease_seconds: int = 600
    # Threads storing a finished batch's answers (PostgreSQL; SQLite uses one).
    batch_store_threads: int = 4

    @property
    def secret_key_is_unsafe(self) -> bool:
        """True when session cookies (and stored webhook secrets) would be protected by the public
        development key, an empty or blank one, or one shorter than `MIN_SECRET_KEY_CHARS`."""
        key = self.secret_key.get_secret_value()
        return key == DEV_SECRET_KEY or len(key.strip()) < MIN_SECRET_KEY_CHARS

    @property
    def openai_key(self) -> str:
        """The API key as the SDK wants it ("" when unset)."""
        return self.openai_api_key.get_secret_value() if self.openai_api_key else ""

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """Comma-separated CIDRs (a bare address is its own /32 or /128). A network that holds every address
        is refused: that is POSTCALL_WEBHOOK_ALLOW_PRIVATE, said plainly."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            return value
        networks = []
        for part in value:
            try:
                network = ip_network(str(part), strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not a network (CIDR such as 10.20.0.0/16) or an address") from None
            widest = ALLOWED_NETWORK_MIN_PREFIX_V4 if network.version == 4 else ALLOWED_NETWORK_MIN_PREFIX_V6
            if network.prefixlen < widest:
                raise ValueError(
                    f"{part} is wider than a network of receivers (at most /{ALLOWED_NETWORK_MIN_PREFIX_V4} for IPv4, "
                    f"/{ALLOWED_NETWORK_MIN_PREFIX_V6} for IPv6); to allow every address, set "
                    "POSTCALL_WEBHOOK_ALLOW_PRIVATE=true instead")
            if network.version == 6 and any(network.overlaps(embedding) for embedding in _IPV4_IN_IPV6):
                raise ValueError(f"{part} holds IPv4 addresses written as IPv6 (mapped, NAT64, 6to4), which are "
                                 "judged by the IPv4 address they carry: list that IPv4 network instead")
            networks.append(network)
        return tuple(networks)

    @field_validator("worker_concurrency", "worker_model_latency_seconds", "db_pool_size", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`POSTCALL_WORKER_CONCURRENCY=` (as docker-compose passes an unset variable) leaves it to the rule."""
        return None if value == "" else value

    def check_redelivery_order(self) -> None:
        """Startup check of the worker and the web app: Redis redelivers a dead worker's message after the
        visibility timeout; the reconciler must wait longer, or it re-enqueues calls whose first message is
        still coming back, and every such call is processed twice."""

        if self.stuck_after_seconds <= self.broker_visibility_timeout:
            raise ConfigError(
                f"POSTCALL_STUCK_AFTER_SECONDS ({self.stuck_after_seconds}) must exceed "
                f"POSTCALL_BROKER_VISIBILITY_TIMEOUT ({self.broker_visibility_timeout})"
            )

    def token_prices(self, model: str, mode: str) -> TokenPrices:
        """The price of `model`'s tokens in `mode` (sync or batch)."""
        by_mode = self.llm_price_table.get(model) or {}
        listed = by_mode.get("batch") if mode == "batch" else by_mode.get("sync")
        if listed is not None:
            return listed
        factor = self.batch_price_factor if mode == "batch" else 1.0
        return TokenPrices(
            input=self.price_input_per_mtok * factor,
            cached_input=self.price_cached_input_per_mtok * factor,
            output=self.price_output_per_mtok * factor,
        )


ENV_PREFIX = "POSTCALL_"
# Variables with the prefix that are not settings: the test suite's (fault tests' included) and the
# benchmarks' own switches, and
# docker-compose's own variables (the published port, the stop grace period).
NOT_SETTINGS = frozenset({"POSTCALL_UPDATE_SCREENSHOTS", "POSTCALL_RECORD_EXPECTED", "POSTCALL_WEB_PORT",
                          "POSTCALL_WORKER_STOP_GRACE"})
NOT_SETTINGS_PREFIXES = ("POSTCALL_TEST_", "POSTCALL_BENCH_", "POSTCALL_FAULT_")


def setting_names() -> frozenset[str]:
    """Every environment variable name a setting is read from (upper case: names are not case-sensitive)."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{name}".upper())
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
    return frozenset(names)


def unknown_settings(names: Iterable[str]) -> list[str]:
    """One line per variable in `names` that looks like a setting and is none (a misspelled
    POSTCALL_DATABSE_URL would otherwise be ignored, and the default used in its place), with the nearest
    setting's name."""
    known = setting_names()
    problems = []
    for name in sorted({n.upper() for n in names}):
        if not name.startswith(ENV_PREFIX) or name in known or name in NOT_SETTINGS:
            continue
        if name.startswith(NOT_SETTINGS_PREFIXES):
            continue
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems


def check_setting_names(environ: Mapping[str, str] | None = None, env_file: Path | str = ".env") -> None:
    """Refuse a POSTCALL_* variable (in the environment or in `.env`) that no setting reads."""
    names = list(os.environ if environ is None else environ)
    if Path(env_file).is_file():
        names.extend(key for key in dotenv_values(env_file) if key)
    problems = unknown_settings(names)
    if problems:
        raise ConfigError("; ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    check_setting_names()
    return Settings()
