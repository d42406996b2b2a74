"""Write an extraction run with its claims and evidence, in bulk. Flushes; never commits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.driver import FixedStatement, run_on_driver
from app.db.json_rows import column_list, json_record_columns, json_rows, sql_type
from app.db.session import Work, connection_of
from app.db.types import sql_constant
from app.handoff.outbox import CallChange, EventType, NewEvent, record_event, record_events
from app.handoff.record import CallRecordV1, EvidenceV1, RecordClaim, assemble_record, review_events
from app.models import (
    Call,
    CallState,
    Claim,
    Evidence,
    ExtractionRun,
    ReviewEvent,
    ReviewStatus,
    RunStatus,
    Tenant,
)
from app.models import Utterance as UtteranceRow
from app.models.tables import utcnow
from app.pipeline.analyst_fields import CallClock, analyst_fields, call_clock
from app.pipeline.calls import (
    CALL_IDS,
    START_PROCESSING,
    TRANSCRIPT_COLUMNS,
    load_transcript,
    start_processing,
    state_columns,
    state_update,
    transcript_of,
)
from app.privacy.mask import CallMasks, mask_text, nothing_to_mask
from app.privacy.pii import TurnScan
from app.schemas.grounding import VerificationReport, VerifiedEvidence
from app.schemas.transcript import Transcript
from app.schemas.usage import Usage

# Core tables: the success path inserts through them, without building ORM objects it never reads back.
# Statements that involve no ORM entity run on `session.connection()` (the session's transaction),
# which skips the ORM execution layer `session.execute` adds to every statement; those of every call on
# the driver's cursor, on PostgreSQL (app/db/driver.py).
RUNS = cast(Table, ExtractionRun.__table__)
CLAIMS = cast(Table, Claim.__table__)
EVIDENCE = cast(Table, Evidence.__table__)


def idempotency_key(call_id: str, transcript_hash: str, prompt_version: str, provider: str, model: str) -> str:
    """The identity of one piece of work: the same call content, prompt and model give the same key."""
    material = "\x1f".join([call_id, transcript_hash, prompt_version, provider, model])
    return hashlib.sha256(material.encode()).hexdigest()


# The statements every processed call runs are built once, with bound parameters: building one costs
# about as much Python as executing it.
# The succeeded status is written into the SQL, not bound: only then does the server's generic plan of a
# prepared statement match the partial index uq_extraction_runs_succeeded_key (`status = 'succeeded'`).
# With the status a parameter, the generic plan of a statement holding this lookup scanned every run, so
# the server kept planning it anew for each call's values instead of reusing its plan.
_SUCCEEDED_STATUS = sql_constant(RunStatus.succeeded)
_SUCCEEDED_RUN_ID = select(RUNS.c.id).where(RUNS.c.idempotency_key == bindparam("key"),
                                            RUNS.c.status == _SUCCEEDED_STATUS)
# The columns of the call the final write reads (`ResultCall`).
_RESULT_CALL_COLUMNS = (Call.id, Call.tenant_id, Call.external_id, Call.agent_id, Call.team, Call.started_at,
                        Call.transcript_hash, Call.state, Call.last_error, Call.case_note, Call.language)


def _lock_for_result(where: ColumnElement[bool], *succeeded: ColumnElement[Any]) -> Select[*tuple[Any, ...]]:
    """The calls matching `where`, locked, with what the final write reads beside (`LockedCall`): `succeeded`,
    the succeeded run of the work's key where it is read in the same statement."""
    return (
        select(
            *_RESULT_CALL_COLUMNS,
            *succeeded,
            Tenant.slug,
            Tenant.time_zone,
            exists().where(ReviewEvent.call_id == Call.id, ReviewEvent.tenant_id == Call.tenant_id),
            Call.llm_batch_id,
        )
        .join(Tenant, Tenant.id == Call.tenant_id)
        .where(where)
        .with_for_update(of=Call)
    )


_LOCK_CALL_FOR_RESULT = FixedStatement(_lock_for_result(Call.id == bindparam("call_id"),
                                                        _SUCCEEDED_RUN_ID.scalar_subquery()))
_SUCCEEDED_RUN_ID_FIXED = FixedStatement(_SUCCEEDED_RUN_ID)
_INSERT_RUN = insert(RUNS).returning(RUNS.c.id)
_INSERT_CLAIMS = insert(CLAIMS).returning(CLAIMS.c.id, sort_by_parameter_order=True)
_INSERT_EVIDENCE = insert(EVIDENCE)


def succeeded_run_id(work: Work, key: str) -> int | None:
    """The id of the succeeded run with this idempotency key, if the work was done already."""
    run_id: int | None = _SUCCEEDED_RUN_ID_FIXED.scalar(connection_of(work), {"key": key})
    return run_id


