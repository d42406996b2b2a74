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
FABRICATED_AMOUNT = "$250"


def fabricating_answer(user_text: str) -> dict[str, Any]:
    """A model that reads the call right but invents an amount: every statement quotes the transcript
    it was shown, and one summary point claims a $250 goodwill credit nobody offered."""
    lines: dict[str, list[tuple[int, str]]] = {}
    for raw in user_text.splitlines():
        match = _LINE.match(raw.strip())
        if match and "[" not in match["text"]:  # skip redacted lines: quote plain words only
            lines.setdefault(match["role"], []).append((int(match["index"]), match["text"]))
    agent = lines.get("agent") or next(iter(lines.values()), [])
    customer = lines.get("customer") or agent
    if not agent:
        return {"summary": [], "action_items": []}

    def cite(source: tuple[int, str]) -> dict[str, Any]:
        index, text = source
        return {"text": text, "evidence": [{"utterance": index, "quote": text}]}

    def substantive(source: list[tuple[int, str]]) -> list[tuple[int, str]]:
        return [line for line in source if len(line[1].split()) >= 6 and not line[1].rstrip().endswith("?")] or source

    credit = {**cite(agent[min(2, len(agent) - 1)]),
              "text": f"The agent offered a {FABRICATED_AMOUNT} goodwill credit for the trouble."}
    return {
        "reason": cite(substantive(customer)[0]),
        "outcome": cite(substantive(agent)[-1]),
        "summary": [credit],
        "action_items": [],
    }
