"""Batch mode: gather waiting calls into provider batch jobs, follow them, and feed every answer into
the same path as a synchronous one (`process_call`: validation, verification, repair, persist).

Two plain functions, each run by a beat task (app/worker/tasks.py) or `postcall batches collect|poll`:

- `collect_batches`: calls in batch mode, `queued` and in no batch are assigned to a new `llm_batches`
  row (one transaction), their requests written as JSONL within the file limits, the file uploaded
  and the batch created. A batch left `preparing` by a killed collector is submitted by the next pass:
  the file is rebuilt from its calls, and a batch already created from the recorded input file is
  adopted instead of created twice.
- `poll_batches`: each open batch is asked for its status (backing off while it runs); once finished,
  its output and error files are read and every call still in the batch is handled: a full answer goes
  through `process_call`; an errored or missing line puts the call back for the next batch (one attempt
  spent); a transient failure (the repair request) leaves the call in the batch for the next pass.
  The batch is `collected` when no call is left in it.

Every step is idempotent and its state is in the database: a worker, beat or Redis lost between steps
costs at most a repeated step. A stored result is never stored twice: `process_call` finds it by its
idempotency key (the same as sync mode's) and skips. Concurrent collectors and pollers take a lease on
a batch (`lease_until`), which a killed one's loses when it runs out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.session import is_sqlite, unit_of_work
from app.errors import ConfigError, NotFoundError, PermanentError, ProviderTransientError, TransientError
from app.handoff.outbox import EventType, record_event
from app.llm.base import ExtractionProvider, ProviderResult
from app.llm.openai_batch import (
    CUSTOM_ID_HASH_CHARS,
    NO_RESPONSE,
    BatchClient,
    BatchInfo,
    CustomId,
    LineResult,
    parse_result_lines,
    request_line,
)
from app.llm.openai_provider import OpenAIProvider
from app.llm.prompt import PromptTemplate
from app.models import BatchStatus, Call, CallState, ExtractionRun, LlmBatch, LlmMode, RunStatus
from app.models.tables import FINISHED_BATCH_STATUSES, utcnow
from app.pipeline.calls import load_transcript, lock_call, set_state
from app.pipeline.persist import RunFacts, add_run
from app.pipeline.redact import redact_transcript
from app.pipeline.run import process_call
from app.privacy.mask import stored_error
from app.schemas.transcript import Transcript

logger = logging.getLogger(__name__)

FINISHED = frozenset(status.value for status in FINISHED_BATCH_STATUSES)
# A poller renews its lease on a batch after handling this many calls.
LEASE_RENEW_EVERY_CALLS = 50


def batch_provider(provider: ExtractionProvider) -> OpenAIProvider:
    """The provider, if it can send batches (only `openai` can)."""
    if not isinstance(provider, OpenAIProvider):
        raise ConfigError(
            f"batch mode needs the openai provider (POSTCALL_LLM_PROVIDER=openai); {provider.name!r} has no batch API"
        )
    return provider


def _redact(settings: Settings, provider: ExtractionProvider) -> bool:
    return settings.redact_for_llm and provider.sends_data_offsite


def _take_lease(factory: sessionmaker[Session], batch_id: int, seconds: float) -> bool:
    """Hold the batch for `seconds` unless someone else holds it; one atomic UPDATE on any backend."""
    now = utcnow()
    with unit_of_work(factory) as session:
        taken = session.execute(
            update(LlmBatch)
            .where(LlmBatch.id == batch_id, or_(LlmBatch.lease_until.is_(None), LlmBatch.lease_until < now))
            .values(lease_until=now + timedelta(seconds=seconds))
        )
        return bool(getattr(taken, "rowcount", 0))


def _update_batch(factory: sessionmaker[Session], batch_id: int, **values: Any) -> None:
    with unit_of_work(factory) as session:
        session.execute(update(LlmBatch).where(LlmBatch.id == batch_id).values(**values))


# ----------------------------------------------------------------------------------------- collector


@dataclass
class CollectSummary:
    submitted: list[int] = field(default_factory=list)  # local batch ids accepted by the provider
    calls: int = 0  # calls newly assigned to a batch
    failed: list[int] = field(default_factory=list)  # batches the provider refused


def collect_batches(
    factory: sessionmaker[Session], provider: ExtractionProvider, prompt: PromptTemplate, settings: Settings
) -> CollectSummary:
    """One collector pass: finish batches a killed collector left `preparing`, then batch the waiting calls."""
    openai_provider = batch_provider(provider)
    client = BatchClient(openai_provider.client(), openai_provider.model)
    summary = CollectSummary()
    with unit_of_work(factory) as session:
        leftovers = list(
            session.scalars(
                select(LlmBatch.id).where(
                    LlmBatch.status == BatchStatus.preparing.value, LlmBatch.collected_at.is_(None)
                )
            )
        )
    for batch_id in leftovers:
        _submit(factory, client, openai_provider, prompt, settings, batch_id, None, summary)
    while True:
        assigned = _assign_waiting_calls(factory, openai_provider, prompt, settings)
        if assigned is None:
            break
        batch_id, payload, calls = assigned
        summary.calls += calls
        if not _submit(factory, client, openai_provider, prompt, settings, batch_id, payload, summary):
            break  # the provider is unavailable: the next pass submits this batch and the rest
    return summary


def _request_lines(
    session: Session, call: Call, batch_id: int, provider: OpenAIProvider, prompt: PromptTemplate, settings: Settings
) -> list[bytes]:
    """The call's requests (one per window), exactly as `extract` would send them first."""
    transcript = load_transcript(session, call)
    view: Transcript = (
        redact_transcript(transcript, names=settings.redact_names)[0] if _redact(settings, provider) else transcript
    )
    bodies = provider.batch_request_bodies(view, prompt)
    return [
        request_line(CustomId.for_request(call.id, call.transcript_hash, batch_id, number, len(bodies)), body,
                     settings.batch_endpoint)
        for number, body in enumerate(bodies, start=1)
    ]


