"""GET /metrics content: every number derived from the database and the broker at scrape time."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.session import unit_of_work
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.metrics import render_latest
from app.models import Call, CallState, ExtractionRun, LlmMode
from app.models.tables import utcnow
from app.pipeline.calls import count_by_state
from app.pipeline.run import mark_failed, process_call
from app.pipeline.store import store_transcript
from app.worker.names import KOMBU_UNACKED_KEY, QUEUE_NAME
from tests.support.services import redis_url
from tests.support.transcripts import make_transcript

BROKER_DB = 13
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/none"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Two succeeded runs with known timings (ms) and usage: the histogram and counters must add them up.
RUN_FACTS = (
    {"queue_wait_ms": 30.0, "llm_ms": 700.0, "verify_ms": 4.0, "db_ms": 12.0, "total_ms": 800.0,
     "prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 10, "llm_calls": 1, "cost_usd": 0.5},
    {"queue_wait_ms": 2000.0, "llm_ms": 1500.0, "verify_ms": 6.0, "db_ms": 20.0, "total_ms": 4000.0,
     "prompt_tokens": 300, "completion_tokens": 40, "cached_tokens": 0, "llm_calls": 2, "cost_usd": 0.25},
)


def _scrape(settings: Settings) -> tuple[Samples, str]:
    body, content_type = render_latest(settings)
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, content_type


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def _store(factory: sessionmaker[Session], external_id: str) -> str:
    with unit_of_work(factory) as session:
        return store_transcript(
            session, make_transcript(external_id=external_id), tenant="acme", external_id=external_id
        ).call_id


def test_metrics_add_up_calls_runs_usage_and_stage_latency(
    session_factory: sessionmaker[Session], db_url: str
) -> None:
    broker = redis_url(BROKER_DB)
    client = redis.Redis.from_url(broker)
    client.flushdb()
    client.rpush(QUEUE_NAME, "m1", "m2", "m3")
    client.hset(KOMBU_UNACKED_KEY, "delivery-tag", "m0")

    provider = HeuristicProvider()
    settings = get_settings()
    prompt = PromptTemplate.load(settings.prompts_dir, settings.prompt_version)
    first, second, failing, waiting = (_store(session_factory, name) for name in ("a", "b", "c", "d"))
    outcomes = [process_call(session_factory, call_id, provider, prompt) for call_id in (first, second)]
    mark_failed(session_factory, failing, provider, prompt, "gave up after 6 attempts: server error 500")
    with unit_of_work(session_factory) as session:
        for outcome, facts in zip(outcomes, RUN_FACTS, strict=True):
            session.execute(update(ExtractionRun).where(ExtractionRun.id == outcome.run_id).values(**facts))
        # Two extra attempts on a finished call (a 429, then a redelivery); the waiting call, queued 10 min
        # ago, is on its 4th attempt.
        session.execute(update(Call).where(Call.id == first).values(attempts=3))
        session.execute(
            update(Call)
            .where(Call.id == waiting)
            .values(state_changed_at=utcnow() - timedelta(minutes=10), attempts=4)
        )
        states = count_by_state(session)

    samples, content_type = _scrape(settings.model_copy(update={"database_url": db_url, "broker_url": broker}))

    assert content_type.startswith("text/plain")
    assert _value(samples, "postcall_database_up") == 1
    assert _value(samples, "postcall_broker_up") == 1
    for state, count in states.items():
        assert _value(samples, "postcall_calls", state=state) == count
    assert _value(samples, "postcall_calls", state="queued") == 1
    assert _value(samples, "postcall_calls", state="failed") == 1
    assert _value(samples, "postcall_oldest_pending_call_age_seconds", state="queued") >= 600
    assert _value(samples, "postcall_oldest_pending_call_age_seconds", state="processing") == 0
    assert _value(samples, "postcall_retries_total") == 2 + 3
    assert _value(samples, "postcall_pending_call_max_attempts") == 4  # only queued/processing calls count
    assert _value(samples, "postcall_queue_depth") == 3
    assert _value(samples, "postcall_queue_unacked") == 1

    model = {"provider": provider.name, "model": provider.model}
    assert _value(samples, "postcall_runs_total", status="succeeded", **model) == 2
    assert _value(samples, "postcall_runs_total", status="failed", **model) == 1
    assert _value(samples, "postcall_llm_tokens_total", kind="prompt", **model) == 400
    assert _value(samples, "postcall_llm_tokens_total", kind="completion", **model) == 60
    assert _value(samples, "postcall_llm_tokens_total", kind="cached", **model) == 10
    assert _value(samples, "postcall_llm_requests_total", **model) == 3
    assert _value(samples, "postcall_llm_cost_usd_total", **model) == pytest.approx(0.75)

    histogram = "postcall_stage_latency_seconds"
    assert _value(samples, f"{histogram}_count", stage="total") == 2
    assert _value(samples, f"{histogram}_sum", stage="total") == pytest.approx(4.8)
    assert _value(samples, f"{histogram}_bucket", stage="total", le="0.5") == 0
    assert _value(samples, f"{histogram}_bucket", stage="total", le="1.0") == 1
    assert _value(samples, f"{histogram}_bucket", stage="total", le="5.0") == 2
    assert _value(samples, f"{histogram}_bucket", stage="total", le="+Inf") == 2
    assert _value(samples, f"{histogram}_bucket", stage="queue_wait", le="0.05") == 1
    assert _value(samples, f"{histogram}_bucket", stage="queue_wait", le="2.5") == 2
    assert _value(samples, f"{histogram}_sum", stage="llm") == pytest.approx(2.2)
    assert _value(samples, f"{histogram}_bucket", stage="verify", le="0.01") == 2
    assert _value(samples, f"{histogram}_bucket", stage="db", le="0.01") == 0
    assert _value(samples, f"{histogram}_bucket", stage="db", le="0.025") == 2


def test_metrics_answer_with_backends_down() -> None:
    """A scrape never fails: an unreachable backend shows as *_up 0 and its metrics are left out."""
    settings = get_settings().model_copy(
        update={"database_url": UNREACHABLE_DATABASE, "broker_url": UNREACHABLE_BROKER}
    )
    samples, _ = _scrape(settings)
    assert _value(samples, "postcall_database_up") == 0
    assert _value(samples, "postcall_broker_up") == 0
    assert not {"postcall_calls", "postcall_queue_depth", "postcall_runs_total"} & _names(samples)
    assert "postcall_metrics_scrape_seconds" in _names(samples)


def test_the_oldest_pending_gauge_follows_synchronous_calls_not_calls_waiting_for_a_batch(
    session_factory: sessionmaker[Session], db_url: str
) -> None:
    waiting_for_a_batch, synchronous, processing = (_store(session_factory, name) for name in ("b", "s", "p"))
    with unit_of_work(session_factory) as session:
        # A batch-mode call waits hours for its batch by design; the batch gauges follow it.
        session.execute(update(Call).where(Call.id == waiting_for_a_batch).values(
            llm_mode=LlmMode.batch, state_changed_at=utcnow() - timedelta(hours=6)))
        session.execute(update(Call).where(Call.id == synchronous).values(
            state_changed_at=utcnow() - timedelta(minutes=10)))
        session.execute(update(Call).where(Call.id == processing).values(
            state=CallState.processing, state_changed_at=utcnow() - timedelta(minutes=3)))
    settings = get_settings().model_copy(update={"database_url": db_url, "broker_url": UNREACHABLE_BROKER})

    samples, _ = _scrape(settings)

    assert 600 <= _value(samples, "postcall_oldest_pending_call_age_seconds", state="queued") < 3600
    assert 180 <= _value(samples, "postcall_oldest_pending_call_age_seconds", state="processing") < 600
    assert _value(samples, "postcall_batch_calls", where="waiting") == 1

    with unit_of_work(session_factory) as session:  # nothing synchronous pending: both gauges at 0
        session.execute(update(Call).where(Call.id.in_([synchronous, processing])).values(state=CallState.failed))
    samples, _ = _scrape(settings)
    assert _value(samples, "postcall_oldest_pending_call_age_seconds", state="queued") == 0
    assert _value(samples, "postcall_oldest_pending_call_age_seconds", state="processing") == 0


def test_the_hand_off_shows_pending_failing_and_dead_deliveries_and_disabled_endpoints(
    session_factory: sessionmaker[Session], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed deliveries looked like nothing on /metrics: no hand-off metric at all."""
    from app.handoff.endpoints import GONE_REASON, disable_endpoint
    from app.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
    from tests.handoff.conftest import processed_call, register

    monkeypatch.setenv("POSTCALL_WEBHOOK_ALLOW_PRIVATE", "true")  # endpoints on loopback; nothing is sent
    get_settings.cache_clear()

    for name in ("crm", "ticketing"):
        register(session_factory, f"http://127.0.0.1:9/{name}")
    calls = [processed_call(session_factory, f"hook-{n}") for n in range(3)]
    with unit_of_work(session_factory) as session:
        rows = session.query(WebhookDelivery).order_by(WebhookDelivery.id).all()
        assert len(rows) == 2 * len(calls)  # each processed call to each endpoint
        rows[0].attempts, rows[0].created_at = 3, utcnow() - timedelta(minutes=30)  # failing for half an hour
        rows[1].status, rows[1].next_attempt_at = DeliveryStatus.dead, utcnow()  # given up on just now
        rows[2].status, rows[2].next_attempt_at = DeliveryStatus.dead, utcnow() - timedelta(days=3)  # long ago
        # Due long ago and given up on only now (the endpoint disabled below): counted, as of its giving up.
        for row in rows[3::2]:
            row.next_attempt_at = utcnow() - timedelta(hours=30)
        rows[3].status = DeliveryStatus.succeeded
        ticketing = session.query(WebhookEndpoint).filter(WebhookEndpoint.url.endswith("ticketing")).one()
        disable_endpoint(session, ticketing, GONE_REASON)  # its two pending deliveries are dead-lettered now
    settings = get_settings().model_copy(update={"database_url": db_url, "broker_url": UNREACHABLE_BROKER})

    samples, _ = _scrape(settings)
    with unit_of_work(session_factory) as session:
        pending = session.query(WebhookDelivery).filter(WebhookDelivery.status == DeliveryStatus.pending).count()
    assert _value(samples, "postcall_webhook_deliveries_pending", state="all") == pending >= 1
    assert _value(samples, "postcall_webhook_deliveries_pending", state="failing") == 1
    assert 29 * 60 <= _value(samples, "postcall_oldest_pending_delivery_age_seconds") < 35 * 60
    assert _value(samples, "postcall_webhook_dead_letters_24h") == 6 - 1 - 1 - pending  # not the 3-day-old one
    assert _value(samples, "postcall_webhook_endpoints", state="active") == 1
    assert _value(samples, "postcall_webhook_endpoints", state="disabled") == 1
    assert _value(samples, "postcall_webhook_endpoints", state="disabled_by_receiver") == 1  # the receiver's 410
