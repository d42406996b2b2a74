"""`process_call`: load -> redact -> extract -> verify (-> repair once) -> persist.

Three short transactions, none held open across the LLM call:
  1. claim the call (row lock, idempotency check, state=processing);
  2. extract and verify, outside any transaction;
  3. persist run + claims + evidence and the new state, atomically.
A redelivered task finds the succeeded run by its idempotency key and does nothing.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import Work, connection_unit_of_work, unit_of_work
from app.errors import (
    ExtractionInvalidError,
    NotFoundError,
    PermanentError,
    ProviderTransientError,
    SuspectCallError,
    TransientError,
)
from app.grounding import verify_extraction
from app.handoff.outbox import EventType, hand_over_deliveries, record_event
from app.llm.base import ExtractionProvider, ProviderResult
from app.llm.prompt import PromptTemplate
from app.models import Call, CallState, LlmMode, RunStatus
from app.models.tables import REVIEWED_STATES, TERMINAL_PROCESSING_STATES, utcnow
from app.pipeline.calls import (
    load_transcript,
    lock_call,
    lock_call_row,
    lock_call_rows,
    set_state,
    start_processing_calls,
    transcript_of,
    transcript_rows_of,
)
from app.pipeline.dedup import deduplicate
from app.pipeline.group_commit import GroupCommit, Handed
from app.pipeline.persist import (
    LockedCall,
    ResultToWrite,
    RunFacts,
    add_run,
    idempotency_key,
    lock_call_for_result,
    lock_calls_for_result,
    start_unless_done,
    state_for_run,
    succeeded_run_id,
    succeeded_runs_of_keys,
    write_succeeded_run,
    write_succeeded_runs,
)
from app.pipeline.redact import redact_transcript
from app.pipeline.timings import RunTimings, TimingsRecorder, write_timings_now
from app.privacy.mask import stored_error
from app.privacy.pii import TurnScan
from app.review import reopen_for_new_result
from app.schemas.extraction import Extraction
from app.schemas.grounding import VerificationReport
from app.schemas.transcript import Transcript
from app.schemas.usage import Usage

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class ProcessOutcome:
    call_id: str
    state: CallState
    run_id: int | None = None
    skipped: bool = False
    error: str | None = None
    claims: int = 0
    ungrounded: int = 0
    # Batch mode: the call had left the batch whose answer this was (`postcall reprocess`, `process`), so the
    # answer was not stored; the caller records it as paid and unused.
    left_batch: bool = False
    # A decided call's new extraction was stored: its decision was reopened with it (`reopen_for_new_result`).
    reopened: bool = False


@dataclass(frozen=True)
class _Claimed:
    transcript: Transcript
    facts_key: str
    transcript_hash: str
    queue_wait_ms: float | None
    # The state before this attempt: a call that already had a result (or a reviewer's decision)
    # keeps it when a re-extraction fails.
    previous_state: CallState


def _elapsed_ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


# A call claimed while still `processing` from an earlier try, with at least this many tries behind it,
# lost them to dying workers: the worker hands it to a process of its own (`SuspectCallError`).
SUSPECT_AFTER_ATTEMPTS = 2


def _left_alone(row: Row[Any], *, max_attempts: int | None, reprocess_reviewed: bool,
                defer_batch_calls: bool, isolate_suspects: bool = False) -> tuple[bool, bool, bool, bool]:
    """Why a locked call is not to be processed now, if it is not: (reviewed, deferred, given up, suspect)."""
    # A stale or duplicate message must not overwrite a reviewer's decision; only an explicit
    # `postcall reprocess` re-extracts a reviewed call.
    reviewed = row.state in REVIEWED_STATES and not reprocess_reviewed
    # A batch-mode call reached a worker (`postcall retry`, a stray message): the batch collector owns
    # it and sends it in the next batch.
    deferred = defer_batch_calls and row.llm_mode is LlmMode.batch
    # Every earlier attempt died without recording an outcome (a worker killed mid-call, a crash in the
    # provider): stop the redelivery loop and make the call visible.
    given_up = max_attempts is not None and row.attempts >= max_attempts
    # Its earlier tries ended with no outcome at all, more than once: a worker process died under it (in a
    # threads pool, with every call running beside it). Whether it is the one that kills workers or a
    # bystander, it is tried alone (the caller isolates it) rather than beside others again.
    suspect = (isolate_suspects and not given_up and row.state is CallState.processing
               and row.attempts >= SUSPECT_AFTER_ATTEMPTS)
    return reviewed, deferred, given_up, suspect


def _left_its_batch(
    call_id: str, state: CallState, in_batch: int | None, llm_batch_id: int | None
) -> ProcessOutcome | None:
    """A batch's answer (`llm_batch_id`) for a call no longer in that batch (`in_batch`, read under the
    call's lock): taken out to be processed another way since the batch pass read it, so the answer must not
    be stored over that newer work."""
    if llm_batch_id is None or in_batch == llm_batch_id:
        return None
    return ProcessOutcome(call_id, state, skipped=True, left_batch=True)


def _claim(
    factory: sessionmaker[Session],
    call_id: str,
    provider: ExtractionProvider,
    prompt: PromptTemplate,
    *,
    max_attempts: int | None,
    reprocess_reviewed: bool,
    defer_batch_calls: bool = False,
    isolate_suspects: bool = False,
    llm_batch_id: int | None = None,
) -> _Claimed | ProcessOutcome:
    """Claim the call. The usual outcomes (started, or already done with its state in place) come from a
    transaction of two Core statements on a connection, without an ORM session; anything else (a call left
    alone, one whose state needs healing) is handled by `_claim_in_session` from the start, in a transaction
    of its own (the first changed nothing)."""
    with connection_unit_of_work(factory) as connection:
        row = lock_call_row(connection, call_id)
        if row is None:
            raise NotFoundError(f"call {call_id} not found (deleted?)")
        if (left := _left_its_batch(row.id, row.state, row.llm_batch_id, llm_batch_id)) is not None:
            return left
        if not any(_left_alone(row, max_attempts=max_attempts, reprocess_reviewed=reprocess_reviewed,
                               defer_batch_calls=defer_batch_calls, isolate_suspects=isolate_suspects)):
            key = idempotency_key(row.id, row.transcript_hash, prompt.version, provider.name, provider.model)
            now = utcnow()
            # The done-check, the start and the transcript's load together.
            started = _start_unless_done(connection, row, key)
            if isinstance(started, Transcript):
                return _claimed(row, started, key, now)
            if row.state in TERMINAL_PROCESSING_STATES:
                return ProcessOutcome(row.id, row.state, run_id=started, skipped=True)
    return _claim_in_session(factory, call_id, provider, prompt, max_attempts=max_attempts,
                             reprocess_reviewed=reprocess_reviewed, defer_batch_calls=defer_batch_calls,
                             isolate_suspects=isolate_suspects, llm_batch_id=llm_batch_id)


@dataclass(frozen=True)
class ClaimRequest:
    """A call to claim (by `claim_calls`, with others), with what `_claim` is given besides."""

    call_id: str
    provider: ExtractionProvider
    prompt: PromptTemplate
    max_attempts: int | None
    defer_batch_calls: bool
    isolate_suspects: bool


ClaimGroup = GroupCommit[ClaimRequest, _Claimed]


def claim_group_for(factory: sessionmaker[Session], *, max_calls: int, wait_seconds: float,
                    company: Callable[[], int] | None = None) -> ClaimGroup | None:
    """A group commit of claims (`claim_calls`) for the threads of one process (`_group_for`)."""
    group: ClaimGroup | None = _group_for(factory, lambda requests: claim_calls(factory, requests),
                                          max_calls=max_calls, wait_seconds=wait_seconds, company=company)
    return group


def _group_for(factory: sessionmaker[Session], write_group: Callable[[Sequence[Any]], Sequence[Any]], *,
               max_calls: int, wait_seconds: float, company: Callable[[], int] | None) -> Any:
    """A group commit (app/pipeline/group_commit.py) writing with `write_group`, on PostgreSQL; None where it
    would only wait (a group of one, or SQLite, whose writers take turns anyway). `company`: the calls the
    process is running."""
    if max_calls < 2 or factory.kw["bind"].dialect.name != "postgresql":
        return None
    return GroupCommit(write_group, max_size=max_calls, wait_seconds=wait_seconds, company=company)


def claim_calls(factory: sessionmaker[Session], requests: Sequence[ClaimRequest]) -> list[_Claimed | None]:
    """Claim several calls in one transaction (PostgreSQL): locked in one statement, the done-check of their
    work in another, their starts in a third and their transcripts read in a fourth. Only the usual claim is
    made here: a call found, to be processed now, without a result yet and its work not stored. For any other
    (a call missing, left alone, suspect, already done or extracted again; a second request of the same call)
    the answer is `None`: its own thread claims it alone (`_claim`), and finds what to do."""
    claims: list[_Claimed | None] = [None] * len(requests)
    with connection_unit_of_work(factory) as connection:
        rows = lock_call_rows(connection, list({request.call_id for request in requests}))
        chosen: list[tuple[int, Row[Any], str]] = []
        for index, request in enumerate(requests):
            row = rows.pop(request.call_id, None)  # a second request of the same call is claimed alone
            if row is None or row.state in TERMINAL_PROCESSING_STATES or any(_left_alone(
                    row, max_attempts=request.max_attempts, reprocess_reviewed=False,
                    defer_batch_calls=request.defer_batch_calls, isolate_suspects=request.isolate_suspects)):
                continue
            provider, prompt = request.provider, request.prompt
            chosen.append((index, row, idempotency_key(row.id, row.transcript_hash, prompt.version, provider.name,
                                                       provider.model)))
        done = succeeded_runs_of_keys(connection, [key for _, _, key in chosen]) if chosen else {}
        to_start = [(index, row, key) for index, row, key in chosen if key not in done]
        now = utcnow()
        utterances = transcript_rows_of(connection, [row.id for _, row, _ in to_start]) if to_start else {}
        started = []
        for index, row, key in to_start:
            # Read before anything is started: a transcript that does not load fails its own claim, alone, with
            # nothing written (as the one-call claim does), never the group's after it committed.
            try:
                transcript = transcript_of(row, utterances[row.id])
            except ValidationError:
                continue
            started.append((index, row, key, transcript))
        if started:
            start_processing_calls(connection, [row.id for _, row, _, _ in started])
    for index, row, key, transcript in started:
        claims[index] = _claimed(row, transcript, key, now)
    return claims


def _start_unless_done(work: Work, row: Row[Any], key: str) -> int | Transcript:
    """`start_unless_done`, except for a call that already has a result (`postcall reprocess`, a new prompt
    version): that call keeps its state while it is extracted again, so its result and any reviewer's decision
    stay what readers see, a transient failure or a dying process leaves them as they were, and nothing is
    left in `processing` for the reconciler. Only the new result, once stored, changes it (reopening a
    decision)."""
    if row.state not in TERMINAL_PROCESSING_STATES:
        return start_unless_done(work, row, key, attempts=row.attempts + 1)
    done = succeeded_run_id(work, key)
    return done if done is not None else load_transcript(work, row)


def _claimed(row: Row[Any], transcript: Transcript, key: str, now: datetime) -> _Claimed:
    queue_wait_ms = None
    if row.enqueued_at is not None:
        queue_wait_ms = max(0.0, (now - row.enqueued_at).total_seconds() * 1000.0)
    return _Claimed(transcript, key, row.transcript_hash, queue_wait_ms, row.state)


def _claim_in_session(
    factory: sessionmaker[Session],
    call_id: str,
    provider: ExtractionProvider,
    prompt: PromptTemplate,
    *,
    max_attempts: int | None,
    reprocess_reviewed: bool,
    defer_batch_calls: bool = False,
    isolate_suspects: bool = False,
    llm_batch_id: int | None = None,
) -> _Claimed | ProcessOutcome:
    with unit_of_work(factory) as session:
        # The usual path reads the call as a plain row and changes it with one UPDATE; the rare ones that
        # change it otherwise load the ORM object (the row lock is already held).
        row = lock_call_row(session, call_id)
        if row is None:
            raise NotFoundError(f"call {call_id} not found (deleted?)")
        if (left := _left_its_batch(row.id, row.state, row.llm_batch_id, llm_batch_id)) is not None:
            return left
        key = idempotency_key(row.id, row.transcript_hash, prompt.version, provider.name, provider.model)
        now = utcnow()
        reviewed, deferred, given_up, suspect = _left_alone(row, max_attempts=max_attempts,
                                                            reprocess_reviewed=reprocess_reviewed,
                                                            defer_batch_calls=defer_batch_calls,
                                                            isolate_suspects=isolate_suspects)
        if suspect and not reviewed and not deferred:
            raise SuspectCallError(f"call {call_id} is still processing from {row.attempts} earlier tries "
                                   "that died with their worker: processed on its own")
        if reviewed or deferred or given_up:
            done = succeeded_run_id(session, key)
            started: int | Transcript | None = done
        else:
            # The usual path: the done-check, the start and the transcript's load together.
            started = _start_unless_done(session, row, key)
            done = started if isinstance(started, int) else None
        if done is not None:
            state = row.state
            if state not in TERMINAL_PROCESSING_STATES:
                # The result is stored but the state says otherwise (a duplicate delivery overwrote it
                # on a backend without row locks): the stored run is the truth, so heal the state.
                state = state_for_run(session, done)
                set_state(_locked(session, call_id), state)
            return ProcessOutcome(row.id, state, run_id=done, skipped=True)
        if reviewed or deferred:
            return ProcessOutcome(row.id, row.state, skipped=True)
        if given_up:
            reason = (
                f"gave up after {row.attempts} attempts without a stored result (worker killed, crashed "
                "or retried out each time); `postcall retry` re-runs it"
            )
            facts = RunFacts(key, provider.name, provider.model, prompt.version, row.transcript_hash, Usage(),
                             None, None)
            call = _locked(session, call_id)
            run = add_run(session, call, facts, status=RunStatus.failed, error=reason)
            set_state(call, CallState.failed, error=reason)
            record_event(session, call, EventType.failed)
            return ProcessOutcome(call.id, CallState.failed, run_id=run.id, error=reason)
        assert isinstance(started, Transcript)  # neither done nor skipped: started
        return _claimed(row, started, key, now)


def _locked(session: Session, call_id: str) -> Call:
    """The ORM object of a call this transaction has locked with `lock_call_row`."""
    call = lock_call(session, call_id)
    if call is None:  # the row lock keeps it from being deleted
        raise NotFoundError(f"call {call_id} not found (deleted?)")
    return call


@dataclass(frozen=True)
class _Extracted:
    result: ProviderResult
    report: VerificationReport
    provider_ms: float
    verify_ms: float
    # The redaction's pass of the detectors over the transcript, which the masking at persist reuses.
    scan: TurnScan | None = None


# Produces the first answer from the (redacted) transcript the model is shown, in place of
# `provider.extract`: batch mode hands in the answer that came back in a batch output file.
FirstAnswer = Callable[[Transcript], ProviderResult]


def _extract_and_verify(
    transcript: Transcript,
    provider: ExtractionProvider,
    prompt: PromptTemplate,
    redact: bool,
    names: bool = False,
    first_answer: FirstAnswer | None = None,
) -> _Extracted:
    """Extract (repairing once when the provider can and a claim fails), then verify against the stored
    transcript.

    The answer is verified as it will be stored first (restored, deduplicated, against the transcript):
    when every claim holds, that report is the one stored and no repair is asked for, so the usual call
    verifies once. Only when a claim fails is the answer verified against the redacted view too, as the
    repair request must show the model what it saw (never the values redaction hid)."""
    view, redaction = redact_transcript(transcript, names=names) if redact else (transcript, None)
    provider_seconds = verify_seconds = 0.0
    started = time.perf_counter()
    result = first_answer(view) if first_answer is not None else provider.extract(view, prompt)
    provider_seconds += time.perf_counter() - started

    def as_stored(extraction: Extraction) -> tuple[Extraction, VerificationReport]:
        nonlocal verify_seconds
        # Restatements go before verification, so what is verified is what is stored; the rule never merges
        # statements whose numbers, dates or negations differ, so an unverifiable detail stays (and is flagged).
        stored = deduplicate(redaction.restore_extraction(extraction) if redaction else extraction)
        began = time.perf_counter()
        stored_report = verify_extraction(transcript, stored)
        verify_seconds += time.perf_counter() - began
        return stored, stored_report

    extraction, report = as_stored(result.extraction)
    if provider.supports_repair and not report.all_grounded:
        if extraction is result.extraction and not redaction:
            view_report = report  # the view is the transcript and nothing was merged: the same report
        else:
            started = time.perf_counter()
            view_report = verify_extraction(view, result.extraction)
            verify_seconds += time.perf_counter() - started
        if not view_report.all_grounded:
            started = time.perf_counter()
            try:
                repaired = provider.repair(view, prompt, result, view_report)
            except ProviderTransientError as exc:
                exc.add_spent(result.usage)  # the first answer was billed; the retry asks again
                raise
            provider_seconds += time.perf_counter() - started
            started = time.perf_counter()
            repaired_report = verify_extraction(view, repaired.extraction)
            verify_seconds += time.perf_counter() - started
            # The repair answer replaces the first only if it is no worse: a model that drops grounded
            # items while "repairing" must not lose them.
            better = _grounded_count(repaired_report) >= _grounded_count(view_report)
            chosen = repaired if better else result
            result = ProviderResult(chosen.extraction, result.usage + repaired.usage, chosen.raw_response)
            if better:
                extraction, report = as_stored(result.extraction)
    return _Extracted(result, report, provider_seconds * 1000.0, verify_seconds * 1000.0,
                      redaction.scan if redaction is not None else None)


def _grounded_count(report: VerificationReport) -> int:
    return len(report.claims) - len(report.ungrounded_claims)


def process_call(
    factory: sessionmaker[Session],
    call_id: str,
    provider: ExtractionProvider,
    prompt: PromptTemplate,
    *,
    redact_for_llm: bool = True,
    redact_names: bool = False,
    max_attempts: int | None = None,
    reprocess_reviewed: bool = False,
    defer_batch_calls: bool = False,
    first_answer: FirstAnswer | None = None,
    llm_batch_id: int | None = None,
    timings: TimingsRecorder | None = None,
    isolate_suspects: bool = False,
    claim_group: ClaimGroup | None = None,
    persist_group: PersistGroup | None = None,
) -> ProcessOutcome:
    """Process one call. Raises `TransientError` for the caller to retry; every other failure is
    recorded as a failed run and a `failed` call, and returned.

    `max_attempts` fails a call that has started that many times without an outcome (a message that
    kills its worker would otherwise be redelivered forever). Approved and rejected calls are left
    alone unless `reprocess_reviewed`. With `defer_batch_calls` (workers) a batch-mode call is left to
    the batch collector. Batch mode passes `first_answer` (the batch's answer, in place of the
    provider's first request) and `llm_batch_id` (recorded on the run); the rest of the path is the same.
    The run's whole-call timings go to `timings` (workers: written in batches), or are written before
    this returns when it is None. With `isolate_suspects` (workers) a call whose earlier tries died with
    their worker raises `SuspectCallError` instead of starting, for the caller to run it alone. With a
    `claim_group` and a `persist_group` (threaded workers on PostgreSQL: `claim_group_for`, `persist_group_for`)
    the call is claimed with the calls other threads claim close to it, and its new result stored with the
    results they finish close to it, each group in one transaction (`claim_calls`, `store_finished_calls`)."""
    started = time.perf_counter()
    cpu_started = time.thread_time()
    db_ms = 0.0
    # A group's wait for company is no time in the database, and the CPU of a group's write is each call's share
    # of it, wherever it ran (`Handed`): what the run's timings count.
    grouping = _GroupTimes()
    claimed: _Claimed | ProcessOutcome | None = None
    if claim_group is not None and llm_batch_id is None and not reprocess_reviewed:
        claimed = grouping.took(claim_group.submit(ClaimRequest(call_id, provider, prompt, max_attempts,
                                                                defer_batch_calls, isolate_suspects)))
    if claimed is None:
        claimed = _claim(
            factory, call_id, provider, prompt, max_attempts=max_attempts, reprocess_reviewed=reprocess_reviewed,
            defer_batch_calls=defer_batch_calls, isolate_suspects=isolate_suspects, llm_batch_id=llm_batch_id,
        )
    db_ms += _elapsed_ms(started)
    if isinstance(claimed, ProcessOutcome):
        return claimed

    def facts(usage: Usage | None, verify_ms: float | None, provider_ms: float | None = None) -> RunFacts:
        return RunFacts(
            key=claimed.facts_key,
            provider=provider.name,
            model=provider.model,
            prompt_version=prompt.version,
            transcript_hash=claimed.transcript_hash,
            usage=usage or Usage(),
            queue_wait_ms=claimed.queue_wait_ms,
            verify_ms=verify_ms,
            provider_ms=provider_ms,
            llm_batch_id=llm_batch_id,
        )

    try:
        extracted = _extract_and_verify(
            claimed.transcript, provider, prompt, redact_for_llm and provider.sends_data_offsite, redact_names,
            first_answer,
        )
    except TransientError as exc:
        billed = exc.usage if isinstance(exc, ProviderTransientError) else None
        with unit_of_work(factory) as session:
            call = lock_call(session, call_id)
            if call is not None and call.state is CallState.processing:
                set_state(call, CallState.queued, error=f"retrying: {exc}")
            if call is not None and billed is not None and billed.llm_calls:
                # The retry starts the extraction over; what this try already cost is kept, not lost.
                add_run(session, call, facts(billed, None), status=RunStatus.interrupted,
                        error=stored_error(f"interrupted, retrying: {exc}"))
        raise
    except PermanentError as exc:
        invalid = exc if isinstance(exc, ExtractionInvalidError) else None
        usage, raw = (invalid.usage, invalid.raw) if invalid else (None, None)
        return _record_failure(factory, call_id, facts(usage, None), str(exc), raw, claimed)
    except Exception as exc:
        return _record_internal_error(factory, call_id, facts(None, None), exc, claimed)

    persist_started = time.perf_counter()
    spent = facts(extracted.result.usage, extracted.verify_ms, extracted.provider_ms)
    try:
        grouped = None
        if persist_group is not None and claimed.previous_state not in TERMINAL_PROCESSING_STATES:
            grouped = grouping.took(persist_group.submit(FinishedCall(call_id, claimed, spent, extracted)))
        outcome = grouped if grouped is not None else _persist_success(
            factory, call_id, claimed, spent, extracted, reprocess_reviewed=reprocess_reviewed)
    except IntegrityError as exc:
        with unit_of_work(factory) as session:
            call = lock_call(session, call_id)
            done = succeeded_run_id(session, claimed.facts_key)
            if done is not None:
                # Another worker persisted the same work first (unique idempotency key): exactly-once holds.
                return ProcessOutcome(call_id, call.state if call else CallState.failed, run_id=done, skipped=True)
        return _record_internal_error(factory, call_id, spent, exc, claimed)
    except (TransientError, NotFoundError, OperationalError, InterfaceError, PoolTimeoutError):
        raise  # the database went away (or every pooled connection stayed busy): the task retries
    except Exception as exc:
        # Anything else (a value the column cannot hold, a bug) must not leave the call in `processing`
        # for the reconciler to re-bill the model on every pass.
        return _record_internal_error(factory, call_id, spent, exc, claimed)
    if not outcome.skipped and outcome.run_id is not None:
        # CPU read before wall, as they were started in the other order: CPU can never exceed wall.
        cpu_ms = (time.thread_time() - cpu_started + grouping.cpu_correction) * 1000.0
        measured = RunTimings(outcome.run_id, db_ms=db_ms + _elapsed_ms(persist_started) - grouping.waited * 1000.0,
                              total_ms=_elapsed_ms(started), cpu_ms=max(0.0, cpu_ms))
        if timings is not None:
            timings.record(measured)
        else:
            write_timings_now(factory.kw["bind"], [measured])
    return outcome


@dataclass
class _GroupTimes:
    """What a call's groups (claim, result) said of its timings: the time it waited for company, and what to
    add to its thread's CPU for its own (`Handed`)."""

    waited: float = 0.0
    cpu_correction: float = 0.0

    def took(self, handed: Handed[Any]) -> Any:
        self.waited += handed.waited_seconds
        self.cpu_correction += handed.cpu_correction_seconds
        return handed.result


@dataclass(frozen=True)
class FinishedCall:
    """A call extracted and verified, its result to be stored (by `store_finished_calls`, with others)."""

    call_id: str
    claimed: _Claimed
    spent: RunFacts
    extracted: _Extracted


PersistGroup = GroupCommit[FinishedCall, ProcessOutcome]


def persist_group_for(factory: sessionmaker[Session], *, max_calls: int, wait_seconds: float,
                      company: Callable[[], int] | None = None) -> PersistGroup | None:
    """A group commit of new results (`store_finished_calls`) for the threads of one process (`_group_for`)."""
    group: PersistGroup | None = _group_for(factory, lambda finished: store_finished_calls(factory, finished),
                                            max_calls=max_calls, wait_seconds=wait_seconds, company=company)
    return group


def store_finished_calls(
    factory: sessionmaker[Session], finished: Sequence[FinishedCall]
) -> list[ProcessOutcome | None]:
    """Store the new results of several calls in one transaction (PostgreSQL): the calls locked in one
    statement, their runs, claims and evidence inserted in another, each call's change and event after.
    Only a result `_persist_success` would store as it stands is stored here; for any other (the call deleted,
    replaced, decided, taken out of its batch, or its work already stored; a second result for the same call)
    the result is `None`: its own thread stores it alone, and finds why. The webhook deliveries are handed
    over once committed."""
    outcomes: list[ProcessOutcome | None] = [None] * len(finished)
    stored: list[tuple[int, ResultToWrite]] = []
    with connection_unit_of_work(factory) as connection:
        keys: dict[str, str] = {}
        for piece in finished:
            keys.setdefault(piece.call_id, piece.claimed.facts_key)
        locked = lock_calls_for_result(connection, keys)
        for index, piece in enumerate(finished):
            call = locked.get(piece.call_id)
            if (call is None or keys[piece.call_id] != piece.claimed.facts_key
                    or not _stored_as_it_stands(call, piece.claimed, piece.spent)):
                continue
            del locked[piece.call_id]  # a second result for the same call is stored alone
            stored.append((index, ResultToWrite(piece.spent, piece.extracted.report,
                                                piece.extracted.result.raw_response, call,
                                                piece.claimed.transcript, piece.extracted.scan)))
        written = write_succeeded_runs(connection, [result for _, result in stored]) if stored else []
    for (index, result), run in zip(stored, written, strict=True):
        hand_over_deliveries(run.deliveries)
        outcomes[index] = ProcessOutcome(result.locked.call.id, run.state, run_id=run.run_id, claims=run.claims,
                                         ungrounded=run.ungrounded)
    return outcomes


def _stored_as_it_stands(locked: LockedCall, claimed: _Claimed, spent: RunFacts) -> bool:
    """The result goes in without a question: the call still holds the transcript it was extracted from, the
    work is not stored yet, the call did not leave the batch whose answer this is, and no reviewer decided it
    (`_persist_success` handles every other case)."""
    call = locked.call
    return (call.transcript_hash == claimed.transcript_hash and locked.succeeded_run_id is None
            and _left_its_batch(call.id, call.state, locked.llm_batch_id, spent.llm_batch_id) is None
            and call.state not in REVIEWED_STATES)


def _persist_success(
    factory: sessionmaker[Session], call_id: str, claimed: _Claimed, spent: RunFacts, extracted: _Extracted,
    *, reprocess_reviewed: bool = False,
) -> ProcessOutcome:
    """Store the result in one transaction, of Core statements on a connection (no ORM session: see
    `connection_unit_of_work`); the webhook deliveries it writes are handed over once it committed. A pooled
    connection found dead (PostgreSQL restarted since it was last used: there is no ping before each
    checkout) is replaced and the write tried once more, so an answer already paid for is not thrown away;
    the idempotency key makes the second try safe."""
    # A call that had a result is extracted again (`postcall reprocess`, a new prompt) without leaving its state,
    # so a reviewer may decide it meanwhile: whether a decision is reopened is read under the row lock, in the
    # transaction that stores the new result, on an ORM session (the review event and the call.reopened record
    # read it).
    reextracted = claimed.previous_state in TERMINAL_PROCESSING_STATES
    for attempt in (1, 2):
        try:
            unit = unit_of_work(factory) if reextracted else connection_unit_of_work(factory)
            with unit as connection:
                locked = lock_call_for_result(connection, call_id, claimed.facts_key)
                if locked is None:
                    raise NotFoundError(f"call {call_id} was deleted while processing")
                call = locked.call
                if call.transcript_hash != claimed.transcript_hash:
                    # Replaced while we extracted: this result describes a transcript that is gone, and its
                    # offsets would point into the new utterances. The replacement's own task does the work.
                    return ProcessOutcome(call.id, call.state, skipped=True)
                if locked.succeeded_run_id is not None:
                    return ProcessOutcome(call.id, call.state, run_id=locked.succeeded_run_id, skipped=True)
                left = _left_its_batch(call.id, call.state, locked.llm_batch_id, spent.llm_batch_id)
                if left is not None:  # taken out of the batch while its answer was being verified
                    return left
                reopen = call.state in REVIEWED_STATES
                if reopen and not reprocess_reviewed:
                    # Decided while a stray message re-extracted it: only `postcall reprocess` reopens a decision.
                    return ProcessOutcome(call.id, call.state, skipped=True)
                if reopen:
                    assert isinstance(connection, Session)
                    reopen_for_new_result(connection, call.id, call.state)
                written = write_succeeded_run(connection, spent, extracted.report,
                                              raw_response=extracted.result.raw_response, locked=locked,
                                              transcript=claimed.transcript, scan=extracted.scan)
            hand_over_deliveries(written.deliveries)
            return ProcessOutcome(call.id, written.state, run_id=written.run_id, claims=written.claims,
                                  ungrounded=written.ungrounded, reopened=reopen)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            logger.warning("database connection lost while storing call %s; storing it again", call_id)
    raise AssertionError("unreachable")  # the loop returns or raises


def _record_internal_error(
    factory: sessionmaker[Session], call_id: str, facts: RunFacts, exc: BaseException, claimed: _Claimed
) -> ProcessOutcome:
    logger.error("unexpected error processing call %s", call_id, exc_info=exc)
    detail = "".join(traceback.format_exception_only(exc)).strip()
    return _record_failure(factory, call_id, facts, f"internal error: {detail}", None, claimed)


def _record_failure(
    factory: sessionmaker[Session],
    call_id: str,
    facts: RunFacts,
    reason: str,
    raw: str | None,
    claimed: _Claimed | None = None,
    *,
    kept_state: CallState | None = None,
) -> ProcessOutcome:
    reason = stored_error(reason)
    if claimed is not None and claimed.previous_state in TERMINAL_PROCESSING_STATES:
        kept_state = claimed.previous_state
    with unit_of_work(factory) as session:
        call = lock_call(session, call_id)
        if call is None:
            raise NotFoundError(f"call {call_id} not found")
        done = succeeded_run_id(session, facts.key)
        if done is not None:
            # A duplicate delivery failed after another one succeeded: the result stands.
            return ProcessOutcome(call.id, call.state, run_id=done, skipped=True)
        if claimed is not None and call.transcript_hash != claimed.transcript_hash:
            return ProcessOutcome(call.id, call.state, skipped=True)  # replaced meanwhile: not our failure
        run = add_run(session, call, facts, status=RunStatus.failed, error=reason, raw_response=raw)
        if kept_state is not None:
            # A re-extraction (new prompt or model) failed: the call keeps its earlier result and any
            # reviewer's decision (made meanwhile too: it never left its state), and its place in the review
            # queue; the failed run and last_error say what happened.
            if call.state in TERMINAL_PROCESSING_STATES:
                call.last_error = reason
            else:
                set_state(call, kept_state, error=reason)
            return ProcessOutcome(call.id, call.state, run_id=run.id, error=reason)
        already_failed = call.state is CallState.failed
        set_state(call, CallState.failed, error=reason)
        if not already_failed:  # a second give-up on a failed call is no new hand-off event
            record_event(session, call, EventType.failed)
        return ProcessOutcome(call.id, CallState.failed, run_id=run.id, error=reason)


def mark_failed(
    factory: sessionmaker[Session], call_id: str, provider: ExtractionProvider, prompt: PromptTemplate, reason: str,
    *, reextracted: bool = False,
) -> ProcessOutcome:
    """Give up on a call after its retries ran out: a failed run with the reason, state `failed`. A call that
    already had a result (`reextracted`: `postcall reprocess` gave up on it) keeps it, and its decision: the
    failed run and `last_error` say what happened, and no hand-off event is sent. Otherwise a call found with a
    result was finished elsewhere meanwhile, and is left as it is."""
    with unit_of_work(factory) as session:
        call = lock_call(session, call_id)
        if call is None:
            raise NotFoundError(f"call {call_id} not found")
        kept = call.state if call.state in TERMINAL_PROCESSING_STATES else None
        if kept is not None and not reextracted:
            return ProcessOutcome(call.id, call.state, skipped=True)
        key = idempotency_key(call.id, call.transcript_hash, prompt.version, provider.name, provider.model)
        transcript_hash = call.transcript_hash
    facts = RunFacts(key, provider.name, provider.model, prompt.version, transcript_hash, Usage(), None, None)
    return _record_failure(factory, call_id, facts, reason, None, kept_state=kept)
