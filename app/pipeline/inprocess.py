"""Processing calls in this process, without a broker (the `process`, `reprocess` and `demo` commands).

A transient failure (429, 5xx, timeout) is retried here with the worker's policy (exponential backoff
with jitter, Retry-After honoured, POSTCALL_TASK_MAX_RETRIES); past the retries the call is `failed`
and `postcall retry` re-runs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from app.context import AppContext
from app.errors import TransientError
from app.pipeline.batch import leave_any_batch
from app.pipeline.retry import retry_countdown
from app.pipeline.run import ProcessOutcome, mark_failed, process_call


def process_in_process(
    ctx: AppContext,
    call_ids: Sequence[str],
    *,
    reprocess_reviewed: bool = False,
    on_wait: Callable[[str, float, int], None] | None = None,
    on_done: Callable[[ProcessOutcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ProcessOutcome]:
    """Process calls one by one. `on_wait(note, seconds, retry)` is told before each backoff wait,
    `on_done(outcome)` after each call."""
    settings = ctx.settings
    outcomes: list[ProcessOutcome] = []
    if not call_ids:
        return outcomes
    provider, prompt = ctx.provider, ctx.prompt
    for call_id in call_ids:
        leave_any_batch(ctx.session_factory, call_id)  # processed here: its batch answer must not land on top
        retries = 0
        while True:
            try:
                outcome = process_call(
                    ctx.session_factory,
                    call_id,
                    provider,
                    prompt,
                    redact_for_llm=settings.redact_for_llm,
                    redact_names=settings.redact_names,
                    reprocess_reviewed=reprocess_reviewed,
                )
            except TransientError as exc:
                if retries >= settings.task_max_retries:
                    reason = f"gave up after {retries + 1} attempts: {exc}"
                    outcome = mark_failed(ctx.session_factory, call_id, provider, prompt, reason,
                                          reextracted=reprocess_reviewed)
                    break
                wait = retry_countdown(retries, exc.retry_after, settings.task_backoff_base,
                                       settings.task_backoff_max)
                retries += 1
                if on_wait is not None:
                    on_wait(f"call {call_id}: {exc}; retry {retries}/{settings.task_max_retries} in {wait:.1f} s",
                            wait, retries)
                sleep(wait)
                continue
            break
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes
