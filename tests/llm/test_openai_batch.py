"""The batch protocol (app/llm/openai_batch.py) and the provider's batch half: a batch request is the
same request `extract` sends, and an answer from a batch file is judged like a synchronous one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.config import PROJECT_ROOT
from app.errors import ExtractionInvalidError, ProviderPermanentError, ProviderTransientError
from app.llm.openai_batch import BatchClient, CustomId, parse_result_lines, request_line
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.schemas.transcript import Role
from tests.llm.test_openai_provider import (
    GOOD_ANSWER,
    echo_window,
    make_settings,
    make_transcript,
    settings_with_transcript_budget,
)
from tests.support.fake_openai import (
    FakeOpenAIServer,
    completion_body,
    error_reply,
    extraction_reply,
)


@pytest.fixture
def prompt() -> PromptTemplate:
    return PromptTemplate.load(PROJECT_ROOT / "prompts", "extract-v1")


def long_call() -> list[tuple[Role, str]]:
    return [(Role.customer if i % 2 else Role.agent, f"This is line {i} of a long call, padded " + "x" * 60)
            for i in range(120)]


def test_custom_ids_round_trip_and_foreign_ids_are_ignored() -> None:
    custom_id = CustomId.for_request("c" * 32, "f" * 64, 17, 2, 3)
    text = str(custom_id)
    assert text == f"{'c' * 32}.{'f' * 12}.b17.w2of3" and len(text) <= 64
    assert CustomId.parse(text) == custom_id
    for foreign in ("request-1", "a.b.c.d", "x.y.b1.w2", "x.y.bq.w1of1", ""):
        assert CustomId.parse(foreign) is None


def test_request_lines_carry_method_url_and_body() -> None:
    line = json.loads(request_line(CustomId.for_request("c1", "abc", 1, 1, 1), {"model": "m"}, "/v1/chat/completions"))
    assert line == {"custom_id": "c1.abc.b1.w1of1", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "m"}}


def test_result_lines_of_output_and_error_files() -> None:
    body = completion_body("{}")
    text = "\n".join([
        json.dumps({"id": "r1", "custom_id": "ok", "response": {"status_code": 200, "body": body}, "error": None}),
        json.dumps({"id": "r2", "custom_id": "refused", "response": {
            "status_code": 400, "body": {"error": {"code": "bad", "message": "no such model"}}}, "error": None}),
        json.dumps({"id": "r3", "custom_id": "expired", "response": None,
                    "error": {"code": "batch_expired", "message": "not run in time"}}),
        "",
        "not json",
        json.dumps({"no": "custom id"}),
    ])
    results = parse_result_lines(text)
    assert set(results) == {"ok", "refused", "expired"}
    assert results["ok"].body == body and results["ok"].error is None
    assert results["refused"].body is None and results["refused"].error == "status 400: bad: no such model"
    assert results["expired"].error == "batch_expired: not run in time"


def test_batch_requests_are_exactly_what_extract_sends(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    for settings, transcript in (
        (make_settings(), make_transcript()),
        (settings_with_transcript_budget(1500, prompt), make_transcript(long_call())),
    ):
        fake_openai.requests.clear()
        fake_openai.responder = echo_window if len(transcript.utterances) > 10 else (
            lambda request: extraction_reply(GOOD_ANSWER))
        provider = OpenAIProvider(settings)
        provider.extract(transcript, prompt)
        assert provider.batch_request_bodies(transcript, prompt) == [r.body for r in fake_openai.requests]


def test_answers_from_a_batch_are_merged_without_any_request(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    settings = settings_with_transcript_budget(1500, prompt)
    transcript = make_transcript(long_call())
    provider = OpenAIProvider(settings)
    fake_openai.responder = echo_window
    synchronous = provider.extract(transcript, prompt)
    answers = [json.loads(echo_window(request).body) for request in fake_openai.requests]
    sent = len(fake_openai.requests)

    batched = provider.extract_from_answers(transcript, prompt, answers)

    assert len(fake_openai.requests) == sent  # nothing more was asked
    assert batched.extraction == synchronous.extraction
    assert batched.usage.llm_calls == len(answers) and batched.usage.llm_seconds == 0.0
    # Batch tokens cost batch_price_factor (0.5) of the synchronous price.
    assert batched.usage.cost_usd == pytest.approx(synchronous.usage.cost_usd * 0.5)

    with pytest.raises(ExtractionInvalidError, match="answered 2 windows"):
        provider.extract_from_answers(transcript, prompt, answers[:2])


def test_an_unreadable_batch_answer_is_asked_again_synchronously(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    provider = OpenAIProvider(make_settings())
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))
    unreadable: dict[str, Any] = {"not": "a chat completion"}
    result = provider.extract_from_answers(make_transcript(), prompt, [unreadable])
    [request] = fake_openai.requests
    assert request.messages == provider.batch_request_bodies(make_transcript(), prompt)[0]["messages"]
    assert result.extraction.summary[0].text == GOOD_ANSWER["summary"][0]["text"]
    assert result.usage.llm_calls == 1


def test_batch_client_sorts_errors_into_transient_and_permanent(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    client = BatchClient(OpenAIProvider(make_settings()).client(), "fake-model")
    fake_openai.fail_api("files.create", error_reply(503, "busy", error_type="server_error"))
    with pytest.raises(ProviderTransientError):
        client.upload("x.jsonl", b"{}\n")
    fake_openai.fail_api("batches.create", error_reply(401, "bad key"))
    file_id = client.upload("x.jsonl", b"{}\n")
    with pytest.raises(ProviderPermanentError, match="401"):
        client.create(file_id, endpoint="/v1/chat/completions", completion_window="24h", label="1")
    created = client.create(file_id, endpoint="/v1/chat/completions", completion_window="24h", label="1")
    assert client.find_by_input_file(file_id) == created
    assert client.find_by_input_file("file-unknown") is None
    assert client.retrieve(created.id).status == "in_progress"
    assert client.cancel(created.id).status == "cancelling"
    with pytest.raises(ProviderPermanentError, match="404"):
        client.retrieve("batch-missing")


def test_a_separate_batch_model_names_batch_requests_only(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    # Azure: a Global Batch deployment answers batches only; re-asks and repairs use the standard one.
    provider = OpenAIProvider(make_settings(batch_model="gpt-4o-mini-batch"))
    [body] = provider.batch_request_bodies(make_transcript(), prompt)
    assert body["model"] == "gpt-4o-mini-batch"
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER))
    provider.extract_from_answers(make_transcript(), prompt, [{"not": "a completion"}])
    assert fake_openai.requests[0].model == "fake-model"
