"""Publishing to a real Redis: submissions and deliveries reuse a pooled broker connection."""

from __future__ import annotations

import json

import pytest
import redis

from app.config import get_settings
from app.worker.enqueue import enqueue_calls, enqueue_deliveries
from app.worker.names import QUEUE_NAME, TASK_DELIVER_WEBHOOK, TASK_PROCESS_CALL
from tests.support.services import redis_url

BROKER_DB = 13
SUBMISSIONS = 6


def connections_opened(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def queued(client: redis.Redis) -> list[tuple[str, str]]:
    """(task name, args) of each queued message, oldest first (kombu pushes on the left)."""
    messages = [json.loads(raw) for raw in reversed(client.lrange(QUEUE_NAME, 0, -1))]
    return [(message["headers"]["task"], message["headers"]["argsrepr"])
            for message in messages]


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    url = redis_url(BROKER_DB)
    monkeypatch.setenv("POSTCALL_BROKER_URL", url)
    get_settings.cache_clear()
    client = redis.Redis.from_url(url)
    client.flushdb()
    return client


def test_submissions_reuse_one_pooled_broker_connection(broker: redis.Redis) -> None:
    enqueue_calls(["call-0"])  # the pool's connection may open here, once
    before = connections_opened(broker)
    for number in range(1, SUBMISSIONS):
        assert enqueue_calls([f"call-{number}"]) == 1
    assert connections_opened(broker) == before
    assert queued(broker) == [(TASK_PROCESS_CALL, repr([f"call-{n}"])) for n in range(SUBMISSIONS)]


def test_deliveries_and_submissions_share_the_pool(broker: redis.Redis) -> None:
    enqueue_calls(["call-0"])
    before = connections_opened(broker)
    assert enqueue_deliveries([7, 8]) == 2
    assert enqueue_calls(["call-1", "call-2"]) == 2
    assert connections_opened(broker) == before
    assert [task for task, _ in queued(broker)] == [TASK_PROCESS_CALL, TASK_DELIVER_WEBHOOK, TASK_DELIVER_WEBHOOK,
                                                    TASK_PROCESS_CALL, TASK_PROCESS_CALL]


def test_an_explicit_broker_url_gets_its_own_reused_pool(broker: redis.Redis) -> None:
    other = redis.Redis.from_url(redis_url(BROKER_DB + 1))
    other.flushdb()
    url = redis_url(BROKER_DB + 1)
    enqueue_calls(["call-0"], broker_url=url)
    before = connections_opened(other)
    for number in range(1, SUBMISSIONS):
        enqueue_calls([f"call-{number}"], broker_url=url)
    assert connections_opened(other) == before
    assert len(queued(other)) == SUBMISSIONS
    assert queued(broker) == []  # nothing went to the configured broker


def test_nothing_to_publish_publishes_nothing(broker: redis.Redis) -> None:
    assert enqueue_calls([]) == 0
    assert enqueue_deliveries([]) == 0
    assert queued(broker) == []
