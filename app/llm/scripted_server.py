"""A local OpenAI-compatible server that answers every chat completion from a Python function.

`postcall demo` runs one call through the real `openai` provider against it, so a newcomer sees the
product's safeguard (a fabricated amount flagged, never stated as fact) with no network and no key.
It binds 127.0.0.1 on a free port, answers POST .../chat/completions only, and stops with the demo.

    with ScriptedOpenAIServer(lambda user_text: {...extraction...}) as server:
        client = OpenAI(base_url=server.base_url, api_key="demo")
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# Answers the last user message (the rendered transcript, or a repair request) with extraction JSON.
Responder = Callable[[str], dict[str, Any]]
SHUTDOWN_POLL_SECONDS = 0.02
DEMO_MODEL = "scripted-demo"


def completion_body(content: str, *, model: str = DEMO_MODEL) -> dict[str, Any]:
    """A chat.completion object as OpenAI returns it, carrying `content`."""
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": None}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }


class ScriptedOpenAIServer:
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.requests = 0
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> ScriptedOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 scripted: ScriptedOpenAIServer) -> None:
        super().__init__(address, handler)
        self.scripted = scripted


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one reply, not two writes held back by delayed ACK

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        scripted: ScriptedOpenAIServer = self.server.scripted  # type: ignore[attr-defined]
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request_error"}})
            return
        scripted.requests += 1
        users = [str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"]
        answer = scripted.responder(users[-1] if users else "")
        self._send(200, completion_body(json.dumps(answer), model=str(body.get("model") or DEMO_MODEL)))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


_LINE = re.compile(r"^\[(?P<index>\d+)\] (?P<role>\w+) \((?P<speaker>[^)]*)\): (?P<text>.+)$")
FABRICATED_AMOUNT = "$25"
FABRICATED_STATEMENT = f"The customer was charged a {FABRICATED_AMOUNT} fee for the replacement card."


def _cite(index: int, quote: str) -> list[dict[str, Any]]:
    return [{"utterance": index, "quote": quote}]


# What a good model answers for samples/bank_lost_card.json, but for one invented detail: the caller
# asked about a fee and was told the first replacement is free; the "model" says a $25 fee was charged.
BANK_CALL_ANSWER: dict[str, Any] = {
    "reason": {"text": "The customer lost their debit card.",
               "evidence": _cite(1, "I'm calling because I lost my debit card.")},
    "outcome": {"text": "Card blocked and a replacement ordered.",
                "evidence": [*_cite(11, "I've blocked the card"),
                             *_cite(13, "I've also ordered a replacement debit card")]},
    "summary": [
        {"text": "The agent saw nothing unusual on the account after the customer's last purchase.",
         "evidence": _cite(10, "I don't see anything unusual after that.")},
        {"text": FABRICATED_STATEMENT,
         "evidence": _cite(27, "the first replacement in a year is free of charge.")},
    ],
    "action_items": [
        {"text": "Email the customer a confirmation of the block and the replacement order.", "owner": "agent",
         "due": "today",
         "evidence": _cite(23, "I'll email you a confirmation of the block and the replacement order today")},
        {"text": "Activate the new card in the app when it arrives.", "owner": "customer",
         "due": "as soon as it arrives",
         "evidence": _cite(25, "please activate the new card in the app as soon as it arrives")},
    ],
}


def _shown(user_text: str) -> dict[int, str]:
    lines: dict[int, str] = {}
    for raw in user_text.splitlines():
        match = _LINE.match(raw.strip())
        if match:
            lines[int(match["index"])] = match["text"]
    return lines


def fabricating_answer(user_text: str) -> dict[str, Any]:
    """A model that reads the call right but invents an amount. For the bank sample the answer is
    `BANK_CALL_ANSWER`; for any other transcript every statement quotes a line it was shown and one
    summary point claims the same invented fee."""
    shown = _shown(user_text)
    statements = [BANK_CALL_ANSWER["reason"], BANK_CALL_ANSWER["outcome"], *BANK_CALL_ANSWER["summary"],
                  *BANK_CALL_ANSWER["action_items"]]
    if all(ref["quote"] in shown.get(ref["utterance"], "") for s in statements for ref in s["evidence"]):
        return BANK_CALL_ANSWER
    plain = [(i, text) for i, text in sorted(shown.items()) if "[" not in text]  # skip redacted lines
    if not plain:
        return {"summary": [], "action_items": []}
    first, last = plain[0], plain[-1]
    return {
        "reason": {"text": first[1], "evidence": _cite(*first)},
        "summary": [{"text": FABRICATED_STATEMENT, "evidence": _cite(*last)}],
        "action_items": [],
    }