def _assign_waiting_calls(
    factory: sessionmaker[Session], provider: OpenAIProvider, prompt: PromptTemplate, settings: Settings
) -> tuple[int, bytes, int] | None:
    """Put waiting calls into a new `preparing` batch, within the file limits; (batch id, JSONL, calls)."""
    with unit_of_work(factory) as session:
        calls = session.scalars(
            select(Call)
            .where(Call.state == CallState.queued, Call.llm_mode == LlmMode.batch, Call.llm_batch_id.is_(None))
            .order_by(Call.enqueued_at, Call.id)
            .limit(settings.batch_max_requests)
            .with_for_update(skip_locked=True)
        ).all()
        if not calls:
            return None
        batch = LlmBatch(
            provider=provider.name, model=provider.batch_model, prompt_version=prompt.version,
            status=BatchStatus.preparing.value,
        )
        session.add(batch)
        session.flush()
        chunks: list[bytes] = []
        size = requests = taken = 0
        for call in calls:
            lines = _request_lines(session, call, batch.id, provider, prompt, settings)
            call_bytes = sum(len(line) for line in lines)
            if call_bytes > settings.batch_max_bytes or len(lines) > settings.batch_max_requests:
                reason = (
                    f"too large for one batch file ({len(lines)} requests, {call_bytes} bytes; limits "
                    f"{settings.batch_max_requests} and {settings.batch_max_bytes}): ingest it with --mode sync"
                )
                _fail(session, call, reason)
                continue
            if size + call_bytes > settings.batch_max_bytes or requests + len(lines) > settings.batch_max_requests:
                break  # the file is full; the next batch of this pass takes the rest
            chunks.extend(lines)
            size += call_bytes
            requests += len(lines)
            taken += 1
            call.llm_batch_id = batch.id
        if not taken:
            session.delete(batch)
            return None
        batch.call_count, batch.request_count, batch.input_bytes = taken, requests, size
        return batch.id, b"".join(chunks), taken


def _rebuilt_payload(
    factory: sessionmaker[Session], batch_id: int, provider: OpenAIProvider, prompt: PromptTemplate,
    settings: Settings,
) -> bytes:
    with unit_of_work(factory) as session:
        calls = session.scalars(select(Call).where(Call.llm_batch_id == batch_id).order_by(Call.id)).all()
        return b"".join(
            line for call in calls for line in _request_lines(session, call, batch_id, provider, prompt, settings)
        )


def _submit(
    factory: sessionmaker[Session],
    client: BatchClient,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
    batch_id: int,
    payload: bytes | None,
    summary: CollectSummary,
) -> bool:
    """Upload the batch's file and create the batch, recording each step; False if it must wait."""
    if not _take_lease(factory, batch_id, settings.batch_lease_seconds):
        return False
    try:
        with unit_of_work(factory) as session:
            batch = session.get(LlmBatch, batch_id)
            if batch is None or batch.status != BatchStatus.preparing.value:
                return False
            input_file_id = batch.input_file_id
        adopted: BatchInfo | None = None
        if input_file_id is None:
            content = payload
            if content is None:
                content = _rebuilt_payload(factory, batch_id, provider, prompt, settings)
            if not content:  # every call left the batch (deleted, replaced) before it was sent
                _update_batch(factory, batch_id, collected_at=utcnow())
                return False
            input_file_id = client.upload(f"postcall-batch-{batch_id}.jsonl", content)
            _update_batch(factory, batch_id, input_file_id=input_file_id)
        else:
            # Uploaded by a collector that died before recording the batch: it may have created it.
            adopted = client.find_by_input_file(input_file_id)
        info = adopted or client.create(
            input_file_id,
            endpoint=settings.batch_endpoint,
            completion_window=settings.batch_completion_window,
            label=str(batch_id),
        )
    except ProviderTransientError as exc:
        logger.warning("batch %d not submitted yet (%s); the next collector pass tries again", batch_id, exc)
        _update_batch(factory, batch_id, last_error=stored_error(str(exc)))
        return False
    except PermanentError as exc:
        # The provider refused the file or the batch: the poller puts its calls back (one attempt spent each).
        logger.error("batch %d refused: %s", batch_id, exc)
        now = utcnow()
        _update_batch(factory, batch_id, status=BatchStatus.failed.value, last_error=stored_error(str(exc)),
                      finished_at=now, next_poll_at=now)
        summary.failed.append(batch_id)
        return True
    else:
        now = utcnow()
        _update_batch(
            factory, batch_id, provider_batch_id=info.id, status=info.status, submitted_at=now, last_error=None,
            next_poll_at=now + timedelta(seconds=settings.batch_poll_min_interval_seconds),
        )
        summary.submitted.append(batch_id)
        logger.info("batch %d submitted as %s", batch_id, info.id)
        return True
    finally:
        _update_batch(factory, batch_id, lease_until=None)


# -------------------------------------------------------------------------------------------- poller


@dataclass
class PollSummary:
    polled: int = 0  # status requests answered
    finished: int = 0  # batches whose results were read this pass
    stored: int = 0  # calls whose batch answer was stored as their extraction
    failed: int = 0  # calls whose batch answer went through process_call and failed (refused, unusable)
    unused: int = 0  # answers paid for but not used: their call left the batch (reprocessed, replaced)
    put_back: int = 0  # calls sent back for the next batch (errored or unanswered line)
    pending: int = 0  # calls left in a finished batch for the next pass (transient failure)
    collected: list[int] = field(default_factory=list)


def poll_interval(polls: int, settings: Settings) -> float:
    """Seconds until a running batch is asked again: doubling from the minimum up to the maximum."""
    return float(min(settings.batch_poll_max_interval_seconds,
                     settings.batch_poll_min_interval_seconds * 2 ** min(polls, 20)))


def poll_batches(
    factory: sessionmaker[Session],
    provider: ExtractionProvider,
    prompt: PromptTemplate,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> PollSummary:
    """One poller pass over every open batch that is due."""
    openai_provider = batch_provider(provider)
    client = BatchClient(openai_provider.client(), openai_provider.model)
    now = now or utcnow()
    summary = PollSummary()
    with unit_of_work(factory) as session:
        due = list(
            session.scalars(
                select(LlmBatch.id)
                .where(
                    LlmBatch.collected_at.is_(None),
                    or_(LlmBatch.provider_batch_id.is_not(None), LlmBatch.status.in_(FINISHED)),
                    or_(LlmBatch.next_poll_at.is_(None), LlmBatch.next_poll_at <= now),
                )
                .order_by(LlmBatch.id)
            )
        )
    for batch_id in due:
        if not _take_lease(factory, batch_id, settings.batch_lease_seconds):
            continue
        try:
            _poll_one(factory, client, openai_provider, prompt, settings, batch_id, summary)
        except ProviderTransientError as exc:
            with unit_of_work(factory) as session:
                batch = session.get(LlmBatch, batch_id)
                if batch is not None:
                    batch.last_error = stored_error(str(exc))
                    batch.next_poll_at = utcnow() + timedelta(seconds=poll_interval(batch.polls, settings))
            logger.warning("batch %d: %s; polled again later", batch_id, exc)
        except PermanentError as exc:
            # A refused status or file request (a revoked key, a batch or file the provider no longer
            # has): the batch is not given up on its own, it may be paid for already. It is asked
            # again at the longest interval, with the reason shown by `postcall batches`.
            _update_batch(
                factory, batch_id, last_error=stored_error(str(exc)),
                next_poll_at=utcnow() + timedelta(seconds=settings.batch_poll_max_interval_seconds),
            )
            logger.error("batch %d: %s; polled again in %.0fs", batch_id, exc, settings.batch_poll_max_interval_seconds)
        finally:
            _update_batch(factory, batch_id, lease_until=None)
    return summary


def _poll_one(
    factory: sessionmaker[Session],
    client: BatchClient,
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
    batch_id: int,
    summary: PollSummary,
) -> None:
    with unit_of_work(factory) as session:
        batch = session.get(LlmBatch, batch_id)
        if batch is None or batch.collected_at is not None:
            return
        provider_batch_id, finished = batch.provider_batch_id, batch.finished_at is not None
    if provider_batch_id is not None and not finished:
        # Until a poll has seen it finish (and recorded its files), ask the provider.
        info = client.retrieve(provider_batch_id)
        summary.polled += 1
        with unit_of_work(factory) as session:
            batch = session.get(LlmBatch, batch_id)
            if batch is None:
                return
            batch.status = info.status
            batch.completed_count, batch.failed_count = info.completed, info.failed
            batch.output_file_id, batch.error_file_id = info.output_file_id, info.error_file_id
            batch.polls += 1
            # The provider answered: an earlier pass's error ("could not reach ...") is over.
            batch.last_error = info.errors or None
            if info.status in FINISHED:
                batch.finished_at = utcnow()
            else:
                batch.next_poll_at = utcnow() + timedelta(seconds=poll_interval(batch.polls, settings))
                return
    summary.finished += 1
    remaining = _handle_results(
        factory, lambda batch: _read_results(client, batch), provider, prompt, settings, batch_id, summary
    )
    with unit_of_work(factory) as session:
        batch = session.get(LlmBatch, batch_id)
        if batch is None:
            return
        if remaining == 0:
            batch.collected_at = utcnow()
            summary.collected.append(batch_id)
            logger.info("batch %d (%s) collected", batch_id, batch.status)
        else:
            batch.next_poll_at = utcnow() + timedelta(seconds=settings.batch_poll_min_interval_seconds)


def _read_results(client: BatchClient, batch: LlmBatch) -> dict[str, dict[int, LineResult]]:
    """The finished batch's lines, by call and window (error file first: a real answer wins)."""
    texts = [client.download(file_id) for file_id in (batch.error_file_id, batch.output_file_id) if file_id]
    return _lines_by_call(batch.id, texts)


def _lines_by_call(batch_id: int, texts: Sequence[str]) -> dict[str, dict[int, LineResult]]:
    """Result lines keyed "<call id>.<hash prefix>", then by window; lines of other batches are ignored."""
    lines: dict[str, LineResult] = {}
    for text in texts:
        for custom_id, line in parse_result_lines(text).items():
            earlier = lines.get(custom_id)
            if earlier is None or earlier.body is None:  # an answer wins over an error, in any file order
                lines[custom_id] = line
    by_call: dict[str, dict[int, LineResult]] = {}
    for custom_id, line in lines.items():
        parsed = CustomId.parse(custom_id)
        if parsed is None or parsed.batch_id != batch_id:
            continue
        by_call.setdefault(f"{parsed.call_id}.{parsed.hash_prefix}", {})[parsed.window] = line
    return by_call


def _windows_of(lines: dict[int, LineResult]) -> int:
    first = next(iter(lines.values()), None)
    parsed = CustomId.parse(first.custom_id) if first else None
    return parsed.windows if parsed else 0


def _handle_results(
    factory: sessionmaker[Session],
    read: Callable[[LlmBatch], dict[str, dict[int, LineResult]]],
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
    batch_id: int,
    summary: PollSummary,
) -> int:
    """Handle every call still in the finished batch; returns how many are left for the next pass."""
    with unit_of_work(factory) as session:
        batch = session.get(LlmBatch, batch_id)
        if batch is None:
            return 0
        status, last_error = batch.status, batch.last_error
        # Refused before the provider took it (a file or batch request refused: a setup error, such as a
        # server without a Batch API): no call's fault, so none spends an attempt.
        refused_whole = batch.provider_batch_id is None and status == BatchStatus.failed.value
        call_rows = session.execute(
            select(Call.id, Call.transcript_hash).where(Call.llm_batch_id == batch_id).order_by(Call.id)
        ).all()
        by_call = read(batch) if call_rows or batch.output_file_id else {}
        try:
            provider, prompt = _as_sent(provider, prompt, settings, batch)
        except ConfigError as exc:  # the batch's prompt version is gone: its answers cannot be read as sent
            for call_id, _ in call_rows:
                _put_back(factory, settings, batch_id, call_id, str(exc), spend_attempt=False)
            summary.put_back += len(call_rows)
            return 0
    why = f"{status}: {last_error}" if last_error else status

    def handle(call_id: str, transcript_hash: str) -> _Handled:
        lines = by_call.pop(f"{call_id}.{transcript_hash[:CUSTOM_ID_HASH_CHARS]}", {})
        windows = _windows_of(lines)
        answers = [lines[n].body for n in range(1, windows + 1) if n in lines]
        bodies = [body for body in answers if body is not None]
        if windows and len(bodies) == windows:
            handled = _store_answer(factory, provider, prompt, settings, batch_id, call_id, bodies)
            if handled is _Handled.left:  # recorded with the answers of calls that left before this pass
                by_call[f"{call_id}.{transcript_hash[:CUSTOM_ID_HASH_CHARS]}"] = lines
            return handled
        errors = [line.error for line in lines.values() if line.error]
        reason = errors[0] if errors else f"no answer in batch {batch_id} ({why})"
        _put_back(factory, settings, batch_id, call_id, reason, spend_attempt=not refused_whole)
        return _Handled.put_back

    # Storing an answer is mostly waiting on the database: a few threads overlap those waits. SQLite
    # takes one writer at a time, so it gets one.
    threads = 1 if is_sqlite(str(factory.kw["bind"].url)) else max(1, settings.batch_store_threads)
    outcomes = dict.fromkeys(_Handled, 0)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batch-store")
    try:
        futures = [pool.submit(handle, call_id, transcript_hash) for call_id, transcript_hash in call_rows]
        for handled, future in enumerate(as_completed(futures), start=1):
            outcomes[future.result()] += 1
            if handled % LEASE_RENEW_EVERY_CALLS == 0:
                _update_batch(factory, batch_id, lease_until=utcnow() + timedelta(seconds=settings.batch_lease_seconds))
    finally:
        # On an error the calls not started yet stay in the batch for the next pass.
        pool.shutdown(wait=True, cancel_futures=True)
    summary.stored += outcomes[_Handled.stored]
    summary.failed += outcomes[_Handled.failed]
    summary.put_back += outcomes[_Handled.put_back]
    summary.pending += outcomes[_Handled.pending]
    if outcomes[_Handled.pending] == 0:
        summary.unused += _record_unused_answers(factory, provider, prompt, batch_id, by_call)
    return outcomes[_Handled.pending]


class _Handled(StrEnum):
    stored = "stored"  # the answer was stored as the call's extraction
    failed = "failed"  # the answer went through process_call and the call failed (refused, unusable)
    put_back = "put_back"  # errored or unanswered: waits for the next batch
    pending = "pending"  # a transient failure: left in the batch for the next pass
    left = "left"  # the call left the batch while this pass handled it: the answer is paid, not used


def _as_sent(
    provider: OpenAIProvider, prompt: PromptTemplate, settings: Settings, batch: LlmBatch
) -> tuple[OpenAIProvider, PromptTemplate]:
    """The provider and prompt the batch was sent with: its answers are read, keyed and priced as what
    they answer, even if POSTCALL_PROMPT_VERSION or the model changed since (a run recorded as extract-v2
    answered by extract-v1 made a later `reprocess` for v2 a no-op)."""
    if batch.prompt_version != prompt.version:
        prompt = PromptTemplate.load(settings.prompts_dir, batch.prompt_version)
    if batch.model != provider.batch_model:
        changed: dict[str, Any] = {"batch_model": batch.model}
        if settings.batch_model is None:  # the batch model was the model itself
            changed["openai_model"] = batch.model
        provider = OpenAIProvider(settings.model_copy(update=changed))
    return provider, prompt


def _record_unused_answers(
    factory: sessionmaker[Session], provider: OpenAIProvider, prompt: PromptTemplate, batch_id: int,
    by_call: dict[str, dict[int, LineResult]],
) -> int:
    """Answers of the batch whose call is no longer in it (reprocessed, replaced or deleted meanwhile):
    paid for, so each is recorded on its call as an `interrupted` run with its tokens and cost, never as
    the call's extraction (a newer result stays current). Returns how many were recorded."""
    recorded = 0
    for key, lines in by_call.items():
        bodies = [line.body for line in lines.values() if line.body is not None]
        if not bodies:
            continue
        call_id = key.rsplit(".", 1)[0]
        usage = provider.usage_of_answers(bodies)
        with unit_of_work(factory) as session:
            call = session.get(Call, call_id)
            if call is None or call.llm_batch_id == batch_id:
                continue
            # A run of this batch on the call: its answer was stored (a pass stopped before the batch closed),
            # or recorded here as unused by an earlier pass.
            if session.scalar(select(ExtractionRun.id).where(ExtractionRun.call_id == call_id,
                                                             ExtractionRun.llm_batch_id == batch_id).limit(1)):
                continue
            facts = RunFacts(
                key=f"unused-batch-{batch_id}-{call_id}", provider=provider.name, model=provider.model,
                prompt_version=prompt.version, transcript_hash=call.transcript_hash, usage=usage,
                queue_wait_ms=None, verify_ms=None, llm_batch_id=batch_id,
            )
            add_run(session, call, facts, status=RunStatus.interrupted,
                    error=f"batch {batch_id} answered after the call left it (processed again, replaced): "
                          "paid, not used")
            recorded += 1
    return recorded


def _store_answer(
    factory: sessionmaker[Session],
    provider: OpenAIProvider,
    prompt: PromptTemplate,
    settings: Settings,
    batch_id: int,
    call_id: str,
    bodies: Sequence[dict[str, Any]],
) -> _Handled:
    """Feed the batch's answer through `process_call`: stored, failed, or pending (tried again later)."""

    def first_answer(view: Transcript) -> ProviderResult:
        return provider.extract_from_answers(view, prompt, bodies)

    try:
        outcome = process_call(
            factory,
            call_id,
            provider,
            prompt,
            redact_for_llm=settings.redact_for_llm,
            redact_names=settings.redact_names,
            max_attempts=settings.max_call_attempts,
            first_answer=first_answer,
            llm_batch_id=batch_id,
        )
    except NotFoundError:
        return _Handled.failed  # deleted meanwhile: nothing left to store
    except TransientError as exc:
        logger.warning("call %s from batch %d: %s; tried again on the next poll", call_id, batch_id, exc)
        return _Handled.pending
    if outcome.left_batch:
        return _Handled.left
    _leave_batch(factory, batch_id, call_id)
    return _Handled.failed if outcome.state is CallState.failed or outcome.error else _Handled.stored


def leave_any_batch(factory: sessionmaker[Session], call_id: str) -> int | None:
    """Take a call out of the batch it waits in, before it is processed another way (`postcall reprocess`,
    `process`): the batch's answer, arriving later, is then recorded as paid and unused rather than stored
    over the newer result. Returns the batch it left, if any."""
    with unit_of_work(factory) as session:
        call = lock_call(session, call_id)
        if call is None or call.llm_batch_id is None:
            return None
        batch_id, call.llm_batch_id = call.llm_batch_id, None
        logger.info("call %s left batch %d to be processed now", call_id, batch_id)
        return batch_id


def _leave_batch(factory: sessionmaker[Session], batch_id: int, call_id: str) -> None:
    with unit_of_work(factory) as session:
        call = lock_call(session, call_id)
        if call is not None and call.llm_batch_id == batch_id:
            call.llm_batch_id = None


def _put_back(
    factory: sessionmaker[Session], settings: Settings, batch_id: int, call_id: str, reason: str, *,
    spend_attempt: bool = True,
) -> None:
    """An errored or unanswered request: the call waits for the next batch, or fails when out of attempts.
    Without `spend_attempt` (a batch refused or released as a whole) the call's attempts stay as they are."""
    with unit_of_work(factory) as session:
        call = lock_call(session, call_id)
        if call is None or call.llm_batch_id != batch_id:
            return
        call.llm_batch_id = None
        call.attempts += 1 if spend_attempt else 0
        if call.attempts >= settings.max_call_attempts:
            _fail(session, call, f"gave up after {call.attempts} batch attempts; last: {reason}")
        else:
            set_state(call, CallState.queued, error=f"batch {batch_id}: {reason}; sent again in the next batch")


def _fail(session: Session, call: Call, reason: str) -> None:
    """Fail the call and, as the synchronous path does, tell the downstream systems (`call.failed`) in
    the same transaction; a call that was already failed writes no second event."""
    already_failed = call.state is CallState.failed
    set_state(call, CallState.failed, error=reason)
    if not already_failed:
        record_event(session, call, EventType.failed)


# ------------------------------------------------------------------------- offline runners (vLLM)


def export_batch(
    factory: sessionmaker[Session], provider: ExtractionProvider, prompt: PromptTemplate, settings: Settings
) -> tuple[int, bytes] | None:
    """Put waiting calls into a batch for an offline runner (`vllm run-batch`) instead of a Batch API:
    returns (batch id, JSONL input), or None when no call waits. The batch stays `exported`, out of
    the collector's and poller's way, until `import_batch_results` brings its output back."""
    openai_provider = batch_provider(provider)
    assigned = _assign_waiting_calls(factory, openai_provider, prompt, settings)
    if assigned is None:
        return None
    batch_id, payload, _ = assigned
    _update_batch(factory, batch_id, status=BatchStatus.exported.value, submitted_at=utcnow())
    return batch_id, payload


def import_batch_results(
    factory: sessionmaker[Session],
    provider: ExtractionProvider,
    prompt: PromptTemplate,
    settings: Settings,
    batch_id: int,
    texts: Sequence[str],
) -> PollSummary:
    """Store an offline runner's output file(s) for an exported batch, exactly as a finished provider
    batch's: answered calls go through `process_call`, the others wait for the next batch. Importing
    the same file again stores nothing twice."""
    openai_provider = batch_provider(provider)
    with unit_of_work(factory) as session:
        batch = session.get(LlmBatch, batch_id)
        if batch is None:
            raise NotFoundError(f"no batch {batch_id}")
        importable = (BatchStatus.exported.value, BatchStatus.completed.value)
        if batch.provider_batch_id is not None or batch.status not in importable:
            raise ConfigError(f"batch {batch_id} is {batch.status} and was not exported: nothing to import")
    by_call = _lines_by_call(batch_id, texts)
    has_answers = any(line.body is not None or line.error != NO_RESPONSE for lines in by_call.values()
                      for line in lines.values())
    if any(text.strip() for text in texts) and not has_answers:
        # Another batch's answers, or the request file itself: storing it would close this batch with nothing
        # stored and every call sent to the next batch, the runner's work lost.
        others = sorted({parsed.batch_id for text in texts for custom_id in parse_result_lines(text)
                         if (parsed := CustomId.parse(custom_id)) is not None} - {batch_id})
        named = (f" (its lines answer batch {', '.join(map(str, others))})" if others
                 else " (its lines carry no response: the request file?)")
        raise ConfigError(f"no line of the file answers batch {batch_id}{named}: give the runner's output file "
                          "for this batch; the batch stays open")
    if not _take_lease(factory, batch_id, settings.batch_lease_seconds):
        raise ConfigError(f"batch {batch_id} is being handled by another process; try again shortly")
    summary = PollSummary(finished=1)
    try:
        _update_batch(factory, batch_id, status=BatchStatus.completed.value, finished_at=utcnow())
        answered = sum(1 for lines in by_call.values() for line in lines.values() if line.body is not None)
        failed = sum(1 for lines in by_call.values() for line in lines.values() if line.body is None)
        remaining = _handle_results(
            factory, lambda _: by_call, openai_provider, prompt, settings, batch_id, summary
        )
        values: dict[str, Any] = {"completed_count": answered, "failed_count": failed}
        if remaining == 0:
            values["collected_at"] = utcnow()
            summary.collected.append(batch_id)
        _update_batch(factory, batch_id, **values)
    finally:
        _update_batch(factory, batch_id, lease_until=None)
    return summary


# ------------------------------------------------------------------------------------ cancel and list


def cancel_batch(
    factory: sessionmaker[Session], provider: ExtractionProvider, batch_id: int, *, settings: Settings | None = None,
    release: bool = False,
) -> str:
    """Ask the provider to cancel a batch; the poller then puts its unanswered calls back. Returns the status.

    An exported batch (an offline runner's), or any batch not yet collected with `release` (one the provider
    no longer has, or whose output file is gone: polled for ever otherwise), is released here instead: its
    calls wait for the next batch at once, their attempts unspent, and an answer arriving later is not used."""
    with unit_of_work(factory) as session:
        batch = session.get(LlmBatch, batch_id)
        if batch is None:
            raise NotFoundError(f"no batch {batch_id}")
        provider_batch_id, status, collected = batch.provider_batch_id, batch.status, batch.collected_at
    if collected is None and (release or status == BatchStatus.exported.value):
        return _release(factory, settings or get_settings(), batch_id)
    openai_provider = batch_provider(provider)
    if provider_batch_id is None or status in FINISHED:
        hint = "" if collected is not None else f"; `postcall batches cancel {batch_id} --release` frees its calls"
        raise ConfigError(f"batch {batch_id} is {status}: nothing to cancel{hint}")
    info = BatchClient(openai_provider.client(), openai_provider.model).cancel(provider_batch_id)
    _update_batch(factory, batch_id, status=info.status, next_poll_at=utcnow())
    return info.status


def _release(factory: sessionmaker[Session], settings: Settings, batch_id: int) -> str:
    with unit_of_work(factory) as session:
        call_ids = list(session.scalars(select(Call.id).where(Call.llm_batch_id == batch_id).order_by(Call.id)))
    for call_id in call_ids:
        _put_back(factory, settings, batch_id, call_id, "released by the operator", spend_attempt=False)
    now = utcnow()
    _update_batch(factory, batch_id, status=BatchStatus.cancelled.value, collected_at=now,
                  finished_at=now, last_error=f"released by the operator: {len(call_ids)} calls sent to the next batch")
    logger.warning("batch %d released: %d calls wait for the next batch", batch_id, len(call_ids))
    return f"released ({len(call_ids)} calls wait for the next batch)"


@dataclass(frozen=True)
class BatchOverview:
    id: int
    provider_batch_id: str | None
    status: str
    model: str
    calls: int
    requests: int
    completed: int
    failed: int
    waiting_calls: int  # calls still in the batch (not yet handled)
    input_bytes: int
    created_at: datetime
    submitted_at: datetime | None
    finished_at: datetime | None
    collected_at: datetime | None
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "provider_batch_id": self.provider_batch_id, "status": self.status, "model": self.model,
            "calls": self.calls, "requests": self.requests, "completed": self.completed, "failed": self.failed,
            "waiting_calls": self.waiting_calls, "input_bytes": self.input_bytes,
            "created_at": self.created_at.isoformat(),
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "collected_at": self.collected_at.isoformat() if self.collected_at else None,
            "last_error": self.last_error,
        }


def list_batches(session: Session, *, limit: int = 100, open_only: bool = False) -> list[BatchOverview]:
    """The newest batches with their progress (queries only)."""
    waiting = (
        select(Call.llm_batch_id, func.count().label("n")).where(Call.llm_batch_id.is_not(None))
        .group_by(Call.llm_batch_id).subquery()
    )
    query = (
        select(LlmBatch, func.coalesce(waiting.c.n, 0))
        .outerjoin(waiting, waiting.c.llm_batch_id == LlmBatch.id)
        .order_by(LlmBatch.id.desc())
        .limit(limit)
    )
    if open_only:
        query = query.where(LlmBatch.collected_at.is_(None))
    return [
        BatchOverview(
            id=batch.id, provider_batch_id=batch.provider_batch_id, status=batch.status, model=batch.model,
            calls=batch.call_count, requests=batch.request_count, completed=batch.completed_count,
            failed=batch.failed_count, waiting_calls=int(count), input_bytes=batch.input_bytes,
            created_at=batch.created_at, submitted_at=batch.submitted_at, finished_at=batch.finished_at,
            collected_at=batch.collected_at, last_error=batch.last_error,
        )
        for batch, count in session.execute(query).all()
    ]


def calls_waiting_for_batch(session: Session) -> int:
    """Batch-mode calls queued and not yet in a batch."""
    return int(
        session.scalar(
            select(func.count()).select_from(Call).where(
                Call.state == CallState.queued, Call.llm_mode == LlmMode.batch, Call.llm_batch_id.is_(None)
            )
        ) or 0
    )
