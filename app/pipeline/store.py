"""Store a canonical transcript as a queued call. Identical re-ingestion is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.driver import run_on_driver
from app.db.json_rows import column_list, json_record_columns, json_rows
from app.db.types import as_utc
from app.errors import DecidedCallError, DuplicateCallError, InvalidInputError
from app.handoff.outbox import EventType, follow_call_owner, record_event, record_reassignment
from app.models import Call, CallState, Claim, ExtractionRun, LlmMode, ReviewEvent
from app.models import Utterance as UtteranceRow
from app.models.tables import REVIEWED_STATES, TERMINAL_PROCESSING_STATES, new_call_id, utcnow
from app.pipeline.analyst_fields import call_clock, due_fields
from app.pipeline.calls import CALLS, get_or_create_tenant, set_state, state_columns
from app.pipeline.redact import redact_transcript
from app.privacy.mask import mask_turns
from app.schemas.transcript import CallMetadata, Transcript
from app.text.storable import is_blank, require_printable

_UTTERANCES = cast(Table, UtteranceRow.__table__)

# Call metadata a resubmission with `replace` may correct without touching the utterances.
CORRECTABLE_METADATA = ("agent_id", "team", "started_at", "language")


class StoreStatus(StrEnum):
    created = "created"
    unchanged = "unchanged"
    replaced = "replaced"
    # Same utterances, corrected metadata: the extraction stands.
    updated = "updated"


@dataclass(frozen=True)
class Actor:
    """Who stores a transcript, as the audit trail names them: a user of the API, or a command."""

    name: str
    user_id: int | None = None


SYSTEM_ACTOR = Actor("system")


@dataclass(frozen=True)
class StoredCall:
    call_id: str
    external_id: str
    status: StoreStatus
    state: CallState
    llm_mode: LlmMode = LlmMode.sync
    mode_changed: bool = False  # a waiting call resubmitted with `replace` took the mode asked for

    @property
    def needs_processing(self) -> bool:
        return self.status in (StoreStatus.created, StoreStatus.replaced)

    @property
    def needs_enqueue(self) -> bool:
        """A worker must be told: the call is new or replaced, or it was stored before and is still waiting
        in `queued` (a rerun after an interrupted ingest, or after the broker was down: its message may never
        have been sent; a second one is harmless, processing is idempotent). A batch-mode call waits in the
        database for the batch collector."""
        waiting = self.needs_processing or self.state is CallState.queued
        return waiting and self.llm_mode is LlmMode.sync


def store_transcript(
    session: Session,
    transcript: Transcript,
    *,
    tenant: str,
    external_id: str,
    source_name: str | None = None,
    replace: bool = False,
    actor: Actor = SYSTEM_ACTOR,
    redact: bool = False,
    llm_mode: LlmMode = LlmMode.sync,
    sees_personal_data: bool = True,
) -> StoredCall:
    """Insert (or, with `replace`, overwrite) one call and its utterances. Flushes; never commits.

    Same utterances and metadata: `unchanged`. Same utterances, corrected metadata (agent id, team,
    start, language) and `replace`: `updated`, the extraction kept. Other utterances and `replace`:
    `replaced`, the extraction discarded. An approved or rejected call refuses both until a supervisor
    reopens it. `actor` is named on the audit event of a replacement or a correction.

    With `redact` (POSTCALL_STORE_REDACTED) only the redacted transcript is stored: personal data
    replaced by placeholders such as [CARD_1], exactly as the model would see it.

    `llm_mode` is how the call's extraction reaches the model (batch: it waits for the next batch).

    `sees_personal_data`: whether the submitter may read the stored call unmasked (view_pii, an operator's
    command). One who may not is answered, without `replace`, as the content looks to them: a resubmission
    that differs from the stored call only where readers see it masked is `unchanged`, as an equal one is.
    Compared raw, "unchanged" or "different content" told a supervisor which guess of the masked digits was
    right (an SSN in a few hundred requests, unaudited).
    """
    external_id = clean_external_id(external_id)  # every way in (API, CLI file stem, a transcript's own id)
    if redact:
        transcript = redact_transcript(transcript)[0]
    tenant_row = get_or_create_tenant(session, tenant)
    content_hash = transcript.content_hash()
    content = _content_columns(transcript, content_hash, source_name, llm_mode)
    call_id = _insert_new_call(session, tenant_row.id, external_id, content)
    if call_id is not None:
        _insert_utterances(session, call_id, transcript)
        return StoredCall(call_id, external_id, StoreStatus.created, CallState.queued, llm_mode)
    # The external id exists (or a concurrent first submission of it just committed): a resubmission,
    # answered under the call's row lock.
    existing = _locked_call(session, tenant_row.id, external_id)
    if existing is None:  # the unique index said it exists; only a concurrent delete gets here
        raise DuplicateCallError(f"call {external_id!r} was changed concurrently; submit it again")

    corrections = _metadata_changes(existing, transcript.metadata)
    same_content = existing.transcript_hash == content_hash
    if not same_content and not replace and not sees_personal_data and _same_as_masked(session, existing, transcript):
        same_content = True  # nothing is stored without `replace`: only the answer is as for equal content
    if same_content and not corrections:
        if replace and llm_mode is not existing.llm_mode and existing.state is CallState.queued:
            return _change_mode(session, existing, llm_mode, actor)
        return StoredCall(existing.id, external_id, StoreStatus.unchanged, existing.state, existing.llm_mode)
    if existing.state in REVIEWED_STATES:
        raise DecidedCallError(
            f"call {external_id!r} is {existing.state.value}: a decided record is not overwritten; "
            "a supervisor reopens it first"
        )
    if not replace:
        what = "different content" if not same_content else f"different {', '.join(corrections)}"
        raise DuplicateCallError(
            f"call {external_id!r} already exists in tenant {tenant!r} with {what}; "
            "pass --replace (API: replace=true) to overwrite it"
            + ("" if same_content else " (its extractions are discarded)")
        )
    owner = (existing.agent_id, existing.team)
    # Receivers hold its record (call.processed or call.failed went out); a call still waiting is announced
    # by its first event.
    announced = existing.state in TERMINAL_PROCESSING_STATES or existing.state is CallState.failed
    if same_content:
        for name, (_old, new) in corrections.items():
            setattr(existing, name, new)
        _follow_owner(session, existing, owner, tenant, actor, announced=announced)
        session.add(_event(tenant_row.id, existing.id, actor, "metadata_corrected",
                           {name: _jsonable(old) for name, (old, _new) in corrections.items()},
                           {name: _jsonable(new) for name, (_old, new) in corrections.items()}))
        session.flush()
        if "started_at" in corrections:
            _resolve_due_dates_again(session, existing)
        if announced:  # a task filed under the old agent or team must follow the call
            record_event(session, existing, EventType.updated, actor=actor.name)
        if llm_mode is not existing.llm_mode and existing.state is CallState.queued:
            return _change_mode(session, existing, llm_mode, actor)  # asked for with the corrections
        return StoredCall(existing.id, external_id, StoreStatus.updated, existing.state, existing.llm_mode)

    # Never the content's hash: it is of the unmasked text, and a reader who sees the masked one could try
    # the masked digits against it offline (an SSN's five in a fraction of a second).
    before = {"state": existing.state.value}
    # Evidence offsets point into the old utterances, so the old extraction cannot survive them.
    session.execute(delete(Claim).where(Claim.call_id == existing.id))
    session.execute(delete(ExtractionRun).where(ExtractionRun.call_id == existing.id))
    session.execute(delete(UtteranceRow).where(UtteranceRow.call_id == existing.id))
    session.add(_event(tenant_row.id, existing.id, actor, "transcript_replaced", before,
                       {"utterances": len(transcript.utterances)}))
    for name, value in content.items():
        setattr(existing, name, value)  # the `state` validator keeps review_rank, as `state_columns` has it
    _follow_owner(session, existing, owner, tenant, actor, announced=announced)
    session.flush()
    _insert_utterances(session, existing.id, transcript)
    return StoredCall(existing.id, external_id, StoreStatus.replaced, existing.state, existing.llm_mode)


def _resolve_due_dates_again(session: Session, call: Call) -> None:
    """A corrected start moves the dates its items' due phrases name ("within 5 business days" counts from
    the new start): they are resolved again, before the `call.updated` record is built. Before, the record
    carried the new start beside due dates counted from the old one."""
    clock = call_clock(session, call.id)
    for claim in session.scalars(select(Claim).where(Claim.call_id == call.id, Claim.due.is_not(None))):
        for column, value in due_fields(claim.due, clock).items():
            setattr(claim, column, value)
    session.flush()


def _same_as_masked(session: Session, existing: Call, transcript: Transcript) -> bool:
    """Whether `transcript` equals the stored call once both are masked as readers see them: the same turns,
    speakers and times, and texts that differ only where personal data is masked."""
    stored = session.execute(
        select(UtteranceRow.speaker, UtteranceRow.role, UtteranceRow.start_s, UtteranceRow.end_s, UtteranceRow.text)
        .where(UtteranceRow.call_id == existing.id).order_by(UtteranceRow.index)
    ).all()
    sent = transcript.utterances
    if len(stored) != len(sent) or any(
        (row.speaker, row.role, row.start_s, row.end_s) != (u.speaker, u.role.value, u.start, u.end)
        for row, u in zip(stored, sent, strict=True)
    ):
        return False
    return mask_turns([row.text for row in stored]) == mask_turns([u.text for u in sent])


def _change_mode(session: Session, call: Call, llm_mode: LlmMode, actor: Actor) -> StoredCall:
    """The same call submitted again with `replace` and another LLM mode while it still waits: it takes that
    mode (`updated`), as `postcall retry --mode` would, leaving any batch it waits in (an answer that comes
    back in that batch later is not stored over it). Moved to sync, it is handed to the workers; to batch,
    it waits for the next batch. Before, it stayed as it was and the answer said `unchanged`."""
    session.add(_event(call.tenant_id, call.id, actor, "llm_mode_changed", {"llm_mode": call.llm_mode.value},
                       {"llm_mode": llm_mode.value}))
    call.llm_mode, call.llm_batch_id = llm_mode, None
    # Queued afresh in its new mode, as `postcall retry --mode` queues it: its wait is counted from now (the
    # reconciler's stuck test, the oldest pending call's age), not from when it began to wait for a batch.
    set_state(call, CallState.queued, error=call.last_error)
    call.enqueued_at = call.state_changed_at
    session.flush()
    return StoredCall(call.id, call.external_id, StoreStatus.updated, call.state, call.llm_mode, mode_changed=True)


def _follow_owner(session: Session, call: Call, owner: tuple[str | None, str | None], tenant_slug: str,
                  actor: Actor, *, announced: bool) -> None:
    """When a resubmission gave the call another (agent, team) than `owner`, its events follow it, and the
    former owner is told it left them when the call had been `announced` to them (its result or failure)."""
    if (call.agent_id, call.team) != owner:
        follow_call_owner(session, call.id, call.agent_id, call.team)
        if announced:
            # Shown to whoever lost the call only: the former agent when the agent changed, the former team when
            # the team did (an agent moved within a team stays the team's; a team's call keeps its agent).
            old_agent, old_team = owner
            lost = (old_agent if old_agent != call.agent_id else None, old_team if old_team != call.team else None)
            record_reassignment(session, call, tenant_slug, owner, shown_to=lost, actor=actor.name)


def clean_external_id(external_id: str) -> str:
    """An external id as it is stored and looked up: without surrounding spaces (" A-17 " was a call
    `postcall show A-17` never found), never blank, never holding a line break, a tab or another character
    that does not print (it broke every line that shows it). Callers that look the id up before storing
    (the API's visibility check) clean it first, so both see the same id."""
    if is_blank(external_id):
        raise InvalidInputError("the external id is empty; it names the call in the contact-center system")
    cleaned = external_id.strip()
    require_printable(cleaned, "the external id", "it names the call in the contact-center system")
    return cleaned


def _locked_call(session: Session, tenant_id: int, external_id: str) -> Call | None:
    return session.scalar(
        select(Call).where(Call.tenant_id == tenant_id, Call.external_id == external_id).with_for_update()
    )


# A new call's INSERT, skipped when the tenant has the external id already (the unique constraint): one
# statement where a savepoint around an ORM flush took three, and no lock-and-look first. On PostgreSQL a
# concurrent first submission of the same id that has not committed yet makes this one wait for it, then
# skip (and the caller locks the call it committed).
_INSERT_NEW_CALL = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(CALLS)
    .on_conflict_do_nothing(index_elements=[CALLS.c.tenant_id, CALLS.c.external_id])
    .returning(CALLS.c.id)
    for dialect in (postgresql, sqlite)
}


