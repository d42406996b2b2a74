"""`postcall process --provider openai` against the local OpenAI-compatible test server: grounded claims
stored, a fabricated one flagged after the repair round, tokens and cost recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import get_settings
from tests.support.fake_openai import (
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    error_reply,
    extraction_quoting,
    extraction_reply,
)

runner = CliRunner()
FABRICATED = {
    "text": "Agent will refund $500 today.",
    "owner": "agent",
    "due": "today",
    "evidence": [{"utterance": 3, "quote": "I will refund you $500 today"}],
}


@pytest.fixture
def openai_env(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    monkeypatch.setenv("POSTCALL_OPENAI_MODEL", "fake-model")
    monkeypatch.setenv("POSTCALL_OPENAI_TIMEOUT", "10")
    get_settings.cache_clear()

    def answer(request: RecordedRequest) -> ScriptedReply:
        # The first user message holds the rendered transcript; repair requests come after it.
        extraction: dict[str, Any] = extraction_quoting(request.contents("user")[0])
        extraction["action_items"].append(FABRICATED)
        return extraction_reply(extraction, prompt_tokens=1200, completion_tokens=150, cached_tokens=1024)

    fake_openai.responder = answer
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return fake_openai


def test_process_with_openai_provider_stores_grounded_and_flags_fabricated(
    openai_env: FakeOpenAIServer, samples_dir: Path
) -> None:
    sample = samples_dir / "telecom_outage.json"
    result = runner.invoke(app, ["process", "--provider", "openai", str(sample), "--json"])
    assert result.exit_code == 0, result.stderr
    (call,) = json.loads(result.stdout)["calls"]
    assert call["state"] == "needs_attention"  # the fabricated item keeps it from ready_for_review

    shown = json.loads(runner.invoke(app, ["show", call["call_id"], "--json"]).stdout)
    statuses = {c["text"]: c["status"] for c in shown["claims"]}
    assert statuses[FABRICATED["text"]] == "ungrounded"
    assert sum(1 for s in statuses.values() if s == "grounded") >= 3
    run = shown["run"]
    assert (run["provider"], run["model"], run["prompt_version"]) == ("openai", "fake-model", "extract-v1")
    assert run["llm_calls"] == 2  # the extraction and one repair round, no more
    assert (run["prompt_tokens"], run["completion_tokens"], run["cached_tokens"]) == (2400, 300, 2048)
    assert run["cost_usd"] > 0

    first, repair = openai_env.requests
    assert first.model == "fake-model"
    assert first.response_format["type"] == "json_schema"
    assert '<transcript untrusted="true">' in first.contents("user")[0]
    assert "I will refund you $500 today" in repair.last_user_text  # the verifier's finding went back


def test_process_retries_a_429_in_process_honouring_retry_after(
    openai_env: FakeOpenAIServer, samples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's policy, made quick: backoff from 0.1 s, so the wait is set by Retry-After alone.
    monkeypatch.setenv("POSTCALL_TASK_BACKOFF_BASE", "0.1")
    get_settings.cache_clear()
    openai_env.enqueue(error_reply(429, "Rate limit reached", code="rate_limit_exceeded", headers={"Retry-After": "1"}))
    result = runner.invoke(app, ["process", "--provider", "openai", str(samples_dir / "telecom_outage.json")])
    assert result.exit_code == 0, result.stderr
    # The wait is shown, and it is the server's Retry-After (1 s), not the 0.05-0.1 s backoff.
    assert "retry 1/5 in 1.0 s" in result.stderr
    assert "needs_attention" in result.stdout
    assert len(openai_env.requests) == 3  # the 429, then the extraction and its repair round


def test_process_fails_a_call_once_the_retries_are_spent(
    openai_env: FakeOpenAIServer, samples_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTCALL_TASK_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("POSTCALL_TASK_MAX_RETRIES", "2")
    get_settings.cache_clear()
    openai_env.enqueue(*(error_reply(503, "overloaded", error_type="server_error") for _ in range(3)))
    result = runner.invoke(app, ["process", "--provider", "openai", str(samples_dir / "telecom_outage.json"),
                                 "--json"])
    assert result.exit_code == 1
    (call,) = json.loads(result.stdout)["calls"]
    assert call["state"] == "failed"
    assert "gave up after 3 attempts" in call["error"]
    assert len(openai_env.requests) == 3


def test_show_prints_the_transcripts_words_and_names_an_empty_answer(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POSTCALL_OPENAI_MODEL", "fake-model")
    get_settings.cache_clear()
    call = tmp_path / "callback.json"
    call.write_text(json.dumps({"external_id": "cb-1", "utterances": [
        {"speaker": "Customer", "role": "customer", "text": "Can someone call me back?"},
        {"speaker": "Agent", "role": "agent", "text": "My colleague Mario will call you back on Monday."},
    ]}), encoding="utf-8")
    empty = tmp_path / "empty.json"
    empty.write_text(call.read_text(encoding="utf-8").replace("cb-1", "cb-2"), encoding="utf-8")
    replies = iter([
        extraction_reply({"reason": None, "outcome": None, "summary": [{
            "text": "Mario will call the customer back on Monday",
            "evidence": [{"utterance": 1, "quote": "My colleague Maria will call you back on Monday"}]}],
            "action_items": []}),
        extraction_reply({"reason": None, "outcome": None, "summary": [], "action_items": []}),
    ])
    fake_openai.responder = lambda _request: next(replies)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    for path in (call, empty):
        done = runner.invoke(app, ["process", "--provider", "openai", str(path), "--json"])
        assert done.exit_code == 0, done.stderr
    fuzzy = runner.invoke(app, ["show", "cb-1"]).stdout
    # The transcript's words, with the model's quote beside them: "Maria" was never said.
    assert "“My colleague Mario will call you back on Monday”" in fuzzy and "quoted as" in fuzzy
    assert "the model returned no statements" in runner.invoke(app, ["show", "cb-2"]).stdout
