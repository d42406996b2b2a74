"""Prometheus metrics, read at scrape time from the database and the broker.

Workers and the web app are separate processes, often on separate machines. Instead of shipping
counters between them (prometheus_client's multiprocess mode, a push gateway), every number is derived
when Prometheus scrapes: call states, attempts, runs, tokens, cost and per-stage timings from counters that
database triggers keep as `calls` and `extraction_runs` rows change (app/models/counters.py: a scrape
reads a few rows, not every call and run); the oldest pending call and batches from indexed rows; queue
depth from Redis. The database is the source of truth, so every
web replica reports the same values, a killed worker loses no counts, and workers run no metrics code.

Counters only grow while rows are only added. `postcall ingest --replace` deletes a call's old runs,
which Prometheus reads as a counter reset; `rate()` and `increase()` handle that.

The web app mounts `render_latest` at GET /metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.types import as_utc
from app.handoff.endpoints import GONE_REASON
from app.health import broker_full, broker_messages
from app.models import Call, CallState, DeliveryStatus, LlmBatch, LlmMode, WebhookDelivery, WebhookEndpoint
from app.models.counters import LATENCY_BUCKETS_SECONDS
from app.pipeline.counts import call_totals, model_totals, stage_histograms

logger = logging.getLogger(__name__)

PENDING_STATES = (CallState.queued, CallState.processing)
# When the oldest synchronous call of each pending state entered it: one min() per state with the mode
# fixed, each an index probe (ix_calls_state_mode_changed), where a GROUP BY over both states read every
# pending call, batch-mode ones included.
OLDEST_SYNC_PENDING = select(*(
    select(func.min(Call.state_changed_at)).where(Call.state == state, Call.llm_mode == LlmMode.sync).scalar_subquery()
    for state in PENDING_STATES
))
# A scrape must answer even when a backend hangs: Prometheus gives up after ~10 s by default.
BROKER_TIMEOUT_SECONDS = 2.0
DATABASE_STATEMENT_TIMEOUT_MS = 5_000
MS_PER_SECOND = 1000.0


class PostcallCollector:
    """A prometheus_client collector: one consistent read of the database and the broker per scrape."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        yield from self._database_metrics()
        yield from self._broker_metrics()
        scrape = GaugeMetricFamily(
            "postcall_metrics_scrape_seconds", "Time spent reading the database and broker for this scrape."
        )
        scrape.add_metric([], time.perf_counter() - started)
        yield scrape

    # -- database ------------------------------------------------------------------------------

    def _database_metrics(self) -> Iterator[Metric]:
        from app.db.session import get_engine, is_sqlite

        up = GaugeMetricFamily("postcall_database_up", "1 when the database answered this scrape.")
        try:
            engine = get_engine(self._settings.database_url)
            with engine.connect() as connection:
                if not is_sqlite(self._settings.database_url):
                    connection.execute(text(f"SET LOCAL statement_timeout = {DATABASE_STATEMENT_TIMEOUT_MS}"))
                metrics = list(_read_database(connection))
        except SQLAlchemyError as exc:
            logger.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    # -- broker --------------------------------------------------------------------------------

    def _broker_metrics(self) -> Iterator[Metric]:
        import redis

        up = GaugeMetricFamily("postcall_broker_up", "1 when the broker (Redis) answered this scrape.")
        try:
            waiting, unacked, memory = broker_messages(self._settings, BROKER_TIMEOUT_SECONDS, memory=True)
        except redis.RedisError as exc:
            logger.warning("metrics: broker unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        full = GaugeMetricFamily("postcall_broker_full",
                                 "1 when the broker is at its maxmemory with noeviction: it refuses writes.")
        full.add_metric([], 1 if broker_full(memory) else 0)
        yield full
        depth = GaugeMetricFamily("postcall_queue_depth", "Messages waiting in the broker queue for a worker.")
        depth.add_metric([], waiting)
        yield depth
        held = GaugeMetricFamily(
            "postcall_queue_unacked",
            "Messages delivered to workers and not acknowledged yet: in progress, or waiting out a retry "
            "countdown. Redis hands them out again after the visibility timeout if their worker died.",
        )
        held.add_metric([], unacked)
        yield held


def _read_database(connection: Connection) -> Iterator[Metric]:
    with Session(bind=connection) as session:
        yield from _call_metrics(session)
        yield from _run_metrics(session)
        yield _stage_histogram(session)
        yield from _batch_metrics(session)
        yield from _webhook_metrics(session)


