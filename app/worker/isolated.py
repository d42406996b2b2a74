"""One call processed alone, in a process of its own: `python -m app.worker.isolated CALL_ID`.

A worker hands it a call whose earlier tries died with their worker process (`SuspectCallError`): in a
threads pool, one call that kills its process (a crash in a native library, memory the kernel reclaims)
takes every call running beside it down too, each losing a try, until the bystanders are failed with it
for running out of tries. Alone, a bystander is processed as usual; the call that kills processes kills
only this one, and the worker that waits for it fails that call and no other (`run_isolated`).

Exit status: 0 processed (the outcome, as JSON, on stdout); any other status an error the process
reported (a transient one, the database away or a lock held past its timeout, says so with
`EXIT_TRANSIENT`): the worker retries the call later, as it retries any call. Only a death by a signal
(killed, crashed in native code) is the call killing its process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

EXIT_TRANSIENT = 75  # EX_TEMPFAIL
# Calls a worker process runs alone at once: each is a Python process of its own (its imports, its model
# client), and after a crash every call that was in flight beside the culprit is a suspect.
ISOLATED_AT_ONCE = 2
_slots = threading.BoundedSemaphore(ISOLATED_AT_ONCE)


@dataclass(frozen=True)
class IsolatedResult:
    state: str | None  # the call's state when its process finished; None when it did not
    transient: str | None = None  # why the call goes back for a retry (an error the process reported)
    died: str | None = None  # how the process died under the call (a signal)


def run_isolated(call_id: str, *, timeout: float, command: Sequence[str] | None = None) -> IsolatedResult:
    """Process `call_id` in a process of its own (at most `ISOLATED_AT_ONCE` at once per worker process)
    and say how it ended. `command`: the process to run (default: this module for the call)."""
    argv = list(command) if command is not None else [sys.executable, "-m", "app.worker.isolated", call_id]
    started = time.monotonic()
    # Waiting for a slot counts against the same limit: past it the broker would hand the call out again.
    if not _slots.acquire(timeout=timeout):
        return IsolatedResult(None, transient=f"no slot to run it alone within {timeout:.0f} s")
    try:
        # A session of its own: whatever kills it by process group stops there.
        done = subprocess.run(  # noqa: S603 - this interpreter and module, a call id from our database
            argv, capture_output=True, text=True, timeout=max(timeout - (time.monotonic() - started), 1.0),
            start_new_session=True, env=os.environ.copy(), check=False)
    except subprocess.TimeoutExpired:
        return IsolatedResult(None, transient=f"processing it alone took longer than {timeout:.0f} s")
    finally:
        _slots.release()
    if done.returncode < 0:
        return IsolatedResult(None, died=f"signal {-done.returncode}")
    if done.returncode == 0:
        try:
            return IsolatedResult(str(json.loads(done.stdout.strip().splitlines()[-1])["state"]))
        except (ValueError, IndexError, KeyError, TypeError):
            pass  # said nothing readable: an error like any other below
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return IsolatedResult(None, transient=f"processing it alone failed: {last}"[:500])


def main(argv: Sequence[str]) -> int:
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    from app.context import get_context
    from app.db.session import is_transient_database_error
    from app.errors import NotFoundError, TransientError
    from app.pipeline.run import process_call

    [call_id] = argv
    ctx = get_context()
    settings = ctx.settings
    try:
        outcome = process_call(
            ctx.session_factory, call_id, ctx.provider, ctx.prompt, redact_for_llm=settings.redact_for_llm,
            redact_names=settings.redact_names, max_attempts=settings.max_call_attempts, defer_batch_calls=True,
        )
    except NotFoundError:
        print(json.dumps({"state": "missing"}))
        return 0
    except (TransientError, PoolTimeoutError) as exc:
        print(f"transient: {exc}", file=sys.stderr)
        return EXIT_TRANSIENT
    except DBAPIError as exc:
        if not is_transient_database_error(exc):
            raise
        print(f"transient: the database: {exc.__class__.__name__}", file=sys.stderr)
        return EXIT_TRANSIENT
    print(json.dumps({"state": outcome.state.value}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