def _insert_new_call(session: Session, tenant_id: int, external_id: str, content: dict[str, Any]) -> str | None:
    """Insert a new call with `content` (`_content_columns`); its id, or None when the external id exists."""
    connection = session.connection()
    values = {"id": new_call_id(), "tenant_id": tenant_id, "external_id": external_id, "created_at": utcnow(),
              **content}
    call_id: str | None = connection.scalar(_INSERT_NEW_CALL[connection.dialect.name], values)
    return call_id


def _content_columns(
    transcript: Transcript, content_hash: str, source_name: str | None, llm_mode: LlmMode
) -> dict[str, Any]:
    """What a submitted transcript sets on its call, new or replaced: its metadata and content, and a fresh
    queued state."""
    meta = transcript.metadata
    return {
        "agent_id": meta.agent_id,
        "team": meta.team,
        "started_at": meta.started_at,
        "language": meta.language,
        "source_format": transcript.source_format,
        "source_name": source_name,
        "transcript_hash": content_hash,
        "vendor_hints": transcript.vendor_hints or None,
        "ingest_warnings": transcript.warnings or None,
        "attempts": 0,
        "llm_mode": llm_mode,
        # A replaced transcript leaves the batch its old version was in; that answer is dropped.
        "llm_batch_id": None,
        # A replaced transcript's extractions are deleted: no current run, nothing flagged.
        "current_run_id": None,
        "flagged_items": 0,
        "enqueued_at": utcnow(),
        "last_error": None,
        **state_columns(CallState.queued, utcnow()),
    }