# PostgreSQL: `start_unless_done` in one statement. The UPDATE (a data-modifying CTE) and the reads see the
# same snapshot, taken after the caller's statement that waited for the call's row lock: a run another
# worker committed while this one waited for the lock is seen (runs are written under the same lock).
_CALLS = cast(Table, Call.__table__)
_UTTERANCES = cast(Table, UtteranceRow.__table__)
_NOT_DONE = ~exists(_SUCCEEDED_RUN_ID)
_START_UNLESS_DONE = FixedStatement(
    select(_SUCCEEDED_RUN_ID.scalar_subquery().label("done"), *TRANSCRIPT_COLUMNS)
    .select_from(_CALLS.outerjoin(_UTTERANCES, and_(_UTTERANCES.c.call_id == _CALLS.c.id, _NOT_DONE)))
    .where(_CALLS.c.id == bindparam("call_id"))
    .order_by(_UTTERANCES.c.index)
    .add_cte(START_PROCESSING.where(_NOT_DONE).cte("started"))
)


def start_unless_done(work: Work, call: Row[Any], key: str, *, attempts: int) -> int | Transcript:
    """For a call locked by `lock_call_row`: the id of the succeeded run with `key` if the work was done
    already (the call left as it is); otherwise `start_processing` (the attempt counted) and the call's
    transcript (`load_transcript`). One statement on PostgreSQL, where it was three."""
    connection = connection_of(work)
    if connection.dialect.name != "postgresql":  # no data-modifying CTE: the three statements
        done = succeeded_run_id(connection, key)
        if done is not None:
            return done
        start_processing(connection, call.id, attempts=attempts)
        return load_transcript(connection, call)
    rows = _START_UNLESS_DONE.all(connection, {
        "call_id": call.id, "key": key, "changed_call_id": call.id, "attempt": attempts,
        **state_columns(CallState.processing, utcnow()),
    })
    done = rows[0].done
    if done is not None:
        return cast(int, done)
    # A call without utterances is one row of NULL utterance columns (the outer join).
    return transcript_of(call, [row for row in rows if row.index is not None])


def latest_succeeded_run(session: Session, call_id: str) -> ExtractionRun | None:
    """The call's current run: the latest succeeded one, as recorded on the call when it was written."""
    call = session.get(Call, call_id)
    return session.get(ExtractionRun, call.current_run_id) if call and call.current_run_id is not None else None


@dataclass(frozen=True)
class ResultCall:
    """The call as the final write reads it (a plain row, no ORM object to flush): what the run, the
    hand-off record and the outbox event need. After the write, the same with the new state."""

    id: str
    tenant_id: int
    external_id: str
    agent_id: str | None
    team: str | None
    started_at: datetime | None
    transcript_hash: str
    state: CallState
    last_error: str | None
    case_note: str | None
    language: str | None


@dataclass(frozen=True)
class LockedCall:
    """A call under its row lock, with what the final write reads beside it."""

    call: ResultCall
    succeeded_run_id: int | None  # the succeeded run with the work's idempotency key, if already done
    tenant_slug: str
    time_zone: str
    reviewed: bool  # the call has review events (a reprocessed call): the record lists them
    llm_batch_id: int | None = None  # the batch the call waits in (batch mode), if any


def lock_call_for_result(work: Work, call_id: str, key: str) -> LockedCall | None:
    """Lock the call (as `lock_call` does) and read, in the same statement, what the final write needs
    besides: the succeeded run with `key`, the tenant's slug and time zone, and whether the call has review
    events (usually not, and then the write skips that query; the tenant's endpoints are read after the
    event's INSERT, `record_event`). One round trip where separate queries took four; columns, not an ORM
    object: the write changes the call with one Core UPDATE (`write_succeeded_run`)."""
    row = _LOCK_CALL_FOR_RESULT.one_or_none(connection_of(work), {"call_id": call_id, "key": key})
    if row is None:
        return None
    return _locked(row, row[len(_RESULT_CALL_COLUMNS)])


def _locked(row: Any, succeeded: int | None) -> LockedCall:
    """A row of `_lock_for_result` as the call it locked, with `succeeded` (the succeeded run of its work)."""
    slug, time_zone, has_events, in_batch = row[-4:]
    return LockedCall(ResultCall(*row[: len(_RESULT_CALL_COLUMNS)]), succeeded, slug, time_zone, bool(has_events),
                      in_batch)


