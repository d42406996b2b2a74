"""The demo's scripted OpenAI-compatible server, through the official SDK (127.0.0.1 only)."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from app.llm.scripted_server import BANK_CALL_ANSWER, FABRICATED_STATEMENT, ScriptedOpenAIServer, fabricating_answer
from tests.support.fake_openai import ANSWER_TIMEOUT


def test_answers_chat_completions_from_the_responder() -> None:
    seen: list[str] = []

    def responder(user_text: str) -> dict[str, object]:
        seen.append(user_text)
        return {"summary": [], "action_items": []}

    with ScriptedOpenAIServer(responder) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=ANSWER_TIMEOUT)
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "the call"}]
        )
        assert json.loads(completion.choices[0].message.content or "") == {"summary": [], "action_items": []}
        assert seen == ["the call"] and server.requests == 1
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="m", input="x")


def test_fabricating_answer_keys_on_the_bank_sample_and_falls_back_elsewhere() -> None:
    bank = "\n".join(
        f"[{ref['utterance']}] agent (Agent): {ref['quote']}"
        for statement in [BANK_CALL_ANSWER["reason"], BANK_CALL_ANSWER["outcome"], *BANK_CALL_ANSWER["summary"],
                          *BANK_CALL_ANSWER["action_items"]]
        for ref in statement["evidence"]
    )
    assert fabricating_answer(bank) == BANK_CALL_ANSWER
    other = fabricating_answer("[0] agent (A): Hello there.\n[1] customer (C): My router is broken again.")
    assert other["reason"]["evidence"] == [{"utterance": 0, "quote": "Hello there."}]
    assert other["summary"][0]["text"] == FABRICATED_STATEMENT
    assert fabricating_answer("no transcript lines") == {"summary": [], "action_items": []}
