"""The OpenAI Batch API (also Azure OpenAI's, and the JSONL of vLLM's batch runner): files and batches.

A batch input file is JSONL, one request per line:
    {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {<chat request>}}
The output and error files are JSONL too, one line per request, in no particular order:
    {"id": "...", "custom_id": "...", "response": {"status_code": 200, "body": {<chat.completion>}},
     "error": null}
A request that failed has a non-200 `response` or an `error` object ({"code", "message"}): expired and
cancelled batches list their unanswered requests that way (code `batch_expired` / `batch_cancelled`).

This module only speaks the protocol; which calls go into which batch is app/pipeline/batch.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import openai
from openai import OpenAI
from openai.types import Batch

from app.errors import ProviderTransientError
from app.llm.openai_provider import translate_api_error

logger = logging.getLogger(__name__)

# custom_id = "<call id>.<first transcript-hash characters>.b<batch>.w<window>of<windows>": it names the
# call and the attempt (the batch), and lets a result for a replaced transcript be recognised and dropped.
CUSTOM_ID_HASH_CHARS = 12
# How many recent batches are searched for one already created from our input file (a collector killed
# between creating the batch and recording it).
RECENT_BATCHES_SEARCHED = 100
ERROR_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class CustomId:
    call_id: str
    hash_prefix: str
    batch_id: int
    window: int  # 1-based
    windows: int

    def __str__(self) -> str:
        return f"{self.call_id}.{self.hash_prefix}.b{self.batch_id}.w{self.window}of{self.windows}"

    @classmethod
    def for_request(cls, call_id: str, transcript_hash: str, batch_id: int, window: int, windows: int) -> CustomId:
        return cls(call_id, transcript_hash[:CUSTOM_ID_HASH_CHARS], batch_id, window, windows)

    @classmethod
    def parse(cls, text: str) -> CustomId | None:
        """The parts of one of our custom ids; None for anything else."""
        parts = text.split(".")
        if len(parts) != 4 or not parts[2].startswith("b") or not parts[3].startswith("w") or "of" not in parts[3]:
            return None
        window, _, windows = parts[3][1:].partition("of")
        try:
            return cls(parts[0], parts[1], int(parts[2][1:]), int(window), int(windows))
        except ValueError:
            return None


def request_line(custom_id: CustomId, body: Mapping[str, Any], url: str) -> bytes:
    """One line of a batch input file (newline included)."""
    line = {"custom_id": str(custom_id), "method": "POST", "url": url, "body": body}
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


# The error of a line that holds neither a response nor an error (a request line, not an answer).
NO_RESPONSE = "no response"


# What a 404 from the Files or Batches endpoints means (`vllm serve` has neither).
_NO_BATCH_API = "the Files/Batch API (a server without one, such as `vllm serve`, takes `postcall batches export`)"


@dataclass(frozen=True)
class LineResult:
    """One line of an output or error file: the chat.completion body, or why there is none."""

    custom_id: str
    body: dict[str, Any] | None
    error: str | None


def parse_result_lines(text: str) -> dict[str, LineResult]:
    """Output or error file lines by custom_id; blank and unreadable lines are skipped (and logged)."""
    results: dict[str, LineResult] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            custom_id = str(line["custom_id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("batch result line %d is not a result line; skipped", number)
            continue
        result = _line_result(custom_id, line)
        earlier = results.get(custom_id)
        # A request answered twice (a runner retried it): an answer wins over an error, whatever the order,
        # so a good answer is not thrown away and paid for again.
        if earlier is None or earlier.body is None:
            results[custom_id] = result
    return results


def _line_result(custom_id: str, line: Mapping[str, Any]) -> LineResult:
    error = line.get("error")
    response = line.get("response")
    if isinstance(error, Mapping):
        return LineResult(custom_id, None, _describe_error(error))
    if not isinstance(response, Mapping):
        return LineResult(custom_id, None, NO_RESPONSE)
    status = response.get("status_code")
    body = response.get("body")
    if status != 200 or not isinstance(body, dict):
        detail = ""
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
            detail = ": " + _describe_error(body["error"])
        return LineResult(custom_id, None, f"status {status}{detail}"[:ERROR_MESSAGE_CHARS])
    return LineResult(custom_id, body, None)


def _describe_error(error: Mapping[str, Any]) -> str:
    code = error.get("code")
    message = str(error.get("message") or "no message")
    return (f"{code}: {message}" if code else message)[:ERROR_MESSAGE_CHARS]


@dataclass(frozen=True)
class BatchInfo:
    """What the provider says about one batch."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None
    error_file_id: str | None
    total: int
    completed: int
    failed: int
    errors: str | None  # why a batch failed validation

    @classmethod
    def of(cls, batch: Batch) -> BatchInfo:
        counts = batch.request_counts
        errors = None
        if batch.errors is not None and batch.errors.data:
            errors = "; ".join(
                f"{e.code or 'error'}: {e.message or ''}".strip() for e in batch.errors.data
            )[:ERROR_MESSAGE_CHARS]
        return cls(
            id=batch.id,
            status=batch.status,
            input_file_id=batch.input_file_id,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            total=counts.total if counts else 0,
            completed=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            errors=errors,
        )


class BatchClient:
    """Files and batches through the official SDK; API errors sorted into transient and permanent."""

    def __init__(self, client: OpenAI, model: str) -> None:
        self._client = client
        self._model = model

    def upload(self, name: str, content: bytes) -> str:
        """Upload a batch input file; returns its file id."""
        with self._translated(_NO_BATCH_API):
            return self._client.files.create(file=(name, content, "application/jsonl"), purpose="batch").id

    def create(self, input_file_id: str, *, endpoint: str, completion_window: str, label: str) -> BatchInfo:
        with self._translated(_NO_BATCH_API):
            batch = self._client.batches.create(
                input_file_id=input_file_id,
                endpoint=endpoint,  # type: ignore[arg-type]  # the SDK lists the endpoints it knows
                completion_window=completion_window,  # type: ignore[arg-type]
                metadata={"postcall_batch": label},
            )
        return BatchInfo.of(batch)

    def find_by_input_file(self, input_file_id: str) -> BatchInfo | None:
        """A recent batch already created from `input_file_id`, if any."""
        with self._translated(_NO_BATCH_API):
            page = self._client.batches.list(limit=RECENT_BATCHES_SEARCHED)
            for batch in page.data:
                if batch.input_file_id == input_file_id:
                    return BatchInfo.of(batch)
        return None

    def retrieve(self, provider_batch_id: str) -> BatchInfo:
        with self._translated(f"batch {provider_batch_id}"):
            return BatchInfo.of(self._client.batches.retrieve(provider_batch_id))

    def cancel(self, provider_batch_id: str) -> BatchInfo:
        with self._translated(f"batch {provider_batch_id}"):
            return BatchInfo.of(self._client.batches.cancel(provider_batch_id))

    def download(self, file_id: str) -> str:
        """The text of an output or error file."""
        with self._translated(f"file {file_id}"):
            return self._client.files.content(file_id).text

    @contextlib.contextmanager
    def _translated(self, requested: str) -> Iterator[None]:
        """Turn SDK errors into Postcall's transient and permanent provider errors; a 404 names what was
        `requested` (a batch, a file: not the model a chat request names)."""
        base_url = str(self._client.base_url)
        try:
            yield
        except openai.APIError as exc:
            raise translate_api_error(exc, model=self._model, base_url=base_url, requested=requested) from exc
        except json.JSONDecodeError as exc:
            raise ProviderTransientError(f"unreadable (non-JSON) response from {base_url}: {exc}") from exc
