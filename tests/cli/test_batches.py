"""`postcall ingest --mode batch` and `postcall batches [collect|poll|cancel]` (app/cli/batches.py), driven
through the `postcall` Typer app against the local fake server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.config import get_settings
from tests.support.fake_openai import (
    DEFAULT_MODEL,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    extraction_quoting,
    extraction_reply,
)

runner = CliRunner()

CALL = """\
[00:01] Agent: Thank you for calling Contoso Mobile, this is Sam. How can I help you?
[00:05] Customer: My internet has been down since this morning and I work from home.
[00:18] Agent: I will send you a text message as soon as service is restored.
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def quoting(request: RecordedRequest) -> ScriptedReply:
    return extraction_reply(extraction_quoting(request.last_user_text))


@pytest.fixture
def call_file(tmp_path: Path) -> Path:
    path = tmp_path / "outage-17.txt"
    path.write_text(CALL, encoding="utf-8")
    return path


def use_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTCALL_LLM_PROVIDER", "openai")
    monkeypatch.setenv("POSTCALL_OPENAI_MODEL", DEFAULT_MODEL)
    monkeypatch.setenv("POSTCALL_BATCH_POLL_MIN_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("POSTCALL_BATCH_POLL_MAX_INTERVAL_SECONDS", "0")
    get_settings.cache_clear()


def test_ingest_in_batch_mode_then_collect_poll_and_list(
    call_file: Path, fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("db", "upgrade")[0] == 0
    code, _, err = invoke("ingest", str(call_file), "--mode", "batch")
    assert code == 2 and "openai provider" in err  # the heuristic provider has no batch API

    use_openai(monkeypatch)
    fake_openai.batch_responder = quoting
    code, out, err = invoke("ingest", str(call_file), "--mode", "batch", "--json")
    assert code == 0, err
    ingested = json.loads(out)
    assert ingested["mode"] == "batch" and ingested["enqueued"] is False
    call_id = ingested["files"][0]["call_id"]

    listed = json.loads(invoke("batches", "--json")[1])
    assert listed == {"batches": [], "calls_waiting_for_batch": 1}

    code, out, err = invoke("batches", "collect", "--json")
    assert code == 0, err
    assert json.loads(out) == {"submitted": [1], "calls": 1, "refused": []}
    [batch] = json.loads(invoke("batches", "--json")[1])["batches"]
    assert batch["status"] == "validating" and batch["waiting_calls"] == 1 and batch["requests"] == 1
    code, text, _ = invoke("batches")
    assert code == 0 and "validating" in text and "1/1" in text and "0 calls waiting for the next batch" in text

    stored = 0
    for _ in range(3):
        code, out, err = invoke("batches", "poll", "--json")
        assert code == 0, err
        stored += json.loads(out)["stored"]
    assert stored == 1
    shown = json.loads(invoke("show", call_id, "--json")[1])
    assert shown["state"] == "ready_for_review" and shown["run"]["llm_batch_id"] == 1
    [batch] = json.loads(invoke("batches", "--json")[1])["batches"]
    assert batch["status"] == "completed" and batch["collected_at"] is not None and batch["waiting_calls"] == 0

    code, _, err = invoke("batches", "cancel", "1")
    assert code == 2 and "nothing to cancel" in err
    code, _, err = invoke("batches", "cancel", "99")
    assert code == 2 and "no batch 99" in err


def test_export_for_an_offline_runner_and_import_its_output(
    call_file: Path, tmp_path: Path, fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("db", "upgrade")[0] == 0
    use_openai(monkeypatch)
    code, out, err = invoke("ingest", str(call_file), "--mode", "batch", "--json")
    assert code == 0, err
    call_id = json.loads(out)["files"][0]["call_id"]
    requests = tmp_path / "in.jsonl"
    code, out, err = invoke("batches", "export", "--output", str(requests))
    assert code == 0, err
    assert "batch 1: 1 requests written" in out
    [line] = [json.loads(raw) for raw in requests.read_text().splitlines()]
    assert line["url"] == "/v1/chat/completions" and line["custom_id"].startswith(call_id)

    # What `vllm run-batch -i in.jsonl -o out.jsonl` writes back.
    body = json.loads(quoting(RecordedRequest("POST", line["url"], {}, line["body"])).body)
    answers = tmp_path / "out.jsonl"
    answers.write_text(json.dumps({"id": "vllm-0", "custom_id": line["custom_id"],
                                   "response": {"status_code": 200, "request_id": "r0", "body": body},
                                   "error": None}) + "\n")
    code, out, err = invoke("batches", "import", "1", str(answers), "--json")
    assert code == 0, err
    assert json.loads(out) == {"stored": 1, "failed": 0, "put_back": 0, "pending": 0, "collected": True}
    assert json.loads(invoke("show", call_id, "--json")[1])["run"]["llm_batch_id"] == 1
    code, out, _ = invoke("batches", "export", "--output", str(requests))
    assert code == 0 and "no calls are waiting" in out