# Several calls at once (`lock_calls_for_result`), locked in the order of their ids (`CALL_IDS`).
_LOCK_CALLS_FOR_RESULT = FixedStatement(_lock_for_result(Call.id == any_(CALL_IDS)).order_by(Call.id))
_SUCCEEDED_RUNS_OF_KEYS = FixedStatement(
    select(RUNS.c.idempotency_key, RUNS.c.id).where(
        RUNS.c.idempotency_key == any_(bindparam("keys", type_=ARRAY(String()))), RUNS.c.status == _SUCCEEDED_STATUS)
)


def succeeded_runs_of_keys(connection: Connection, keys: Sequence[str]) -> dict[str, int]:
    """`succeeded_run_id` for several keys in one statement (PostgreSQL): the succeeded runs' ids by key."""
    return dict(_SUCCEEDED_RUNS_OF_KEYS.all(connection, {"keys": list(keys)}))


def lock_calls_for_result(connection: Connection, keys: dict[str, str]) -> dict[str, LockedCall]:
    """`lock_call_for_result` for several calls (`keys`: each call's id and its work's idempotency key) in two
    statements, whatever their number: the calls' rows locked in id order, then the succeeded runs with those
    keys (read after the locks, as the single statement's subquery is: a run another worker stored while this
    one waited for a lock is seen). Calls not found are missing from the result. PostgreSQL."""
    rows = _LOCK_CALLS_FOR_RESULT.all(connection, {"call_ids": sorted(keys)})
    succeeded = succeeded_runs_of_keys(connection, list(keys.values()))
    return {row.id: _locked(row, succeeded.get(keys[row.id])) for row in rows}


@dataclass(frozen=True)
class RunFacts:
    """What every run records, succeeded or failed."""

    key: str
    provider: str
    model: str
    prompt_version: str
    transcript_hash: str
    usage: Usage
    queue_wait_ms: float | None
    verify_ms: float | None
    # Wall time inside the provider (LLM waits plus client work; the whole extraction for offline ones).
    provider_ms: float | None = None
    # The batch whose answer the run used (batch mode); None for a synchronous run.
    llm_batch_id: int | None = None


def run_values(
    call_id: str, tenant_id: int, facts: RunFacts, *, status: RunStatus, error: str | None = None,
    raw_response: str | None = None,
) -> dict[str, Any]:
    """The `extraction_runs` columns of one run (the wall and CPU timings of the whole call excepted);
    `tenant_id`: the call's (the runs row policy reads it)."""
    usage = facts.usage
    return {
        "call_id": call_id,
        "tenant_id": tenant_id,
        "idempotency_key": facts.key,
        "provider": facts.provider,
        "model": facts.model,
        "prompt_version": facts.prompt_version,
        "transcript_hash": facts.transcript_hash,
        "status": status,
        "error": error,
        "raw_response": raw_response,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost_usd": usage.cost_usd,
        "llm_calls": usage.llm_calls,
        "queue_wait_ms": facts.queue_wait_ms,
        "llm_ms": facts.provider_ms if facts.provider_ms is not None else usage.llm_seconds * 1000.0,
        "verify_ms": facts.verify_ms,
        "finished_at": utcnow(),
        "llm_batch_id": facts.llm_batch_id,
    }


def add_run(
    session: Session,
    call: Call,
    facts: RunFacts,
    *,
    status: RunStatus,
    error: str | None = None,
    raw_response: str | None = None,
    db_ms: float | None = None,
    total_ms: float | None = None,
) -> ExtractionRun:
    run = ExtractionRun(
        **run_values(call.id, call.tenant_id, facts, status=status, error=error, raw_response=raw_response),
        db_ms=db_ms,
        total_ms=total_ms,
    )
    session.add(run)
    session.flush()
    if status is RunStatus.succeeded:
        call.current_run_id = run.id
    return run


def evidence_values(ev: VerifiedEvidence, position: int) -> dict[str, Any]:
    """The `evidence` columns for one verified span (model output and reviewer selections alike)."""
    return {
        "position": position,
        "cited_utterance": ev.cited_utterance,
        "utterance_index": ev.utterance,
        "char_start": ev.char_start,
        "char_end": ev.char_end,
        "quote": ev.quote,
        "status": ev.status.value,
        "score": ev.score,
        "reason": ev.reason,
    }


def add_claims(session: Session, run: ExtractionRun, report: VerificationReport) -> int:
    """Bulk-insert the run's claims and their evidence; returns the number of claims."""
    call = session.get_one(Call, run.call_id)  # already in the session: no query
    if call.current_run_id == run.id:
        call.flagged_items = len(report.ungrounded_claims)  # a new run's items are all undecided
    if report.claims:
        insert_claims(session, run.id, run.call_id, call.tenant_id, report, call_clock(session, run.call_id))
    return len(report.claims)


class MaskedCopies:
    """`mask_text` of the texts of one call's claims and evidence, each distinct text masked once (a claim
    often quotes its evidence word for word, and spans repeat across claims), and a text without a digit or a
    digit word not at all (`nothing_to_mask`). The same values the `text_masked` and `quote_masked` column
    defaults compute, given to the INSERT instead. Given the call's transcript, a quote that is its
    utterance's span is that span of the masked transcript (`CallMasks`: cues across turns), as readers
    show it."""

    def __init__(self, transcript: Transcript | None = None, *, utterance_texts: dict[int, str] | None = None,
                 scan: TurnScan | None = None) -> None:
        self._masked: dict[str, str] = {}
        # The call's utterances by index, as stored (None when the caller has no transcript at hand).
        self.utterance_texts = {u.index: u.text for u in transcript.utterances} if transcript else utterance_texts
        # `scan`: the detectors' pass over the transcript made for its redaction, reused (not made again).
        self._call = CallMasks(self.utterance_texts, scan=scan) if self.utterance_texts is not None else None

    def __call__(self, text: str) -> str:
        masked = self._masked.get(text)
        if masked is None:
            if nothing_to_mask(text):
                masked = text
            else:  # with the call's transcript, what its masking hid is hidden here too (`CallMasks.text`)
                masked = self._call.text(text) if self._call is not None else mask_text(text)
            self._masked[text] = masked
        return masked

    def quote(self, ev: VerifiedEvidence) -> str:
        if self._call is None:
            return self(ev.quote)
        return self._call.quote(ev.quote, ev.utterance, ev.char_start, ev.char_end)


def claim_rows_of(
    call_id: str, tenant_id: int, report: VerificationReport, clock: CallClock, masked: MaskedCopies
) -> list[dict[str, Any]]:
    """The `claims` rows of a run's verified claims, in position order: every column but the ids (the
    claim's, and the run's: `run_id` is set by the insert)."""
    created_at = utcnow()
    return [
        {
            "call_id": call_id,
            "tenant_id": tenant_id,
            "position": position,
            "kind": claim.kind.value,
            "text": claim.text,
            "owner": claim.owner.value if claim.owner else None,
            # Masked as stored: the phrase reaches analysts' views and the record's `due_phrase` as it is.
            "due": masked(claim.due) if claim.due else None,
            "grounding_status": claim.status.value,
            "grounding_reason": claim.reason,
            "review_status": ReviewStatus.pending.value,
            "origin": "model",
            "created_at": created_at,
            "text_masked": masked(claim.text),
            **analyst_fields(claim, clock, masked.utterance_texts),
        }
        for position, claim in enumerate(report.claims)
    ]


def evidence_rows_of(tenant_id: int, report: VerificationReport, masked: MaskedCopies) -> list[dict[str, Any]]:
    """The `evidence` rows of a run's claims, each with its claim's position (`claim_position`) in place of
    the claim id the insert does not know yet: every column but the ids. `tenant_id`: the call's."""
    return [
        {"claim_position": claim_position, "tenant_id": tenant_id, **evidence_values(ev, position),
         "quote_masked": masked.quote(ev)}
        for claim_position, claim in enumerate(report.claims)
        for position, ev in enumerate(claim.evidence)
    ]


# The columns the success path writes: every one but the generated ids, the claims' run and the evidence's
# claim (both ids the same statement generates), and the run's whole-call timings (written after the commit).
RUN_INSERT_COLUMNS = tuple(c.name for c in RUNS.c if c.name not in {"id", "db_ms", "total_ms", "cpu_ms"})
CLAIM_INSERT_COLUMNS = tuple(c.name for c in CLAIMS.c if c.name not in {"id", "run_id"})
EVIDENCE_INSERT_COLUMNS = tuple(c.name for c in EVIDENCE.c if c.name not in {"id", "claim_id"})


def _run_with_claims_sql() -> str:
    """PostgreSQL: the run, its claims and their evidence in ONE statement of a fixed shape, whatever the
    number of claims and spans. The run is one row of scalar parameters (`extraction_runs_<column>`); the
    claims and the evidence are each one JSON array of rows (`claims`, `evidence`) the server turns into
    typed rows (one `json.dumps` here, where arrays per column cost the driver Python per element). The
    evidence finds its claim's new id by the claim's position (RETURNING order is not guaranteed, so the
    statement returns each claim's position with its id). A multi-row VALUES list would be a new SQL text
    for every row count, parsed again by the driver each time (psycopg caches the parsing of texts under
    4 kB with at most 50 parameters: this one has 22) and planned again by the server (this one is
    prepared once per connection).

    The call's UPDATE runs after this statement (with the outbox INSERT), never in it: the rollup
    triggers count a run's claims either at their insert (when the call's current run is already theirs)
    or when the call's current run moves to their run, and a call UPDATE in this statement would fire both."""
    run_values = ", ".join(f"%(extraction_runs_{name})s::{sql_type(RUNS, name)}" for name in RUN_INSERT_COLUMNS)
    # The claim's position, beside the evidence columns (typed as the claims' `position`).
    claim_position = f"claim_position {sql_type(CLAIMS, 'position')}"
    # Built from the table definitions only; every value is a bound parameter.
    return (
        f"WITH new_run AS (INSERT INTO extraction_runs ({column_list(RUN_INSERT_COLUMNS)}) "  # noqa: S608
        f"VALUES ({run_values}) RETURNING id), "
        f"new_claims AS (INSERT INTO claims (run_id, {column_list(CLAIM_INSERT_COLUMNS)}) "
        f"SELECT new_run.id, {column_list(CLAIM_INSERT_COLUMNS, 'c.')} FROM new_run, "
        f"json_to_recordset(%(claims)s::json) AS c({json_record_columns(CLAIMS, CLAIM_INSERT_COLUMNS)}) "
        "RETURNING id, position), "
        f"new_evidence AS (INSERT INTO evidence (claim_id, {column_list(EVIDENCE_INSERT_COLUMNS)}) "
        f"SELECT new_claims.id, {column_list(EVIDENCE_INSERT_COLUMNS, 'e.')} "
        "FROM json_to_recordset(%(evidence)s::json) "
        f"AS e({claim_position}, {json_record_columns(EVIDENCE, EVIDENCE_INSERT_COLUMNS)}) "
        "JOIN new_claims ON new_claims.position = e.claim_position) "
        "SELECT new_run.id, new_claims.id, new_claims.position FROM new_run LEFT JOIN new_claims ON true"
    )


_INSERT_RUN_WITH_CLAIMS_PG = _run_with_claims_sql()


def _runs_with_claims_sql() -> str:
    """PostgreSQL: several calls' runs, their claims and their evidence in ONE statement of a fixed shape
    (`write_succeeded_runs`), as `_run_with_claims_sql` writes one call's: the runs are a JSON array of rows
    too, a claim finds its run by its call (one run per call in a statement), and a span its claim by the
    claim's call and position (`claim_call_id`, `claim_position`). Returns each run's call and id with each
    of its claims' id and position."""
    claim_of_evidence = (f"claim_call_id {sql_type(CLAIMS, 'call_id')}, "
                         f"claim_position {sql_type(CLAIMS, 'position')}")
    # Built from the table definitions only; every value is a bound parameter.
    return (
        f"WITH new_runs AS (INSERT INTO extraction_runs ({column_list(RUN_INSERT_COLUMNS)}) "  # noqa: S608
        f"SELECT {column_list(RUN_INSERT_COLUMNS, 'r.')} FROM json_to_recordset(%(runs)s::json) "
        f"AS r({json_record_columns(RUNS, RUN_INSERT_COLUMNS)}) RETURNING id, call_id), "
        f"new_claims AS (INSERT INTO claims (run_id, {column_list(CLAIM_INSERT_COLUMNS)}) "
        f"SELECT new_runs.id, {column_list(CLAIM_INSERT_COLUMNS, 'c.')} "
        f"FROM json_to_recordset(%(claims)s::json) AS c({json_record_columns(CLAIMS, CLAIM_INSERT_COLUMNS)}) "
        "JOIN new_runs ON new_runs.call_id = c.call_id "
        "RETURNING id, call_id, position), "
        f"new_evidence AS (INSERT INTO evidence (claim_id, {column_list(EVIDENCE_INSERT_COLUMNS)}) "
        f"SELECT new_claims.id, {column_list(EVIDENCE_INSERT_COLUMNS, 'e.')} "
        "FROM json_to_recordset(%(evidence)s::json) "
        f"AS e({claim_of_evidence}, {json_record_columns(EVIDENCE, EVIDENCE_INSERT_COLUMNS)}) "
        "JOIN new_claims ON new_claims.call_id = e.claim_call_id AND new_claims.position = e.claim_position) "
        "SELECT new_runs.call_id, new_runs.id, new_claims.id, new_claims.position "
        "FROM new_runs LEFT JOIN new_claims ON new_claims.call_id = new_runs.call_id"
    )


_INSERT_RUNS_WITH_CLAIMS_PG = _runs_with_claims_sql()


def insert_run_with_claims(
    work: Work, run: dict[str, Any], tenant_id: int, report: VerificationReport, clock: CallClock,
    masked: MaskedCopies | None = None,
) -> tuple[int, list[tuple[dict[str, Any], int]]]:
    """Insert a run (`run`: its `RUN_INSERT_COLUMNS`), its claims and their evidence; returns the run's id
    and each claim's row with its new id, in position order. PostgreSQL: one statement for all three
    (`_run_with_claims_sql`); SQLite: the run, then one multi-row INSERT per table. `masked`: the masked
    copies to compute the rows' with (and keep for the caller)."""
    masked = masked if masked is not None else MaskedCopies()
    claim_rows = claim_rows_of(run["call_id"], tenant_id, report, clock, masked)
    evidence_rows = evidence_rows_of(tenant_id, report, masked)
    connection = connection_of(work)
    if connection.dialect.name == "postgresql":
        parameters = {f"extraction_runs_{name}": run[name] for name in RUN_INSERT_COLUMNS}
        parameters["claims"] = json_rows(claim_rows)
        parameters["evidence"] = json_rows(evidence_rows)
        # Driver-level SQL with driver-level values: on the cursor (app/db/driver.py says why).
        returned = run_on_driver(connection, _INSERT_RUN_WITH_CLAIMS_PG, parameters, fetch=True)
        run_id = returned[0][0]
        ids_by_position = {position: claim_id for _, claim_id, position in returned if claim_id is not None}
        claim_ids = [ids_by_position[position] for position in range(len(claim_rows))]
        for row in claim_rows:
            row["run_id"] = run_id
    else:
        run_id = connection.scalar(_INSERT_RUN, run)
        claim_ids = _insert_claim_rows(connection, run_id, claim_rows, evidence_rows)
    return run_id, list(zip(claim_rows, claim_ids, strict=True))


def insert_claims(
    session: Session, run_id: int, call_id: str, tenant_id: int, report: VerificationReport, clock: CallClock
) -> list[tuple[dict[str, Any], int]]:
    """Insert the claims of a run already stored, and their evidence (one multi-row INSERT per table);
    returns each claim's row with its new id, in position order. Their masked copies are masked as the
    call's transcript is (`MaskedCopies`)."""
    texts = session.execute(select(_UTTERANCES.c.index, _UTTERANCES.c.text).where(_UTTERANCES.c.call_id == call_id))
    masked = MaskedCopies(utterance_texts=dict(texts.all()))
    claim_rows = claim_rows_of(call_id, tenant_id, report, clock, masked)
    claim_ids = _insert_claim_rows(session.connection(), run_id, claim_rows,
                                   evidence_rows_of(tenant_id, report, masked))
    return list(zip(claim_rows, claim_ids, strict=True))


def _insert_claim_rows(connection: Connection, run_id: int, claim_rows: list[dict[str, Any]],
                       evidence_rows: list[dict[str, Any]]) -> list[int]:
    if not claim_rows:
        return []
    for row in claim_rows:
        row["run_id"] = run_id
    claim_ids = list(connection.scalars(_INSERT_CLAIMS, claim_rows))
    if evidence_rows:
        for row in evidence_rows:
            row["claim_id"] = claim_ids[row.pop("claim_position")]
        connection.execute(_INSERT_EVIDENCE, evidence_rows)
    return claim_ids


@dataclass(frozen=True)
class _RecordRun:
    id: int
    status: RunStatus
    provider: str
    model: str
    prompt_version: str


@dataclass(frozen=True)
class WrittenRun:
    run_id: int
    state: CallState
    claims: int
    ungrounded: int
    # The webhook deliveries the event fanned out to: the caller hands them over once committed
    # (`hand_over_deliveries`), on a session as on a connection, since they are returned here, not kept
    # for the session's own hand-over at commit.
    deliveries: tuple[int, ...] = ()


@dataclass(frozen=True)
class ResultToWrite:
    """One call's succeeded extraction, for `write_succeeded_run(s)`: the run's facts, the verified report, the
    model's raw answer, the call as `lock_call(s)_for_result` locked it, and its transcript (`transcript`, to
    mask quotes as readers show them; `scan`: the detectors' pass over it, reused)."""

    facts: RunFacts
    report: VerificationReport
    raw_response: str | None
    locked: LockedCall
    transcript: Transcript | None = None
    scan: TurnScan | None = None


def write_succeeded_run(
    work: Work,
    facts: RunFacts,
    report: VerificationReport,
    *,
    raw_response: str | None,
    locked: LockedCall,
    transcript: Transcript | None = None,
    scan: TurnScan | None = None,
) -> WrittenRun:
    """Store a succeeded run: the run, its claims and evidence, the call's new state and current run, and
    the `call.processed` event, for the call `lock_call_for_result` locked (with what it read beside).
    Flushes; never commits.

    The rows go in through Core inserts (no ORM objects built and flushed), and the hand-off record is
    assembled from the rows as written rather than read back: the same record `build_record` returns.
    The run's whole-call timings are written after the commit (see `record_timings`).
    """
    result = ResultToWrite(facts, report, raw_response, locked, transcript, scan)
    run, clock, masked = _run_to_insert(result)
    run_id, written = insert_run_with_claims(work, run, locked.call.tenant_id, report, clock, masked)
    return _finish_call(work, result, run_id, written, masked)


def write_succeeded_runs(connection: Connection, results: Sequence[ResultToWrite]) -> list[WrittenRun]:
    """`write_succeeded_run` for several calls in the same transaction (group commit, PostgreSQL), each locked
    by `lock_calls_for_result`, one result per call: their runs, claims and evidence in one statement
    (`_runs_with_claims_sql`), then every call's change with its event (`record_events`, one statement). The rows
    written are the ones `write_succeeded_run` writes for each. Flushes; never commits."""
    if len({result.locked.call.id for result in results}) != len(results):
        raise ValueError("one result per call in a group")
    runs: list[dict[str, Any]] = []
    claims: list[list[dict[str, Any]]] = []  # each result's claim rows
    evidence: list[dict[str, Any]] = []
    masks: list[MaskedCopies] = []
    for result in results:
        call = result.locked.call
        run, clock, masked = _run_to_insert(result)
        runs.append(run)
        claims.append(claim_rows_of(call.id, call.tenant_id, result.report, clock, masked))
        evidence.extend({"claim_call_id": call.id, **row}
                        for row in evidence_rows_of(call.tenant_id, result.report, masked))
        masks.append(masked)
    returned = run_on_driver(connection, _INSERT_RUNS_WITH_CLAIMS_PG, {
        "runs": json_rows([{name: run[name] for name in RUN_INSERT_COLUMNS} for run in runs]),
        "claims": json_rows([row for rows in claims for row in rows]),
        "evidence": json_rows(evidence),
    }, fetch=True)
    run_ids: dict[str, int] = {}
    claim_ids: dict[tuple[str, int], int] = {}
    for call_id, run_id, claim_id, position in returned:
        run_ids[call_id] = run_id
        if claim_id is not None:
            claim_ids[call_id, position] = claim_id
    finished = []
    for result, rows, masked in zip(results, claims, masks, strict=True):
        call_id = result.locked.call.id
        run_id = run_ids[call_id]
        for row in rows:
            row["run_id"] = run_id
        finished.append(_finished(connection, result, run_id,
                                  [(row, claim_ids[call_id, row["position"]]) for row in rows], masked))
    # Every call's change and its event in one statement, then their deliveries.
    changes = [{"id": done.change["changed_call_id"], **done.change} for done in finished]
    recorded = record_events(connection, EventType.processed, [NewEvent(done.call, done.record) for done in finished],
                             call_change=(_FINISH_CALLS_PG, {"calls": json_rows(changes),
                                                             "call_ids": [change["id"] for change in changes]}))
    return [WrittenRun(run_ids[done.call.id], done.call.state, done.claims, done.ungrounded, tuple(deliveries))
            for done, (_, deliveries) in zip(finished, recorded, strict=True)]


def _run_to_insert(result: ResultToWrite) -> tuple[dict[str, Any], CallClock, MaskedCopies]:
    """A succeeded result's run row, its call's clock, and the masked copies its rows (and its hand-off record)
    are made with: `transcript`, the call's, masks quotes as readers show them."""
    call = result.locked.call
    run = {**run_values(call.id, call.tenant_id, result.facts, status=RunStatus.succeeded,
                        raw_response=result.raw_response),
           "started_at": utcnow()}
    return run, CallClock(call.started_at, result.locked.time_zone), MaskedCopies(result.transcript, scan=result.scan)


@dataclass(frozen=True)
class _Finished:
    """A result's call as it ends (its new state), the columns its change sets, and the record its event carries."""

    call: ResultCall
    change: dict[str, Any]
    record: CallRecordV1
    claims: int
    ungrounded: int


def _finished(work: Work, result: ResultToWrite, run_id: int, written: list[tuple[dict[str, Any], int]],
              masked: MaskedCopies) -> _Finished:
    """After a result's rows: the call's new state and current run, and the `call.processed` record assembled
    from the rows as written."""
    locked, report, facts = result.locked, result.report, result.facts
    ungrounded = len(report.ungrounded_claims)
    state = outcome_state(len(written), ungrounded)
    # What `set_state(call, state)`, the current run and its undecided items (all of a new run's) would
    # flush, as one Core UPDATE (the call was read as a plain row), run with the event's INSERT.
    change = {"changed_call_id": locked.call.id, **state_columns(state, utcnow()), "last_error": None,
              "current_run_id": run_id, "flagged_items": ungrounded}
    call = replace(locked.call, state=state, last_error=None)
    claim_rows = [
        (
            RecordClaim(
                id=claim_id, kind=row["kind"], text=row["text_masked"], owner=row["owner"], due=row["due"],
                due_date=row["due_date"], grounding_status=row["grounding_status"],
                grounding_reason=row["grounding_reason"], review_status=ReviewStatus.pending.value,
                origin=row["origin"],
            ),
            [EvidenceV1(utterance=ev.utterance, char_start=ev.char_start, char_end=ev.char_end,
                        quote=masked.quote(ev), status=ev.status.value) for ev in claim.evidence],
        )
        for (row, claim_id), claim in zip(written, report.claims, strict=True)
    ]
    shown_run = _RecordRun(run_id, RunStatus.succeeded, facts.provider, facts.model, facts.prompt_version)
    events = review_events(work, call) if locked.reviewed else ()
    record = assemble_record(call, locked.tenant_slug, shown_run, claim_rows, events,
                             public_url=get_settings().public_url)
    return _Finished(call, change, record, len(written), ungrounded)


def _finish_call(work: Work, result: ResultToWrite, run_id: int, written: list[tuple[dict[str, Any], int]],
                 masked: MaskedCopies) -> WrittenRun:
    """After a result's rows: the call's change with the `call.processed` event (`_finished`)."""
    finished = _finished(work, result, run_id, written, masked)
    deliveries: list[int] = []
    record_event(work, finished.call, EventType.processed, record=finished.record,
                 call_change=CallChange(_FINISH_CALL, finished.change), new_deliveries=deliveries)
    return WrittenRun(run_id, finished.call.state, finished.claims, finished.ungrounded, tuple(deliveries))


def _finish_calls_sql() -> str:
    """PostgreSQL: `_FINISH_CALL` for several calls in one statement, each with its own values (a JSON array of
    rows, `calls`), for `record_events` to run in front of their events' INSERT."""
    columns = ("state", "state_changed_at", "review_rank", "current_run_id", "flagged_items")
    typed = ", ".join(f"{name} {sql_type(_CALLS, name)}" for name in ("id", *columns))
    assignments = ", ".join(f"{name} = v.{name}" for name in columns)
    # Built from the table definition only; every value is a bound parameter. The ids beside the rows: the
    # planner takes a function's rows for 100 and joined them to calls by scanning every call (at 4,000 calls and
    # at 20,000, once per group); with the ids it looks the group's calls up by key.
    return (f"UPDATE calls SET {assignments}, last_error = NULL "  # noqa: S608
            f"FROM json_to_recordset(%(calls)s::json) AS v({typed}) "
            f"WHERE calls.id = ANY(%(call_ids)s::VARCHAR[]) AND calls.id = v.id")


_FINISH_CALLS_PG = _finish_calls_sql()


# The call's change when a run succeeds. After the run's rows, never in their statement: the rollup
# triggers count a run's claims when the call's current run moves to it (`_run_with_claims_sql`).
_FINISH_CALL = state_update(last_error=bindparam("last_error"), current_run_id=bindparam("current_run_id"),
                            flagged_items=bindparam("flagged_items"))
_RECORD_TIMINGS = update(RUNS).where(RUNS.c.id == bindparam("run_id")).values(
    db_ms=bindparam("db"), total_ms=bindparam("total"), cpu_ms=bindparam("cpu"))


def record_timings(connection: Connection, run_id: int, *, db_ms: float, total_ms: float, cpu_ms: float) -> None:
    """Write a run's whole-call timings, measured once its results were committed."""
    connection.execute(_RECORD_TIMINGS, {"run_id": run_id, "db": db_ms, "total": total_ms, "cpu": cpu_ms})


def state_for_run(session: Session, run_id: int) -> CallState:
    """The processing outcome a stored run implies: every claim grounded, or not."""
    total, ungrounded = session.execute(
        select(func.count(), func.count().filter(Claim.grounding_status != "grounded")).where(Claim.run_id == run_id)
    ).one()
    return outcome_state(total, ungrounded)


def outcome_state(claims: int, ungrounded: int) -> CallState:
    """A processed call with claims, every one grounded, is ready for review; otherwise it needs attention."""
    return CallState.ready_for_review if claims and not ungrounded else CallState.needs_attention