def _call_metrics(session: Session) -> Iterator[Metric]:
    counts, retries = call_totals(session)
    calls = GaugeMetricFamily("postcall_calls", "Calls per processing or review state.", labels=["state"])
    for label, count in counts.items():
        calls.add_metric([label], count)
    yield calls

    oldest = GaugeMetricFamily(
        "postcall_oldest_pending_call_age_seconds",
        "Age of the synchronous call waiting longest in queued/processing (0 when none): a stuck pipeline "
        "grows it. Batch-mode calls wait for their batch by design: postcall_batch_calls and "
        "postcall_oldest_open_batch_age_seconds follow them.",
        labels=["state"],
    )
    oldest_since = session.execute(OLDEST_SYNC_PENDING).one()
    now = datetime.now(UTC)
    for state, moment in zip(PENDING_STATES, oldest_since, strict=True):
        age = (now - as_utc(moment)).total_seconds() if moment is not None else 0.0
        oldest.add_metric([state.value], max(0.0, age))
    yield oldest

    most_attempts = session.scalar(
        select(func.coalesce(func.max(Call.attempts), 0)).where(Call.state.in_(PENDING_STATES))
    )
    looping = GaugeMetricFamily(
        "postcall_pending_call_max_attempts",
        "Most attempts spent on one call still queued/processing: a call that keeps killing its worker "
        "(redelivered after each crash) or keeps being reconciled shows here.",
    )
    looping.add_metric([], float(most_attempts or 0))
    yield looping

    retried = CounterMetricFamily(
        "postcall_retries",
        "Extra attempts beyond each call's first: transient errors retried, calls redelivered after a crash.",
    )
    retried.add_metric([], float(retries))
    yield retried


def _run_metrics(session: Session) -> Iterator[Metric]:
    totals = model_totals(session)
    runs = CounterMetricFamily(
        "postcall_runs",
        "Extraction runs by outcome; status=\"failed\" counts failures (the reason is on the run and the call).",
        labels=["status", "provider", "model"],
    )
    tokens = CounterMetricFamily(
        "postcall_llm_tokens", "Tokens billed by the model server.", labels=["provider", "model", "kind"]
    )
    requests = CounterMetricFamily(
        "postcall_llm_requests", "Requests sent to the model server, re-asks included.", labels=["provider", "model"]
    )
    cost = CounterMetricFamily(
        "postcall_llm_cost_usd", "Estimated model cost in US dollars.", labels=["provider", "model"]
    )
    for row in totals:
        for status, count in row.runs.items():
            if count:
                runs.add_metric([status, row.provider, row.model], count)
    for row in totals:
        tokens.add_metric([row.provider, row.model, "prompt"], row.prompt_tokens)
        tokens.add_metric([row.provider, row.model, "completion"], row.completion_tokens)
        tokens.add_metric([row.provider, row.model, "cached"], row.cached_tokens)
        requests.add_metric([row.provider, row.model], row.llm_requests)
        cost.add_metric([row.provider, row.model], row.cost_usd)
    yield from (runs, tokens, requests, cost)


def _stage_histogram(session: Session) -> Metric:
    """Per-stage latency of succeeded runs, bucketed by the triggers as runs are written."""
    stages = stage_histograms(session)
    histogram = HistogramMetricFamily(
        "postcall_stage_latency_seconds",
        "Per-stage latency of succeeded runs: queue wait, LLM, verification, database writes, total.",
        labels=["stage"],
    )
    for stage, values in stages.items():
        buckets = [
            (_bound_label(bound), float(n)) for bound, n in zip(LATENCY_BUCKETS_SECONDS, values.buckets, strict=True)
        ]
        buckets.append(("+Inf", float(values.count)))
        histogram.add_metric([stage], buckets, sum_value=values.sum_ms / MS_PER_SECOND)
    return histogram


