"""The `openai` provider against a local OpenAI-compatible server speaking real HTTP."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from app.config import PROJECT_ROOT, Settings
from app.errors import (
    ConfigError,
    ExtractionInvalidError,
    PermanentError,
    ProviderPermanentError,
    ProviderTransientError,
    TransientError,
)
from app.llm.base import ProviderResult
from app.llm.openai_provider import (
    Completion,
    OpenAIProvider,
    extraction_response_format,
    parse_retry_after,
    shared_client,
)
from app.llm.prompt import PromptTemplate
from app.schemas.extraction import Extraction, Owner
from app.schemas.grounding import (
    ClaimKind,
    ClaimStatus,
    EvidenceStatus,
    VerificationReport,
    VerifiedClaim,
    VerifiedEvidence,
)
from app.schemas.transcript import Role, Transcript, Utterance
from app.schemas.usage import Usage
from tests.support.fake_openai import (
    ANSWER_TIMEOUT,
    DEFAULT_MODEL,
    FAKE_API_KEY,
    FakeOpenAIServer,
    RecordedRequest,
    ScriptedReply,
    completion_body,
    completion_reply,
    error_reply,
    extraction_reply,
    unused_port,
)

CALL_LINES = [
    (Role.agent, "Thanks for calling Acme billing, this is Dana."),
    (Role.customer, "Hi, I was charged twice for my March invoice, thirty dollars each time."),
    (Role.agent, "I see the duplicate charge. I will refund the extra $30 within 5 business days."),
    (Role.customer, "Great, and can you email me a confirmation?"),
    (Role.agent, "Yes, I will send the confirmation email today."),
]

GOOD_ANSWER: dict[str, Any] = {
    "summary": [
        {
            "text": "Customer was charged twice for the March invoice.",
            "evidence": [{"utterance": 1, "quote": "I was charged twice for my March invoice"}],
        }
    ],
    "action_items": [
        {
            "text": "Refund the extra $30.",
            "owner": "agent",
            "due": "within 5 business days",
            "evidence": [{"utterance": 2, "quote": "I will refund the extra $30 within 5 business days"}],
        }
    ],
    "reason": {"text": "Duplicate charge.", "evidence": [{"utterance": 1, "quote": "charged twice"}]},
    "outcome": None,
}


def make_transcript(lines: list[tuple[Role, str]] = CALL_LINES) -> Transcript:
    return Transcript(
        utterances=[
            Utterance(index=i, speaker="Dana" if role is Role.agent else "Caller", role=role, text=text)
            for i, (role, text) in enumerate(lines)
        ]
    )


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"openai_model": DEFAULT_MODEL, "openai_max_attempts": 1, "openai_timeout": ANSWER_TIMEOUT}
    values.update(overrides)
    return Settings(**values)


def settings_with_transcript_budget(tokens: int, prompt: PromptTemplate) -> Settings:
    """Settings whose input budget leaves `tokens` for transcript lines after the fixed prompt."""
    defaults = make_settings()
    fixed = defaults.openai_max_input_tokens - OpenAIProvider(defaults).transcript_budget(prompt)
    return make_settings(openai_max_input_tokens=fixed + tokens)


@pytest.fixture
def prompt() -> PromptTemplate:
    return PromptTemplate.load(PROJECT_ROOT / "prompts", "extract-v1")


@pytest.fixture
def provider(fake_openai: FakeOpenAIServer) -> OpenAIProvider:
    return OpenAIProvider(make_settings())


def walk_objects(schema: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append(schema)
        for value in schema.values():
            found.extend(walk_objects(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(walk_objects(item))
    return found


# -- happy path and request shape ----------------------------------------------------------------


def test_happy_path_sends_strict_schema_and_wrapped_transcript(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER, prompt_tokens=900, completion_tokens=120))

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction == Extraction.model_validate(GOOD_ANSWER)
    assert result.raw_response == json.dumps(GOOD_ANSWER)
    [request] = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.model == DEFAULT_MODEL
    assert request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert request.body["max_completion_tokens"] == make_settings().openai_max_output_tokens
    response_format = request.response_format
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert set(response_format["json_schema"]["schema"]["properties"]) >= {"summary", "action_items"}
    # Static instructions first (prompt caching), then the transcript as untrusted data.
    assert [m["role"] for m in request.messages] == ["system", "user"]
    assert request.messages[0]["content"] == prompt.system
    user_text = request.last_user_text
    assert '<transcript untrusted="true">' in user_text
    assert "[2] agent (Dana): I see the duplicate charge." in user_text
    assert result.usage.prompt_tokens == 900
    assert result.usage.completion_tokens == 120
    assert result.usage.llm_calls == 1
    assert result.usage.llm_seconds > 0


def test_schema_is_strict_everywhere_and_built_once() -> None:
    response_format = extraction_response_format()
    schema: dict[str, Any] = dict(response_format["json_schema"].get("schema", {}))
    objects = walk_objects(schema)
    assert len(objects) >= 4  # Extraction, Statement, ActionItem, EvidenceRef
    for node in objects:
        assert node["additionalProperties"] is False
        assert sorted(node["required"]) == sorted(node["properties"])
    # Optional fields are nullable rather than absent.
    assert {"type": "null"} in schema["properties"]["reason"]["anyOf"]
    assert "minLength" not in json.dumps(schema)  # bounds some strict servers reject; Pydantic checks them
    assert extraction_response_format() is response_format


def test_answer_with_only_core_fields_is_accepted(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    core_only = {key: GOOD_ANSWER[key] for key in ("summary", "action_items")}
    fake_openai.enqueue(extraction_reply(core_only))

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction.reason is None
    assert result.extraction.outcome is None
    assert len(result.extraction.action_items) == 1


def test_json_in_a_markdown_fence_is_accepted(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(completion_reply(f"```json\n{json.dumps(GOOD_ANSWER)}\n```"))

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction == Extraction.model_validate(GOOD_ANSWER)
    assert len(fake_openai.requests) == 1


# -- unusable answers: one re-ask, then ExtractionInvalidError ---------------------------------------


def test_malformed_json_is_reasked_with_the_error(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    broken = '{"summary": [{"text": "Charged twice", "evidence": ['
    fake_openai.enqueue(
        completion_reply(broken, prompt_tokens=800, completion_tokens=30),
        extraction_reply(GOOD_ANSWER, prompt_tokens=900, completion_tokens=120),
    )

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction == Extraction.model_validate(GOOD_ANSWER)
    first, second = fake_openai.requests
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[:2] == first.messages
    assert second.messages[2]["content"] == broken
    assert "json" in second.last_user_text.lower()
    assert "EOF" in second.last_user_text or "invalid" in second.last_user_text.lower()
    assert result.usage.llm_calls == 2
    assert result.usage.prompt_tokens == 1700
    assert result.usage.completion_tokens == 150


def test_malformed_twice_raises_with_the_raw_answer(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(completion_reply("not json"), completion_reply("still {not json"))

    with pytest.raises(ExtractionInvalidError, match="malformed JSON") as caught:
        provider.extract(make_transcript(), prompt)

    assert caught.value.raw == "still {not json"
    assert isinstance(caught.value, PermanentError)
    assert len(fake_openai.requests) == 2


def test_schema_violation_reask_names_the_field(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    off_schema = json.loads(json.dumps(GOOD_ANSWER))
    off_schema["action_items"][0]["owner"] = "the manager"
    fake_openai.enqueue(extraction_reply(off_schema), extraction_reply(GOOD_ANSWER))

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction.action_items[0].owner.value == "agent"
    reask = fake_openai.requests[1].last_user_text
    assert "action_items.0.owner" in reask


def test_schema_violation_twice_raises(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(extraction_reply({"summary": "not a list"}), extraction_reply({"summary": [{}]}))

    with pytest.raises(ExtractionInvalidError, match="schema violation") as caught:
        provider.extract(make_transcript(), prompt)

    assert caught.value.raw == json.dumps({"summary": [{}]})


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (completion_reply(None, refusal="I can't help with that."), "refused"),
        (completion_reply('{"summary": [', finish_reason="length"), "cut off"),
        (completion_reply(None, finish_reason="content_filter"), "content filter"),
        (completion_reply(""), "empty"),
    ],
    ids=["refusal", "length", "content_filter", "empty"],
)
def test_unusable_answer_twice_raises_with_reason(
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    reply: ScriptedReply,
    expected: str,
) -> None:
    fake_openai.enqueue(reply, reply)

    with pytest.raises(ExtractionInvalidError, match=expected):
        provider.extract(make_transcript(), prompt)

    assert len(fake_openai.requests) == 2


def test_refusal_then_answer_succeeds(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(completion_reply(None, refusal="I can't help with that."), extraction_reply(GOOD_ANSWER))

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction.summary
    second = fake_openai.requests[1]
    assert second.messages[2] == {"role": "assistant", "content": "I can't help with that."}


def test_length_stop_reask_asks_for_a_shorter_answer(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(completion_reply('{"summary": [', finish_reason="length"), extraction_reply(GOOD_ANSWER))

    provider.extract(make_transcript(), prompt)

    assert "cut off" in fake_openai.requests[1].last_user_text


# -- server failures ---------------------------------------------------------------------------------


def test_429_with_retry_after_is_transient_with_the_delay(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(
        error_reply(429, "Rate limit reached", code="rate_limit_exceeded", headers={"Retry-After": "7"})
    )

    with pytest.raises(ProviderTransientError, match="429") as caught:
        provider.extract(make_transcript(), prompt)

    assert caught.value.retry_after == pytest.approx(7.0)
    assert isinstance(caught.value, TransientError)
    assert len(fake_openai.requests) == 1  # openai_max_attempts=1: no hidden SDK retry


def test_retry_after_ms_is_preferred(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(error_reply(429, headers={"retry-after-ms": "1500", "retry-after": "2"}))

    with pytest.raises(ProviderTransientError) as caught:
        provider.extract(make_transcript(), prompt)

    assert caught.value.retry_after == pytest.approx(1.5)


def test_parse_retry_after_accepts_an_http_date() -> None:
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert parse_retry_after({"retry-after": later}) == pytest.approx(30, abs=2)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_429_quota_exhausted_is_permanent(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(error_reply(429, "You exceeded your current quota", code="insufficient_quota"))

    with pytest.raises(ProviderPermanentError, match="quota"):
        provider.extract(make_transcript(), prompt)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate, status: int
) -> None:
    fake_openai.enqueue(error_reply(status, "upstream exploded", error_type="server_error"))

    with pytest.raises(ProviderTransientError, match=str(status)):
        provider.extract(make_transcript(), prompt)


def test_sdk_retries_follow_max_attempts(fake_openai: FakeOpenAIServer, prompt: PromptTemplate) -> None:
    fake_openai.enqueue(error_reply(503, headers={"retry-after-ms": "10"}), extraction_reply(GOOD_ANSWER))
    provider = OpenAIProvider(make_settings(openai_max_attempts=2))

    result = provider.extract(make_transcript(), prompt)

    assert result.extraction.summary
    assert len(fake_openai.requests) == 2


def test_timeout_is_transient(fake_openai: FakeOpenAIServer, prompt: PromptTemplate) -> None:
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER, delay=30.0))  # the server's stop releases it
    provider = OpenAIProvider(make_settings(openai_timeout=0.3))

    started = time.perf_counter()
    with pytest.raises(ProviderTransientError, match="timed out"):
        provider.extract(make_transcript(), prompt)

    assert time.perf_counter() - started < 5.0  # its timeout, not the answer (a loaded box may add seconds)


def test_connection_refused_is_transient(monkeypatch: pytest.MonkeyPatch, prompt: PromptTemplate) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{unused_port()}/v1")
    provider = OpenAIProvider(make_settings())

    with pytest.raises(ProviderTransientError, match="could not reach"):
        provider.extract(make_transcript(), prompt)


def test_non_json_body_is_transient(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(ScriptedReply(body=b"<html>Bad gateway</html>"))

    with pytest.raises(ProviderTransientError, match="non-JSON"):
        provider.extract(make_transcript(), prompt)


def test_401_is_permanent_and_names_the_key(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(error_reply(401, "Incorrect API key provided", code="invalid_api_key"))

    with pytest.raises(ProviderPermanentError, match=r"authentication failed.*OPENAI_API_KEY") as caught:
        provider.extract(make_transcript(), prompt)

    assert not isinstance(caught.value, TransientError)
    assert len(fake_openai.requests) == 1


def test_404_names_the_model_and_server(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(error_reply(404, "The model `fake-model` does not exist", code="model_not_found"))

    with pytest.raises(ProviderPermanentError) as caught:
        provider.extract(make_transcript(), prompt)

    assert f"model {DEFAULT_MODEL!r} not found on {fake_openai.base_url}" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, None, "permission denied"),
        (400, "context_length_exceeded", "POSTCALL_OPENAI_MAX_INPUT_TOKENS"),
        (400, None, "rejected"),
    ],
)
def test_other_client_errors_are_permanent(
    fake_openai: FakeOpenAIServer,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    status: int,
    code: str | None,
    expected: str,
) -> None:
    fake_openai.enqueue(error_reply(status, "nope", code=code))

    with pytest.raises(ProviderPermanentError, match=expected):
        provider.extract(make_transcript(), prompt)


# -- configuration and the shared client ----------------------------------------------------------


def test_missing_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch, prompt: PromptTemplate) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIProvider(make_settings()).extract(make_transcript(), prompt)


def test_one_client_per_process_even_under_threads(fake_openai: FakeOpenAIServer) -> None:
    settings = make_settings()
    clients: list[object] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        clients.append(shared_client(settings))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(clients) == 8
    assert all(client is clients[0] for client in clients)
    assert str(shared_client(settings).base_url).startswith(fake_openai.base_url)


def test_budget_too_small_for_the_instructions_is_a_config_error(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    with pytest.raises(ConfigError, match="POSTCALL_OPENAI_MAX_INPUT_TOKENS"):
        OpenAIProvider(make_settings(openai_max_input_tokens=300)).extract(make_transcript(), prompt)
    assert fake_openai.requests == []


# -- accounting --------------------------------------------------------------------------------------


def test_usage_and_cost_are_summed_over_every_attempt(fake_openai: FakeOpenAIServer, prompt: PromptTemplate) -> None:
    settings = make_settings(price_input_per_mtok=2.0, price_cached_input_per_mtok=0.5, price_output_per_mtok=8.0)
    fake_openai.enqueue(
        completion_reply("oops", prompt_tokens=1000, cached_tokens=0, completion_tokens=10),
        extraction_reply(GOOD_ANSWER, prompt_tokens=1200, cached_tokens=1000, completion_tokens=200),
    )

    usage = OpenAIProvider(settings).extract(make_transcript(), prompt).usage

    assert usage.prompt_tokens == 2200
    assert usage.cached_tokens == 1000
    assert usage.completion_tokens == 210
    assert usage.llm_calls == 2
    expected = ((2200 - 1000) * 2.0 + 1000 * 0.5 + 210 * 8.0) / 1_000_000
    assert usage.cost_usd == pytest.approx(expected)


def test_transient_failure_after_a_billed_answer_carries_what_was_spent(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    # An unusable first answer (billed), then a 503 on its re-ask: the failure says what the try cost.
    fake_openai.enqueue(
        completion_reply("oops", prompt_tokens=1000, cached_tokens=0, completion_tokens=10),
        error_reply(503, "overloaded"),
    )
    with pytest.raises(ProviderTransientError, match="503") as caught:
        OpenAIProvider(make_settings()).extract(make_transcript(), prompt)
    spent = caught.value.usage
    assert spent is not None
    assert (spent.prompt_tokens, spent.completion_tokens, spent.llm_calls) == (1000, 10, 1)
    assert spent.cost_usd > 0


def test_transient_failure_with_nothing_answered_spent_nothing(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    fake_openai.enqueue(error_reply(500, "boom"))
    with pytest.raises(ProviderTransientError) as caught:
        OpenAIProvider(make_settings()).extract(make_transcript(), prompt)
    assert caught.value.usage is None or caught.value.usage.llm_calls == 0


# -- long calls ----------------------------------------------------------------------------------------

LINE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)


def window_indices(request: RecordedRequest) -> list[int]:
    return [int(index) for index in LINE.findall(request.messages[1]["content"])]


def echo_window(request: RecordedRequest) -> ScriptedReply:
    """Answer about the window actually received, citing its global indices."""
    indices = window_indices(request)
    first, last = indices[0], indices[-1]
    refund = "The customer asked about the refund status." if first else "Customer asked about refund status"
    answer = {
        "summary": [
            # Said in every window, worded slightly differently: the merge must fold it.
            {"text": refund, "evidence": [{"utterance": first, "quote": f"line {first}"}]},
            {"text": f"Line {last} was discussed.", "evidence": [{"utterance": last, "quote": f"line {last}"}]},
        ],
        "action_items": [],
        "reason": {"text": f"Reason seen from {first}.", "evidence": [{"utterance": first, "quote": f"line {first}"}]},
        "outcome": {"text": f"Outcome seen at {last}.", "evidence": [{"utterance": last, "quote": f"line {last}"}]},
    }
    return extraction_reply(answer, prompt_tokens=len(indices) * 10, completion_tokens=50)


def test_long_transcript_is_windowed_with_global_indices_and_merged(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    utterance_count = 120
    lines = [
        (Role.customer if i % 2 else Role.agent, f"This is line {i} of a long call about a refund, padded " + "x" * 60)
        for i in range(utterance_count)
    ]
    transcript = make_transcript(lines)
    provider = OpenAIProvider(settings_with_transcript_budget(1500, prompt))
    fake_openai.responder = echo_window

    result = provider.extract(transcript, prompt)

    windows = [window_indices(request) for request in fake_openai.requests]
    assert len(windows) >= 3
    for window in windows:
        assert window == list(range(window[0], window[-1] + 1))  # whole, consecutive, global indices
    assert windows[0][0] == 0
    assert windows[-1][-1] == utterance_count - 1
    for before, after in itertools.pairwise(windows):
        assert after[0] <= before[-1]  # overlapping: nothing falls between two windows
        assert after[0] > before[0]
    # Every utterance text went out whole.
    sent = "\n".join(request.messages[1]["content"] for request in fake_openai.requests)
    for utterance in transcript.utterances:
        assert utterance.text in sent

    extraction = result.extraction
    refund = [s for s in extraction.summary if "refund" in s.text.lower()]
    assert len(refund) == 1  # the statement every window repeated is folded into one
    assert {ref.utterance for ref in refund[0].evidence} == {window[0] for window in windows}
    assert extraction.reason is not None
    assert extraction.reason.text == "Reason seen from 0."
    assert extraction.outcome is not None
    assert extraction.outcome.text == f"Outcome seen at {utterance_count - 1}."
    assert result.usage.llm_calls == len(windows)
    assert result.raw_response is not None
    assert len(json.loads(result.raw_response)) == len(windows)


def test_window_failure_names_the_window(fake_openai: FakeOpenAIServer, prompt: PromptTemplate) -> None:
    lines = [(Role.agent, f"line {i} " + "y" * 200) for i in range(40)]
    provider = OpenAIProvider(settings_with_transcript_budget(1000, prompt))
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER), completion_reply("bad"), completion_reply("bad again"))

    with pytest.raises(ExtractionInvalidError, match=r"window 2 of \d+"):
        provider.extract(make_transcript(lines), prompt)


# -- repair ----------------------------------------------------------------------------------------------

FABRICATED: dict[str, Any] = {
    "summary": GOOD_ANSWER["summary"],
    "action_items": [
        {
            "text": "Refund $50 to the customer.",
            "owner": "agent",
            "due": None,
            "evidence": [{"utterance": 2, "quote": "I will refund the extra $50"}],
        }
    ],
}


def fabricated_report() -> VerificationReport:
    return VerificationReport(
        claims=[
            VerifiedClaim(
                kind=ClaimKind.summary,
                text=FABRICATED["summary"][0]["text"],
                status=ClaimStatus.grounded,
                evidence=[
                    VerifiedEvidence(
                        cited_utterance=1,
                        utterance=1,
                        quote=FABRICATED["summary"][0]["evidence"][0]["quote"],
                        status=EvidenceStatus.exact,
                        score=1.0,
                    )
                ],
            ),
            VerifiedClaim(
                kind=ClaimKind.action_item,
                text="Refund $50 to the customer.",
                owner=Owner.agent,
                status=ClaimStatus.ungrounded,
                reason="evidence_ungrounded",
                evidence=[
                    VerifiedEvidence(
                        cited_utterance=2,
                        utterance=None,
                        quote="I will refund the extra $50",
                        status=EvidenceStatus.ungrounded,
                        reason="number_mismatch",
                    )
                ],
            ),
        ]
    )


def test_repair_sends_the_rejected_claims_with_reasons(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    previous = ProviderResult(Extraction.model_validate(FABRICATED), Usage(llm_calls=1), json.dumps(FABRICATED))
    fake_openai.enqueue(extraction_reply(GOOD_ANSWER, prompt_tokens=1500, completion_tokens=100))

    repaired = provider.repair(make_transcript(), prompt, previous, fabricated_report())

    assert repaired.extraction == Extraction.model_validate(GOOD_ANSWER)
    assert repaired.usage.llm_calls == 1  # this round only; the pipeline adds the first round
    assert repaired.usage.prompt_tokens == 1500
    [request] = fake_openai.requests
    roles = [m["role"] for m in request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert '<transcript untrusted="true">' in request.messages[1]["content"]
    assert Extraction.model_validate_json(request.messages[2]["content"]) == previous.extraction
    repair_text = request.last_user_text
    assert "verbatim" in repair_text
    assert "Refund $50 to the customer." in repair_text
    assert '"I will refund the extra $50"' in repair_text
    assert "number_mismatch" in repair_text
    assert "[utterance 2]" in repair_text
    assert "charged twice for the March invoice" not in repair_text  # grounded claims are not listed
    assert request.response_format["json_schema"]["strict"] is True


def test_repair_with_nothing_ungrounded_makes_no_call(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    previous = ProviderResult(Extraction.model_validate(GOOD_ANSWER), Usage(), "raw")
    report = VerificationReport(claims=fabricated_report().claims[:1])

    repaired = provider.repair(make_transcript(), prompt, previous, report)

    assert repaired.extraction == previous.extraction
    assert repaired.usage == Usage()
    assert fake_openai.requests == []


def test_unusable_repair_keeps_the_first_answer(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    previous = ProviderResult(Extraction.model_validate(FABRICATED), Usage(llm_calls=1), json.dumps(FABRICATED))
    fake_openai.enqueue(completion_reply("nope"), completion_reply("nope again"))

    repaired = provider.repair(make_transcript(), prompt, previous, fabricated_report())

    assert repaired.extraction == previous.extraction
    assert repaired.raw_response == previous.raw_response
    assert repaired.usage.llm_calls == 2


def test_repair_server_failure_still_raises(
    fake_openai: FakeOpenAIServer, provider: OpenAIProvider, prompt: PromptTemplate
) -> None:
    previous = ProviderResult(Extraction.model_validate(FABRICATED), Usage(llm_calls=1), json.dumps(FABRICATED))
    fake_openai.enqueue(error_reply(503))

    with pytest.raises(ProviderTransientError):
        provider.repair(make_transcript(), prompt, previous, fabricated_report())


def test_repair_of_a_long_call_sends_the_neighbourhood_of_the_problem(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    lines = [(Role.agent, f"line {i} " + "z" * 200) for i in range(80)]
    provider = OpenAIProvider(settings_with_transcript_budget(2000, prompt))
    previous_answer = {
        "summary": [{"text": "Opening.", "evidence": [{"utterance": 3, "quote": "line 3"}]}],
        "action_items": [
            {"text": "Refund $50.", "owner": "agent", "due": None, "evidence": [{"utterance": 60, "quote": "$50"}]}
        ],
    }
    report = VerificationReport(
        claims=[
            VerifiedClaim(
                kind=ClaimKind.action_item,
                text="Refund $50.",
                status=ClaimStatus.ungrounded,
                evidence=[
                    VerifiedEvidence(
                        cited_utterance=60, utterance=None, quote="$50", status=EvidenceStatus.ungrounded
                    )
                ],
            )
        ]
    )
    previous = ProviderResult(Extraction.model_validate(previous_answer), Usage(), None)
    fake_openai.enqueue(extraction_reply(previous_answer))

    provider.repair(make_transcript(lines), prompt, previous, report)

    shown = window_indices(fake_openai.requests[0])
    assert set(range(57, 64)) <= set(shown)  # the cited utterance and its neighbours
    assert 3 in shown  # what the other claims cite, so they can be restated unchanged
    assert len(shown) < len(lines)
    assert shown == sorted(shown)


def test_failure_in_a_later_window_carries_the_windows_already_answered(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate
) -> None:
    lines = [(Role.agent, f"line {i} " + "y" * 200) for i in range(40)]
    provider = OpenAIProvider(settings_with_transcript_budget(1000, prompt))
    answered: list[int] = []

    def first_window_then_outage(request: RecordedRequest) -> ScriptedReply:
        if answered:
            return error_reply(502, "bad gateway")
        answered.append(len(window_indices(request)))
        return echo_window(request)

    fake_openai.responder = first_window_then_outage
    with pytest.raises(ProviderTransientError, match="502") as caught:
        provider.extract(make_transcript(lines), prompt)
    spent = caught.value.usage
    assert spent is not None
    assert spent.llm_calls == 1
    assert spent.prompt_tokens == answered[0] * 10  # what echo_window billed for the first window
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize(
    "body",
    [
        completion_body('{"summary": []}', prompt_tokens=120, completion_tokens=7, cached_tokens=64),
        completion_body(None, finish_reason="length"),
        completion_body("", refusal="I cannot help with that"),
        {**completion_body("x"), "choices": []},
        {k: v for k, v in completion_body("x").items() if k != "usage"},
    ],
)
def test_answer_read_from_the_raw_body_equals_the_sdk_model_reading(body: dict[str, Any]) -> None:
    assert Completion.from_body(body) == Completion.from_model(ChatCompletion.model_validate(body))


def test_a_body_that_is_not_a_json_object_is_unreadable() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        Completion.from_body([completion_body("x")])


@pytest.mark.parametrize("slots", [40, 140])
def test_a_worker_keeps_one_model_connection_per_slot(
    fake_openai: FakeOpenAIServer, prompt: PromptTemplate, slots: int
) -> None:
    """Every slot of a worker can wait on the model at once: after the answers, each keeps its connection
    for the next call instead of closing it (the SDK alone keeps 100) and opening a new one."""
    settings = make_settings(worker_concurrency=slots)
    provider = OpenAIProvider(settings)
    barrier = threading.Barrier(slots)
    errors: list[BaseException] = []

    def one_call() -> None:
        barrier.wait()
        try:
            provider.extract(make_transcript(), prompt)
        except BaseException as exc:  # every failure is reported by the assertion below
            errors.append(exc)

    for _ in range(2):  # the second round finds the first round's connections idle in the pool
        fake_openai.enqueue(*[extraction_reply(GOOD_ANSWER, delay=0.5) for _ in range(slots)])
        threads = [threading.Thread(target=one_call) for _ in range(slots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert len(fake_openai.requests) == 2 * slots
    assert fake_openai.connections == slots
