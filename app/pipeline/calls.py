"""Call repository: queries and flushes only. The entry point owns the transaction."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Select, String, Table, Update, any_, bindparam, func, literal_column, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.driver import FixedStatement
from app.db.session import Work, connection_of, scalar_for_update
from app.errors import ConfigError, NotFoundError
from app.models import Call, CallState, Tenant
from app.models import Utterance as UtteranceRow
from app.models.tables import review_rank, utcnow
from app.privacy.mask import stored_error
from app.schemas.transcript import Transcript

CALLS = cast(Table, Call.__table__)
TENANT_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def get_or_create_tenant(session: Session, slug: str) -> Tenant:
    if not TENANT_SLUG.fullmatch(slug):
        raise ConfigError(
            f"invalid tenant {slug!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    tenant = find_tenant(session, slug)
    if tenant is not None:
        return tenant
    try:
        with session.begin_nested():  # a savepoint: losing the race below leaves the caller's transaction usable
            tenant = Tenant(slug=slug)
            session.add(tenant)
            session.flush()
    except IntegrityError:
        # A concurrent first call of the same new tenant created it (on PostgreSQL this insert waited for
        # that transaction's commit): use that one.
        tenant = find_tenant(session, slug)
        if tenant is None:  # the unique index said it exists; only a concurrent delete gets here
            raise
    return tenant


def find_tenant(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def lock_call(session: Session, call_id: str) -> Call | None:
    """Load a call holding its row lock (on SQLite, the write lock) for the rest of the transaction."""
    return scalar_for_update(session, select(Call).where(Call.id == call_id))


# The columns `lock_call_row` reads: what deciding whether to process a call, and loading its transcript, use.
CLAIM_COLUMNS = (Call.id, Call.external_id, Call.agent_id, Call.team, Call.started_at, Call.language,
                 Call.source_format, Call.transcript_hash, Call.state, Call.enqueued_at, Call.attempts, Call.llm_mode,
                 Call.llm_batch_id)


# The statements every processed call runs are built once, with bound parameters: building one costs
# about as much Python as executing it. They run on the driver's cursor on PostgreSQL (app/db/driver.py).
_LOCK_CALL_ROW = FixedStatement(select(*CLAIM_COLUMNS).where(Call.id == bindparam("call_id")).with_for_update())


# Several calls at once (group commit, PostgreSQL), bound as one array: every statement that locks several
# calls locks them in the order of their ids, so two such transactions never wait on each other in a cycle.
CALL_IDS = bindparam("call_ids", type_=ARRAY(String()))
_LOCK_CALL_ROWS = FixedStatement(select(*CLAIM_COLUMNS).where(Call.id == any_(CALL_IDS)).order_by(Call.id)
                                 .with_for_update())


def lock_call_rows(work: Work, call_ids: Sequence[str]) -> dict[str, Row[Any]]:
    """`lock_call_row` for several calls in one statement (PostgreSQL); calls not found are missing."""
    rows = _LOCK_CALL_ROWS.all(connection_of(work), {"call_ids": sorted(call_ids)})
    return {row.id: row for row in rows}


def state_columns(state: CallState, now: datetime) -> dict[str, Any]:
    """The columns a change of a call's state sets (as `set_state` and the `state` validator do on the ORM
    object): what a Core UPDATE changing the state writes too."""
    return {"state": state, "state_changed_at": now, "review_rank": review_rank(state)}


def state_update(**columns: Any) -> Update:
    """A prebuilt UPDATE of the call `changed_call_id` setting the state columns (bound as `state`,
    `state_changed_at` and `review_rank`, the keys of `state_columns`) and `columns` besides. (Not bound as
    `call_id`: the UPDATE may run inside the outbox INSERT, whose `call_id` is its own column's.)"""
    return update(CALLS).where(CALLS.c.id == bindparam("changed_call_id")).values(
        state=bindparam("state"), state_changed_at=bindparam("state_changed_at"),
        review_rank=bindparam("review_rank"), **columns,
    )


# `start_processing`'s UPDATE, and the utterance columns `load_transcript` reads.
START_PROCESSING = state_update(attempts=bindparam("attempt"))
TRANSCRIPT_COLUMNS = (UtteranceRow.index, UtteranceRow.speaker, UtteranceRow.role, UtteranceRow.role_confidence,
                      UtteranceRow.start_s, UtteranceRow.end_s, UtteranceRow.text)
_START_PROCESSING = FixedStatement(START_PROCESSING)
_TRANSCRIPT_ROWS = FixedStatement(
    select(*TRANSCRIPT_COLUMNS).where(UtteranceRow.call_id == bindparam("call_id")).order_by(UtteranceRow.index)
)


def lock_call_row(work: Work, call_id: str) -> Row[Any] | None:
    """`lock_call` as a plain row of `CLAIM_COLUMNS` (attributes named as the columns): the same lock, without
    building an ORM object (and a unit-of-work flush) for a call the caller changes with one UPDATE
    (`start_processing`)."""
    row = _LOCK_CALL_ROW.one_or_none(connection_of(work), {"call_id": call_id})
    return cast("Row[Any] | None", row)


def start_processing(work: Work, call_id: str, *, attempts: int) -> None:
    """Mark a call locked by `lock_call_row` as processing, counting the attempt: what `set_state` (keeping
    the last error) and `attempts += 1` would flush."""
    _START_PROCESSING.execute(
        connection_of(work),
        {"changed_call_id": call_id, "attempt": attempts, **state_columns(CallState.processing, utcnow())},
    )


# `start_processing` of several calls, each counting its own attempt (PostgreSQL).
_START_PROCESSING_CALLS = FixedStatement(
    update(CALLS).where(CALLS.c.id == any_(CALL_IDS)).values(
        state=bindparam("state"), state_changed_at=bindparam("state_changed_at"),
        review_rank=bindparam("review_rank"), attempts=CALLS.c.attempts + 1,
    )
)


def _transcripts_rows() -> Select[Any]:
    """Each call's utterances looked up by its key, call by call (a LATERAL subquery kept apart by OFFSET 0).
    `call_id = ANY(ids)` left the plan to an estimate: on a server without statistics on utterances (autovacuum
    off) PostgreSQL took a group's share of them for thousands of rows and scanned the whole table for some
    groups (bench/throughput: 52 full scans of 92,000 utterances in 12 s)."""
    group = func.unnest(CALL_IDS).table_valued("id").render_derived(name="group_call")
    utterances = (select(UtteranceRow.call_id, *TRANSCRIPT_COLUMNS).where(UtteranceRow.call_id == group.c.id)
                  .offset(literal_column("0")).lateral("utterance"))
    return (select(*utterances.c).select_from(group).join(utterances, true())
            .order_by(utterances.c.call_id, utterances.c.index))


_TRANSCRIPTS_ROWS = FixedStatement(_transcripts_rows())


def transcript_rows_of(work: Work, call_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The utterance rows of several calls' transcripts (`TRANSCRIPT_COLUMNS`, in order), by call id, in one
    statement (PostgreSQL), for `transcript_of`."""
    utterances: dict[str, list[Any]] = {call_id: [] for call_id in call_ids}
    for row in _TRANSCRIPTS_ROWS.all(connection_of(work), {"call_ids": list(call_ids)}):
        utterances[row.call_id].append(row)
    return utterances


def start_processing_calls(work: Work, call_ids: Sequence[str]) -> None:
    """`start_processing` for several calls locked by `lock_call_rows`, in one statement (PostgreSQL), each
    counting its own attempt."""
    _START_PROCESSING_CALLS.execute(connection_of(work), {"call_ids": list(call_ids),
                                                          **state_columns(CallState.processing, utcnow())})


def get_call(session: Session, call_id: str) -> Call:
    call = session.get(Call, call_id)
    if call is None:
        raise NotFoundError(f"call {call_id} not found")
    return call


def find_call(session: Session, reference: str, tenant_id: int | None = None) -> Call:
    """Find a call by its id or, failing that, by its external id (within a tenant when given)."""
    query = select(Call).where(Call.id == reference)
    if tenant_id is not None:
        query = query.where(Call.tenant_id == tenant_id)
    call = session.scalar(query)
    if call is None:
        by_external = select(Call).where(Call.external_id == reference)
        if tenant_id is not None:
            by_external = by_external.where(Call.tenant_id == tenant_id)
        matches = session.scalars(by_external.limit(2)).all()
        if len(matches) > 1:
            raise NotFoundError(f"external id {reference!r} exists in several tenants; use the call id or --tenant")
        call = matches[0] if matches else None
    if call is None:
        raise NotFoundError(f"no call with id or external id {reference!r}")
    return call


def set_state(call: Call, state: CallState, *, error: str | None = None) -> None:
    call.state = state  # the validator keeps review_rank: the columns of `state_columns`
    call.state_changed_at = utcnow()
    call.last_error = stored_error(error) if error else error


def load_transcript(work: Work, call: Call | Row[Any]) -> Transcript:
    # Columns, not ORM objects, on the session's connection: the rows are read once into the transcript and
    # never changed, so the ORM execution layer has nothing to do.
    return transcript_of(call, _TRANSCRIPT_ROWS.all(connection_of(work), {"call_id": call.id}))


def transcript_of(call: Call | Row[Any], rows: Sequence[Any]) -> Transcript:
    """The transcript of `call` from its utterance rows (`TRANSCRIPT_COLUMNS`, in order)."""
    # One validation of the nested data (pydantic's core walks it in one call) rather than a model built per
    # utterance: a third less CPU for the same models, the same fields set. The role goes in as stored (its
    # value), for the validation to make it the enum member.
    return Transcript.model_validate({
        "metadata": {
            "external_id": call.external_id,
            "agent_id": call.agent_id,
            "team": call.team,
            "started_at": call.started_at,
            "language": call.language,
        },
        "utterances": [
            {
                "index": row.index,
                "speaker": row.speaker,
                "role": row.role,
                "role_confidence": row.role_confidence,
                "start": row.start_s,
                "end": row.end_s,
                "text": row.text,
            }
            for row in rows
        ],
        "source_format": call.source_format,
    })


def count_by_state(session: Session, tenant_id: int | None = None) -> dict[str, int]:
    """Calls per state (every state, zeros included), from the counters kept at each state change."""
    from app.pipeline.counts import call_totals, state_counts

    return state_counts(session, tenant_id) if tenant_id is not None else call_totals(session)[0]


def call_ids_of(session: Session, tenant_id: int | None = None) -> list[str]:
    """Every call's id, oldest first (within a tenant when given)."""
    query = select(Call.id).order_by(Call.created_at)
    if tenant_id is not None:
        query = query.where(Call.tenant_id == tenant_id)
    return list(session.scalars(query))