# The columns of a call's utterances, in the order the transcript gives them.
_UTTERANCE_COLUMNS = ("index", "speaker", "role", "role_confidence", "start_s", "end_s", "text")
_INSERT_UTTERANCES_PG = (
    f"INSERT INTO utterances (call_id, {column_list(_UTTERANCE_COLUMNS)}) "  # noqa: S608 (table columns only)
    f"SELECT %(call_id)s, {column_list(_UTTERANCE_COLUMNS, 'u.')} "
    f"FROM json_to_recordset(%(utterances)s::json) AS u({json_record_columns(_UTTERANCES, _UTTERANCE_COLUMNS)})"
)


def _insert_utterances(session: Session, call_id: str, transcript: Transcript) -> None:
    """All the call's utterances in one INSERT on PostgreSQL (one JSON array of rows the server turns into
    typed rows: a multi-row executemany is one INSERT per utterance there, each with its foreign-key
    check); the driver's executemany on SQLite, in-process."""
    rows = [
        {"index": u.index, "speaker": u.speaker, "role": u.role.value, "role_confidence": u.role_confidence,
         "start_s": u.start, "end_s": u.end, "text": u.text}
        for u in transcript.utterances
    ]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        run_on_driver(connection, _INSERT_UTTERANCES_PG, {"call_id": call_id, "utterances": json_rows(rows)},
                      fetch=False)
    else:
        connection.execute(insert(_UTTERANCES), [{"call_id": call_id, **row} for row in rows])


def _comparable(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


def _metadata_changes(call: Call, metadata: CallMetadata) -> dict[str, tuple[Any, Any]]:
    """{field: (stored, submitted)} for each correctable field the submission changes."""
    changes: dict[str, tuple[Any, Any]] = {}
    for name in CORRECTABLE_METADATA:
        stored, submitted = getattr(call, name), getattr(metadata, name)
        if _comparable(stored) != _comparable(submitted):
            changes[name] = (stored, submitted)
    return changes


def _jsonable(value: Any) -> Any:
    return as_utc(value).isoformat() if isinstance(value, datetime) else value


def _event(
    tenant_id: int, call_id: str, actor: Actor, action: str, before: dict[str, Any], after: dict[str, Any]
) -> ReviewEvent:
    return ReviewEvent(
        tenant_id=tenant_id,
        call_id=call_id,
        actor_user_id=actor.user_id,
        actor_name=actor.name,
        action=action,
        before=before,
        after=after,
    )
