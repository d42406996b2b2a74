"""The `openai` provider: Structured Outputs through the official SDK, any OpenAI-compatible server.

What it guarantees to the pipeline:
- the answer is validated against the extraction contract here (not by the SDK's `parse`, which
  rebuilds the JSON schema on every call); an unusable answer (malformed, off-schema, refused, cut
  off, filtered) is re-asked once with the problems spelled out, then `ExtractionInvalidError`;
- server failures are sorted by type: `ProviderTransientError` (429, 5xx, timeouts, connection
  errors; `retry_after` carries the server's Retry-After) or `ProviderPermanentError` (401, 403,
  404, 400...). Backoff and jitter live in one place, the Celery task: the SDK's own retries are
  limited to `openai_max_attempts - 1` (default 0: every retry is the task's, with backoff and jitter);
- a transcript over the input budget is split into overlapping windows, never truncated;
- tokens (prompt, completion, cached) and cost of every attempt are summed into `Usage`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, cast

import httpx
import openai
from openai import OpenAI
from openai.lib import type_to_response_format_param
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import ValidationError

from app.config import Settings
from app.errors import (
    ConfigError,
    ExtractionInvalidError,
    ProviderError,
    ProviderPermanentError,
    ProviderTransientError,
)
from app.llm.base import ExtractionProvider, ProviderResult
from app.llm.openai_route import CHAT_COMPLETIONS_PATH, chat_route
from app.llm.openai_windows import estimate_tokens, merge_extractions, plan_windows, utterance_tokens
from app.llm.prompt import PromptTemplate, restore_neutralized
from app.schemas.extraction import Extraction
from app.schemas.grounding import VerificationReport, VerifiedClaim
from app.schemas.transcript import Transcript, Utterance
from app.schemas.usage import Usage

logger = logging.getLogger(__name__)

SCHEMA_NAME = "postcall_extraction_v1"
# An unusable answer is re-asked this many times (with the problems listed) before giving up.
MAX_REASKS = 1
# Validation errors quoted back to the model in a re-ask; more only adds noise.
MAX_ERRORS_IN_REASK = 8
# Below this many tokens left for transcript text, windows would be too small to be useful.
MIN_TRANSCRIPT_BUDGET_TOKENS = 256
# Chat formatting overhead per message, on top of its text.
TOKENS_PER_MESSAGE = 4
# Utterances shown either side of a rejected citation when a long call is repaired from an excerpt.
REPAIR_CONTEXT_UTTERANCES = 3
# Characters of a server error body quoted in our error messages.
SERVER_MESSAGE_CHARS = 300
TOKENS_PER_MILLION = 1_000_000
# Statuses worth retrying besides 429 and 5xx: request timeout and conflict (both transient by spec).
TRANSIENT_STATUSES = frozenset({408, 409})

# Keywords some strict Structured Outputs implementations reject (length and numeric bounds).
# Pydantic still enforces them on our side, so dropping them from the request loses nothing.
_UNPORTABLE_SCHEMA_KEYWORDS = frozenset(
    {"minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
)
# Schema keys whose values map names to schemas (the names are not keywords).
_SCHEMA_NAME_MAPS = frozenset({"properties", "$defs", "definitions"})
_CODE_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*)\n\s*```\s*$", re.DOTALL)


@functools.cache
def extraction_response_format() -> ResponseFormatJSONSchema:
    """The strict `response_format` for the extraction contract, built once per process.

    Every property is required, objects forbid additional properties, optional fields are
    nullable (`anyOf [..., null]`): the subset Structured Outputs accepts in strict mode.
    """
    # For a model class the SDK helper always returns a json_schema format (never text or omit).
    generated = cast(Mapping[str, Any], type_to_response_format_param(Extraction))
    schema = _without_keywords(generated["json_schema"]["schema"], _UNPORTABLE_SCHEMA_KEYWORDS)
    return {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True},
    }


def _without_keywords(schema: Any, keywords: frozenset[str]) -> Any:
    """A copy of a JSON schema without `keywords`; names inside `properties`/`$defs` are kept."""
    if isinstance(schema, list):
        return [_without_keywords(item, keywords) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key in keywords:
            continue
        if key in _SCHEMA_NAME_MAPS and isinstance(value, dict):
            cleaned[key] = {name: _without_keywords(sub, keywords) for name, sub in value.items()}
        else:
            cleaned[key] = _without_keywords(value, keywords)
    return cleaned


# ---------------------------------------------------------------------------------------------
# One client per process and configuration, created lazily under a lock (worker threads share it).


@dataclass(frozen=True)
class _ClientConfig:
    base_url: str | None
    api_key: str = field(repr=False)
    timeout: float
    max_retries: int
    keepalive: int


# The SDK keeps at most this many idle connections per client; a worker with more slots waiting on the model
# at once would close the rest after every answer and open (and, on https, handshake) them again.
SDK_KEEPALIVE_CONNECTIONS = 100


def keepalive_connections(settings: Settings) -> int:
    """Idle model connections worth keeping: one per worker slot that can wait on the model at once."""
    return max(SDK_KEEPALIVE_CONNECTIONS, settings.worker_concurrency or 0)


_clients: dict[_ClientConfig, OpenAI] = {}
_clients_lock = threading.Lock()


def shared_client(settings: Settings) -> OpenAI:
    """The process-wide client for the current settings (OPENAI_API_KEY, OPENAI_BASE_URL included).

    Building a client loads the certificate bundle (~18 ms), so it is built once and reused; the
    SDK's client is safe to share between threads.
    """
    api_key = settings.openai_key
    if not api_key:
        raise ConfigError(
            "OPENAI_API_KEY is not set. Set it to your key (local servers such as vLLM, Ollama or "
            "llama.cpp accept any non-empty value) or use POSTCALL_LLM_PROVIDER=heuristic."
        )
    config = _ClientConfig(
        base_url=settings.openai_base_url or None,
        api_key=api_key,
        timeout=settings.openai_timeout,
        max_retries=max(0, settings.openai_max_attempts - 1),
        keepalive=keepalive_connections(settings),
    )
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            # Built as the SDK's own limits type: the SDK's HTTP library (httpx2 in openai 3.x, httpx
            # before) is its business, not a dependency of ours.
            sdk_limits = openai.DEFAULT_CONNECTION_LIMITS
            limits = type(sdk_limits)(
                max_connections=max(sdk_limits.max_connections or 0, config.keepalive),
                max_keepalive_connections=config.keepalive,
                keepalive_expiry=sdk_limits.keepalive_expiry,
            )
            client = OpenAI(
                api_key=config.api_key,
                base_url=config.base_url,
                timeout=config.timeout,
                max_retries=config.max_retries,
                http_client=openai.DefaultHttpxClient(limits=limits, timeout=config.timeout),
            )
            _clients[config] = client
        return client


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    """What one completion amounts to: a valid extraction, or a problem and what to tell the model."""

    raw: str | None
    extraction: Extraction | None = None
    problem: str = ""
    feedback: str = ""


@dataclass(frozen=True)
class _Answer:
    """The outcome of one question, re-ask included."""

    raw: str | None
    usage: Usage
    extraction: Extraction | None
    problem: str = ""


@dataclass(frozen=True)
class Completion:
    """What the provider reads of a chat.completion: the first choice and the token counts.

    Synchronous answers are read straight from the JSON body (the SDK's response models cost about a
    millisecond per answer to build, for the five fields read here); batch answers from the SDK model
    that validated them.
    """

    has_choice: bool
    content: str | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_body(cls, body: Any) -> Completion:
        """Read a chat.completion JSON body; fields it lacks read as absent (no choice, no tokens)."""
        if not isinstance(body, dict):
            raise ValueError(f"a chat.completion is a JSON object, not {type(body).__name__}")
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        message = choice.get("message") if choice is not None else None
        message = message if isinstance(message, dict) else {}
        reported = body.get("usage")
        usage: dict[str, Any] = reported if isinstance(reported, dict) else {}
        details = usage.get("prompt_tokens_details")
        return cls(
            has_choice=choice is not None,
            content=_text_or_none(message.get("content")),
            refusal=_text_or_none(message.get("refusal")),
            finish_reason=_text_or_none(choice.get("finish_reason")) if choice is not None else None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=_count(details.get("cached_tokens")) if isinstance(details, dict) else 0,
        )

    @classmethod
    def from_model(cls, completion: ChatCompletion) -> Completion:
        reported = completion.usage
        details = reported.prompt_tokens_details if reported else None
        if not completion.choices:
            choice_fields: dict[str, Any] = {"has_choice": False}
        else:
            choice = completion.choices[0]
            choice_fields = {"has_choice": True, "content": choice.message.content,
                             "refusal": choice.message.refusal, "finish_reason": choice.finish_reason}
        return cls(
            **choice_fields,
            prompt_tokens=reported.prompt_tokens if reported else 0,
            completion_tokens=reported.completion_tokens if reported else 0,
            cached_tokens=(details.cached_tokens or 0) if details else 0,
        )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OpenAIProvider(ExtractionProvider):
    """Extraction through `chat.completions.create` with a strict JSON schema."""

    name: ClassVar[str] = "openai"
    sends_data_offsite: ClassVar[bool] = True
    supports_repair: ClassVar[bool] = True

    def __init__(self, settings: Settings, *, client: OpenAI | None = None) -> None:
        self._settings = settings
        self._client = client

    @property
    def model(self) -> str:
        return self._settings.openai_model

    @property
    def batch_model(self) -> str:
        """The model named in batch requests (POSTCALL_BATCH_MODEL, else the model)."""
        return self._settings.batch_model or self._settings.openai_model

    def client(self) -> OpenAI:
        """The SDK client this provider talks through (the process-wide one unless one was given)."""
        return self._client or shared_client(self._settings)

    # -- the provider contract -----------------------------------------------------------------

    def extract(self, transcript: Transcript, prompt: PromptTemplate) -> ProviderResult:
        windows = self._windows(transcript, prompt)
        return self._extract_windows(prompt, windows, [None] * len(windows))

    # -- batch mode: the same questions, asked through a batch file ------------------------------

    def batch_request_bodies(self, transcript: Transcript, prompt: PromptTemplate) -> list[dict[str, Any]]:
        """The chat-completions bodies `extract` would send first, one per window, without sending them.

        A batch input file carries them; `extract_from_answers` finishes the extraction from the answers.
        """
        bodies = [self.request_body(self._question(prompt, window)) for window in self._windows(transcript, prompt)]
        for body in bodies:
            body["model"] = self.batch_model
        return bodies

    def usage_of_answers(self, answers: Sequence[Mapping[str, Any]]) -> Usage:
        """What batch answers (chat.completion bodies) cost, at the batch price, whether used or not."""
        usage = Usage()
        for body in answers:
            try:
                usage += self._usage_of(Completion.from_body(dict(body)), 0.0, "batch")
            except ValueError:
                continue  # not a chat.completion: nothing it reports can be counted
        return usage

    def extract_from_answers(
        self, transcript: Transcript, prompt: PromptTemplate, answers: Sequence[Mapping[str, Any]]
    ) -> ProviderResult:
        """Finish an extraction whose first answers (chat.completion bodies, one per window, in window
        order) came from a batch output file. They are judged exactly like synchronous answers; an
        unusable or unreadable one is re-asked once synchronously, at the synchronous price."""
        windows = self._windows(transcript, prompt)
        if len(answers) != len(windows):
            raise ExtractionInvalidError(
                f"the batch answered {len(answers)} windows but the transcript now needs {len(windows)} "
                "(was POSTCALL_OPENAI_MAX_INPUT_TOKENS changed?); `postcall retry` asks again"
            )
        firsts: list[Completion | None] = []
        for body in answers:
            try:
                firsts.append(Completion.from_model(ChatCompletion.model_validate(body)))
            except ValidationError as exc:
                logger.info("unreadable batch answer (%s); asking synchronously", exc.error_count())
                firsts.append(None)
        return self._extract_windows(prompt, windows, firsts)

    def request_body(self, messages: list[ChatCompletionMessageParam]) -> dict[str, Any]:
        """One chat-completions request body: strict JSON schema, output cap, the configured model."""
        return {
            "model": self._settings.openai_model,
            "messages": messages,
            "response_format": extraction_response_format(),
            "max_completion_tokens": self._settings.openai_max_output_tokens,
        }

    def _windows(self, transcript: Transcript, prompt: PromptTemplate) -> list[list[Utterance]]:
        windows = plan_windows(transcript.utterances, self.transcript_budget(prompt))
        if len(windows) > 1:
            logger.info(
                "transcript of %d utterances split into %d overlapping windows",
                len(transcript.utterances),
                len(windows),
            )
        return windows

    def _extract_windows(
        self,
        prompt: PromptTemplate,
        windows: Sequence[Sequence[Utterance]],
        firsts: Sequence[Completion | None],
    ) -> ProviderResult:
        usage = Usage()
        parts: list[Extraction] = []
        raws: list[str | None] = []
        for number, (window, first) in enumerate(zip(windows, firsts, strict=True), start=1):
            try:
                answer = self._ask(self._question(prompt, window), first=first)
            except ProviderTransientError as exc:
                exc.add_spent(usage)  # the windows already answered were billed
                raise
            usage += answer.usage
            if answer.extraction is None:
                where = f" (window {number} of {len(windows)})" if len(windows) > 1 else ""
                raise ExtractionInvalidError(
                    f"{answer.problem}{where}, still after {MAX_REASKS} re-ask", raw=answer.raw, usage=usage
                )
            parts.append(answer.extraction)
            raws.append(answer.raw)
        raw = raws[0] if len(raws) == 1 else json.dumps(raws, ensure_ascii=False)
        return ProviderResult(extraction=merge_extractions(parts), usage=usage, raw_response=raw)

    def repair(
        self,
        transcript: Transcript,
        prompt: PromptTemplate,
        previous: ProviderResult,
        report: VerificationReport,
    ) -> ProviderResult:
        """Send the ungrounded claims back once with the verifier's reasons; return the full answer.

        The returned usage covers this round only. An unusable repair answer keeps `previous`
        (its claims stay flagged, which is the honest outcome); server failures still raise.
        """
        problem_claims = report.ungrounded_claims
        if not problem_claims:
            return ProviderResult(previous.extraction, Usage(), previous.raw_response)
        previous_json = previous.extraction.model_dump_json()
        budget = self.transcript_budget(prompt) - estimate_tokens(previous_json)
        excerpt = _repair_excerpt(transcript.utterances, previous.extraction, problem_claims, budget)
        messages: list[ChatCompletionMessageParam] = [
            *self._question(prompt, excerpt),
            {"role": "assistant", "content": previous_json},
            {"role": "user", "content": prompt.render_repair(describe_problems(problem_claims))},
        ]
        answer = self._ask(messages)
        if answer.extraction is None:
            logger.warning("repair answer unusable (%s); keeping the first answer", answer.problem)
            return ProviderResult(previous.extraction, answer.usage, previous.raw_response)
        return ProviderResult(answer.extraction, answer.usage, answer.raw)

    # -- one question, one re-ask ----------------------------------------------------------------

    @staticmethod
    def _question(
        prompt: PromptTemplate, utterances: Sequence[Utterance]
    ) -> list[ChatCompletionMessageParam]:
        # Static instructions first so the provider's prompt cache covers them across calls.
        return [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.render_user(utterances)},
        ]

    def _ask(self, messages: list[ChatCompletionMessageParam], first: Completion | None = None) -> _Answer:
        """Ask (or take `first`, an answer that came through a batch), re-asking once if unusable."""
        usage = Usage()
        for attempt in range(MAX_REASKS + 1):
            if attempt == 0 and first is not None:
                completion, seconds, mode = first, 0.0, "batch"
            else:
                try:
                    completion, seconds = self._create(messages)
                except ProviderTransientError as exc:
                    exc.add_spent(usage)  # an unusable first answer was billed before its re-ask failed
                    raise
                mode = "sync"
            usage += self._usage_of(completion, seconds, mode)
            verdict = judge_completion(completion, self._settings.openai_max_output_tokens)
            if verdict.extraction is not None:
                return _Answer(raw=verdict.raw, usage=usage, extraction=verdict.extraction)
            logger.info("unusable answer (attempt %d): %s", attempt + 1, verdict.problem)
            messages = [
                *messages,
                {"role": "assistant", "content": verdict.raw or "(no answer)"},
                {"role": "user", "content": verdict.feedback},
            ]
        return _Answer(raw=verdict.raw, usage=usage, extraction=None, problem=verdict.problem)

    def _create(self, messages: list[ChatCompletionMessageParam]) -> tuple[Completion, float]:
        client = self.client()
        started = time.perf_counter()
        try:
            # The SDK's raw path: the same request, headers, timeout, retries and status errors as
            # `chat.completions.create`, without transforming the body or building response models; for
            # the usual client the request around the body is assembled once (app/llm/openai_route.py).
            body = self.request_body(messages)
            route = chat_route(client)
            if route is not None:
                response = route.post(body)
            else:
                response = client.post(CHAT_COMPLETIONS_PATH, body=body, cast_to=httpx.Response)
            completion = Completion.from_body(json.loads(response.content))
        except openai.APIError as exc:
            raise translate_api_error(
                exc, model=self._settings.openai_model, base_url=str(client.base_url)
            ) from exc
        except ValueError as exc:  # json.JSONDecodeError included
            # A 200 whose body is not a JSON object: typically a proxy or gateway page in front of the server.
            raise ProviderTransientError(f"unreadable (non-JSON) response from {client.base_url}: {exc}") from exc
        return completion, time.perf_counter() - started

    def _usage_of(self, completion: Completion, seconds: float, mode: str = "sync") -> Usage:
        prompt_tokens = completion.prompt_tokens
        completion_tokens = completion.completion_tokens
        cached_tokens = completion.cached_tokens
        model = self.batch_model if mode == "batch" else self._settings.openai_model
        prices = self._settings.token_prices(model, mode)
        cost = (
            (prompt_tokens - cached_tokens) * prices.input
            + cached_tokens * prices.cached_input
            + completion_tokens * prices.output
        ) / TOKENS_PER_MILLION
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            cost_usd=cost,
            llm_calls=1,
            llm_seconds=seconds,
        )

    def transcript_budget(self, prompt: PromptTemplate) -> int:
        """Tokens left for transcript lines once instructions and schema are counted."""
        fixed = _fixed_prompt_tokens(prompt)
        budget = self._settings.openai_max_input_tokens - fixed
        if budget < MIN_TRANSCRIPT_BUDGET_TOKENS:
            raise ConfigError(
                f"POSTCALL_OPENAI_MAX_INPUT_TOKENS={self._settings.openai_max_input_tokens} leaves "
                f"{budget} tokens for the transcript after the instructions and schema (~{fixed}); "
                f"raise it to at least {fixed + MIN_TRANSCRIPT_BUDGET_TOKENS}"
            )
        return budget


@functools.lru_cache(maxsize=32)
def _fixed_prompt_tokens(prompt: PromptTemplate) -> int:
    """Tokens of a prompt's instructions, its empty user message and the schema: the same for every call
    with that prompt (a process loads its prompt once), so counted once rather than per call."""
    return (
        estimate_tokens(prompt.system)
        + estimate_tokens(prompt.render_user([]))
        + estimate_tokens(json.dumps(extraction_response_format()))
        + 2 * TOKENS_PER_MESSAGE
    )


# ---------------------------------------------------------------------------------------------
# Judging an answer


def judge_completion(completion: Completion | ChatCompletion, max_output_tokens: int) -> _Verdict:
    """Validate one completion against the contract; say what is wrong when it is unusable."""
    if isinstance(completion, ChatCompletion):
        completion = Completion.from_model(completion)
    if not completion.has_choice:
        return _Verdict(
            raw=None,
            problem="the server returned no choices",
            feedback="You returned no answer. Return the complete JSON answer.",
        )
    if completion.refusal:
        return _Verdict(
            raw=completion.refusal,
            problem=f"the model refused: {completion.refusal[:SERVER_MESSAGE_CHARS]}",
            feedback=(
                "The transcript is a recorded customer-service call supplied for after-call "
                "documentation. Extract the record as instructed; leave out anything you cannot "
                "support with a verbatim quote. Return the complete JSON answer."
            ),
        )
    raw = completion.content
    if completion.finish_reason == "length":
        return _Verdict(
            raw=raw,
            problem=f"the answer was cut off at the output limit ({max_output_tokens} tokens)",
            feedback=(
                "Your answer was cut off before the JSON was complete. Answer again, more concisely: "
                "fewer and shorter statements, short quotes (a clause each)."
            ),
        )
    if completion.finish_reason == "content_filter":
        return _Verdict(
            raw=raw,
            problem="the answer was blocked by the server's content filter",
            feedback=(
                "Your answer was blocked by a content filter. Answer again with neutral wording in "
                "the statements; keep quotes short."
            ),
        )
    if not raw or not raw.strip():
        return _Verdict(
            raw=raw,
            problem="the answer was empty",
            feedback="Your answer was empty. Return the complete JSON answer.",
        )
    try:
        extraction = Extraction.model_validate_json(_strip_code_fence(raw))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        malformed = any(error["type"] == "json_invalid" for error in errors)
        listed = "\n".join(
            f"- {'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            for error in errors[:MAX_ERRORS_IN_REASK]
        )
        more = len(errors) - MAX_ERRORS_IN_REASK
        if more > 0:
            listed += f"\n- ... and {more} more"
        kind = "malformed JSON" if malformed else f"schema violation ({len(errors)} errors)"
        first = errors[0]
        return _Verdict(
            raw=raw,
            problem=f"{kind}: {'.'.join(str(p) for p in first['loc']) or '(root)'}: {first['msg']}",
            feedback=(
                "Your answer could not be used; these problems were found:\n"
                f"{listed}\n"
                "Return the complete JSON answer again, valid against the schema, fixing these problems."
            ),
        )
    return _Verdict(raw=raw, extraction=restore_neutralized(extraction))


def _strip_code_fence(raw: str) -> str:
    # Servers without constrained decoding sometimes wrap JSON in a Markdown fence.
    fenced = _CODE_FENCE.match(raw)
    return fenced.group("body") if fenced else raw


# ---------------------------------------------------------------------------------------------
# Server failures


def translate_api_error(
    exc: openai.APIError, *, model: str, base_url: str, requested: str | None = None
) -> ProviderError:
    """Sort an SDK error into retry-later or fail-now, with a message an operator can act on. `requested`:
    what a request other than a chat completion asked for (a batch, a file), which a 404 says is missing."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTransientError(f"timed out waiting for {base_url}")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {cause}" if cause else ""
        return ProviderTransientError(f"could not reach {base_url}{detail}")
    if not isinstance(exc, openai.APIStatusError):
        return ProviderTransientError(f"unreadable response from {base_url}: {exc.message}")

    status = exc.status_code
    detail = _server_message(exc)
    if status == 429:
        if exc.code == "insufficient_quota":
            return ProviderPermanentError(f"quota exhausted on {base_url} (429): check billing. {detail}")
        return ProviderTransientError(
            f"rate limited by {base_url} (429): {detail}", retry_after=parse_retry_after(exc.response.headers)
        )
    if status >= 500 or status in TRANSIENT_STATUSES:
        return ProviderTransientError(
            f"server error {status} from {base_url}: {detail}",
            retry_after=parse_retry_after(exc.response.headers),
        )
    if status == 401:
        return ProviderPermanentError(f"authentication failed (401): check OPENAI_API_KEY. {detail}")
    if status == 403:
        return ProviderPermanentError(
            f"permission denied (403) for model {model!r} on {base_url}: check OPENAI_API_KEY and the "
            f"key's project access. {detail}"
        )
    if status == 404 and requested is not None:
        return ProviderPermanentError(f"{requested}: not found on {base_url} (404). {detail}")
    if status == 404:
        return ProviderPermanentError(
            f"model {model!r} not found on {base_url} (404): check POSTCALL_OPENAI_MODEL "
            f"(on Azure, the deployment name) and OPENAI_BASE_URL. {detail}"
        )
    if status == 400 and exc.code == "context_length_exceeded":
        return ProviderPermanentError(
            f"prompt too long for model {model!r} (400): lower POSTCALL_OPENAI_MAX_INPUT_TOKENS. {detail}"
        )
    return ProviderPermanentError(f"request rejected by {base_url} ({status}): {detail}")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict) and isinstance(nested.get("message"), str):
            return str(nested["message"])[:SERVER_MESSAGE_CHARS]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:SERVER_MESSAGE_CHARS]
    return exc.message[:SERVER_MESSAGE_CHARS]


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms` (OpenAI) or `retry-after` (seconds or date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---------------------------------------------------------------------------------------------
# Repair


def describe_problems(claims: Sequence[VerifiedClaim]) -> str:
    """The verifier's findings as a numbered list the repair prompt quotes to the model."""
    lines: list[str] = []
    for number, claim in enumerate(claims, start=1):
        label = claim.kind.value.replace("_", " ")
        extras = []
        if claim.owner is not None:
            extras.append(f"owner {claim.owner.value}")
        if claim.due is not None:
            extras.append(f"due {claim.due!r}")
        suffix = f" ({', '.join(extras)})" if extras else ""
        lines.append(f"{number}. {label}{suffix}: {json.dumps(claim.text, ensure_ascii=False)}")
        if claim.reason:
            lines.append(f"   - claim problem: {claim.reason}")
        if not claim.evidence:
            lines.append("   - no evidence was given")
        for evidence in claim.evidence:
            if evidence.grounded:
                continue
            why = evidence.reason or "not found"
            lines.append(
                f"   - evidence [utterance {evidence.cited_utterance}] "
                f"{json.dumps(evidence.quote, ensure_ascii=False)}: {why}"
            )
    return "\n".join(lines)


def _repair_excerpt(
    utterances: Sequence[Utterance],
    previous: Extraction,
    problem_claims: Sequence[VerifiedClaim],
    budget_tokens: int,
) -> list[Utterance]:
    """The transcript lines to show in a repair round: all of it when it fits the budget.

    Otherwise the neighbourhoods of the rejected citations come first, then the utterances the
    other claims cite (so the model can restate them unchanged), in transcript order.
    """
    costs = [utterance_tokens(u) for u in utterances]
    if sum(costs) <= budget_tokens:
        return list(utterances)
    last = len(utterances) - 1
    wanted: list[int] = []
    for claim in problem_claims:
        for evidence in claim.evidence:
            for index in (evidence.cited_utterance, evidence.utterance):
                if index is None:
                    continue
                centre = min(max(index, 0), last)
                low = max(0, centre - REPAIR_CONTEXT_UTTERANCES)
                high = min(last, centre + REPAIR_CONTEXT_UTTERANCES)
                wanted.extend(range(low, high + 1))
    statements = [*previous.summary, *previous.action_items, previous.reason, previous.outcome]
    for statement in statements:
        if statement is not None:
            wanted.extend(min(max(ref.utterance, 0), last) for ref in statement.evidence)
    chosen: set[int] = set()
    used = 0
    for index in wanted:
        if index in chosen:
            continue
        if used + costs[index] > budget_tokens and chosen:
            continue
        chosen.add(index)
        used += costs[index]
    if not chosen:  # no citation at all: the opening of the call is the best context left
        for index, cost in enumerate(costs):
            if used + cost > budget_tokens and chosen:
                break
            chosen.add(index)
            used += cost
    return [utterances[index] for index in sorted(chosen)]
