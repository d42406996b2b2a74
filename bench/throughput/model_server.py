"""A cheap OpenAI-compatible model for throughput runs: asyncio, keep-alive, thousands of open requests.

Every POST .../chat/completions is answered after `--delay` seconds (a path starting with /nodelay/ is
answered at once) with an extraction whose statements quote the transcript it was shown, so the verifier
grounds them and the pipeline does its full work. Waiting costs no CPU: a sleeping request is a timer in
the event loop, not a thread, so the server's own CPU per call stays well under a millisecond.

    .venv/bin/python -m bench.throughput.model_server --port 8765 --delay 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

from app.llm.scripted_server import completion_body
from tests.support.fake_openai import extraction_quoting

MAX_HEADER_BYTES = 64 * 1024
NO_DELAY_PREFIX = "/nodelay/"
MODEL = "bench-model"


def answer(body: bytes) -> bytes:
    request: dict[str, Any] = json.loads(body)
    user_texts = [m.get("content") or "" for m in request.get("messages", []) if m.get("role") == "user"]
    extraction = extraction_quoting(user_texts[-1] if user_texts else "")
    return json.dumps(completion_body(json.dumps(extraction), model=MODEL)).encode()


def http_response(status: str, payload: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            parts = request_line.split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if not path.endswith("/chat/completions"):
                writer.write(http_response("404 Not Found", b'{"error": {"message": "not found"}}'))
                await writer.drain()
                continue
            if not path.startswith(NO_DELAY_PREFIX):
                await asyncio.sleep(delay)
            writer.write(http_response("200 OK", answer(body)))
            await writer.drain()
    finally:
        writer.close()


async def serve(port: int, delay: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, delay), "127.0.0.1", port, limit=MAX_HEADER_BYTES, backlog=4096
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on 127.0.0.1:{port}, delay {delay}s", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds before each answer")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()