def _batch_metrics(session: Session) -> Iterator[Metric]:
    """Batch mode: open batches by status, their requests, and the calls waiting for or in a batch."""
    open_batches = GaugeMetricFamily(
        "postcall_llm_batches_open", "Provider batches whose calls are not all handled yet, by status.",
        labels=["status"],
    )
    requests = GaugeMetricFamily(
        "postcall_llm_batch_requests",
        "Requests in open batches: total, and answered or failed so far as the provider last reported.",
        labels=["state"],
    )
    totals = {"total": 0, "completed": 0, "failed": 0}
    oldest: datetime | None = None
    for status, count, total, completed, failed, created in session.execute(
        select(
            LlmBatch.status, func.count(), func.sum(LlmBatch.request_count), func.sum(LlmBatch.completed_count),
            func.sum(LlmBatch.failed_count), func.min(LlmBatch.created_at),
        ).where(LlmBatch.collected_at.is_(None)).group_by(LlmBatch.status)
    ):
        open_batches.add_metric([status], int(count))
        totals["total"] += int(total or 0)
        totals["completed"] += int(completed or 0)
        totals["failed"] += int(failed or 0)
        if created is not None and (oldest is None or as_utc(created) < oldest):
            oldest = as_utc(created)
    for state, value in totals.items():
        requests.add_metric([state], value)
    yield open_batches
    yield requests

    age = GaugeMetricFamily(
        "postcall_oldest_open_batch_age_seconds",
        "Age of the oldest batch not yet collected (0 when none): the completion window bounds it.",
    )
    age.add_metric([], max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest else 0.0)
    yield age

    waiting, in_batch = session.execute(
        select(
            func.count().filter(Call.llm_batch_id.is_(None)), func.count().filter(Call.llm_batch_id.is_not(None))
        ).where(Call.llm_mode == LlmMode.batch, Call.state.in_(PENDING_STATES))
    ).one()
    calls = GaugeMetricFamily(
        "postcall_batch_calls",
        "Batch-mode calls still to be processed: waiting for the next batch, or in a batch.",
        labels=["where"],
    )
    calls.add_metric(["waiting"], int(waiting or 0))
    calls.add_metric(["in_batch"], int(in_batch or 0))
    yield calls


DEAD_LETTER_WINDOW = timedelta(hours=24)


def _webhook_metrics(session: Session) -> Iterator[Metric]:
    """The hand-off: deliveries waiting or failing, recent dead letters, endpoints turned off. Each read is
    bounded by an index (pending deliveries are few; dead ones are read for the last day only)."""
    now = datetime.now(UTC)
    pending, failing, oldest = session.execute(
        select(func.count(), func.count().filter(WebhookDelivery.attempts > 0), func.min(WebhookDelivery.created_at))
        .where(WebhookDelivery.status == DeliveryStatus.pending)
    ).one()
    deliveries = GaugeMetricFamily(
        "postcall_webhook_deliveries_pending",
        "Webhook deliveries not yet accepted nor dead-lettered: all of them, and those whose attempts have "
        "failed so far (the receiver down, slow or refusing).",
        labels=["state"],
    )
    deliveries.add_metric(["all"], int(pending or 0))
    deliveries.add_metric(["failing"], int(failing or 0))
    yield deliveries

    age = GaugeMetricFamily(
        "postcall_oldest_pending_delivery_age_seconds",
        "Age of the webhook delivery waiting longest (0 when none): a receiver down for long, or no worker "
        "sending, grows it.",
    )
    age.add_metric([], max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0)
    yield age

    # A finished delivery's next_attempt_at is when it finished (`finished_values`): the due index serves this.
    dead = session.scalar(
        select(func.count()).where(WebhookDelivery.status == DeliveryStatus.dead,
                                   WebhookDelivery.next_attempt_at >= now - DEAD_LETTER_WINDOW)
    )
    dead_letters = GaugeMetricFamily(
        "postcall_webhook_dead_letters_24h",
        "Webhook deliveries given up in the last 24 hours (retry period over, refused, endpoint disabled): "
        "events a downstream system never got. `postcall webhooks deliveries --failed` lists them; "
        "`postcall webhooks replay` sends them again.",
    )
    dead_letters.add_metric([], int(dead or 0))
    yield dead_letters

    endpoints = GaugeMetricFamily(
        "postcall_webhook_endpoints", "Registered webhook endpoints, active or disabled (by hand or by a 410), and "
        "of the disabled those the receiver turned off with a 410 Gone (an alert: events wait for them until they "
        "are enabled again, and a 410 from a receiver mid-deploy is easy to miss).",
        labels=["state"],
    )
    by_receiver = WebhookEndpoint.disabled_reason == GONE_REASON
    active, disabled, gone = session.execute(select(
        func.count().filter(WebhookEndpoint.active.is_(True)), func.count().filter(WebhookEndpoint.active.is_(False)),
        func.count().filter(WebhookEndpoint.active.is_(False), by_receiver))).one()
    endpoints.add_metric(["active"], int(active or 0))
    endpoints.add_metric(["disabled"], int(disabled or 0))
    endpoints.add_metric(["disabled_by_receiver"], int(gone or 0))
    yield endpoints


def _bound_label(bound: float) -> str:
    return repr(float(bound))


def render_latest(settings: Settings) -> tuple[bytes, str]:
    """The Prometheus text exposition of every Postcall metric: (body, content type) for GET /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PostcallCollector(settings))
    return generate_latest(registry), CONTENT_TYPE_LATEST
