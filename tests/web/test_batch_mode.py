"""Batch mode on the web side: POST /api/calls?mode=batch stores the call without a worker message, the
call page says which batch it waits in, and the API shows the batch on the call and its run."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from app.config import PROJECT_ROOT, Settings
from app.db.session import create_db_engine, make_session_factory
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.metrics import render_latest
from app.models import UserRole
from app.pipeline.batch import collect_batches, poll_batches
from tests.support.fake_openai import (
    DEFAULT_MODEL,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    extraction_quoting,
    extraction_reply,
)
from tests.web.conftest import sign_in
from tests.web.world import BrokerQueue, bearer, client_for, plain_text_call, seed_user

OPENAI = {"llm_provider": "openai", "openai_model": DEFAULT_MODEL, "batch_poll_min_interval_seconds": 0.0,
          "batch_poll_max_interval_seconds": 0.0}


def quoting(request: RecordedRequest) -> ScriptedReply:
    return extraction_reply(extraction_quoting(request.last_user_text))


@pytest.fixture
def factory(sqlite_url: str) -> sessionmaker[Session]:
    return make_session_factory(create_db_engine(sqlite_url))


def metric(body: bytes, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not in the scrape")


def test_a_batch_call_waits_for_its_batch_and_the_page_says_where(
    sqlite_url: str, factory: sessionmaker[Session], fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.batch_responder = quoting
    token = seed_user(factory, tenant="acme", name="boss", role=UserRole.admin)
    queue = BrokerQueue.fresh()
    settings = Settings(database_url=sqlite_url, **OPENAI)  # type: ignore[arg-type]
    with client_for(sqlite_url, queue, **OPENAI) as client:
        submitted = client.post("/api/calls", params={"external_id": "late-fee", "mode": "batch"},
                                content=plain_text_call(), headers=bearer(token))
        assert submitted.status_code == 202, submitted.text
        body = submitted.json()
        assert body["enqueued"] is False and "next provider batch" in body["detail"]
        assert queue.calls == []  # no worker message: the collector takes it from the database
        call_id = body["call_id"]
        sign_in(client, token)
        assert "waiting for the next batch" in client.get(f"/calls/{call_id}").text
        assert metric(render_latest(settings)[0], "postcall_batch_calls", where="waiting") == 1

        provider = OpenAIProvider(settings)
        prompt = PromptTemplate.load(PROJECT_ROOT / "prompts", "extract-v1")
        collect_batches(factory, provider, prompt, settings)
        page = client.get(f"/calls/{call_id}").text
        assert 'id="batch-note">waiting in batch 1 (validating)<' in page
        detail = client.get(f"/api/calls/{call_id}", headers=bearer(token)).json()
        assert (detail["llm_mode"], detail["llm_batch_id"], detail["state"]) == ("batch", 1, "queued")
        scrape = render_latest(settings)[0]
        assert metric(scrape, "postcall_llm_batches_open", status="validating") == 1
        assert metric(scrape, "postcall_llm_batch_requests", state="total") == 1
        assert metric(scrape, "postcall_batch_calls", where="in_batch") == 1

        for _ in range(3):
            poll_batches(factory, provider, prompt, settings)
        detail = client.get(f"/api/calls/{call_id}", headers=bearer(token)).json()
        assert detail["state"] == "ready_for_review" and detail["llm_batch_id"] is None
        assert detail["run"]["llm_batch_id"] == 1
        page = client.get(f"/calls/{call_id}").text
        assert "batch-note" not in page and " · batch 1<" in page
        assert metric(render_latest(settings)[0], "postcall_batch_calls", where="in_batch") == 0


def test_batch_mode_is_refused_without_the_openai_provider(sqlite_url: str, factory: sessionmaker[Session]) -> None:
    token = seed_user(factory, tenant="acme", name="boss", role=UserRole.admin)
    with client_for(sqlite_url, BrokerQueue.fresh()) as client:
        refused = client.post("/api/calls", params={"external_id": "x", "mode": "batch"},
                              content=plain_text_call(), headers=bearer(token))
        assert refused.status_code == 422 and "openai provider" in refused.text
        unknown = client.post("/api/calls", params={"external_id": "x", "mode": "later"},
                              content=plain_text_call(), headers=bearer(token))
        assert unknown.status_code == 422
