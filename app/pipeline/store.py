"""Store a canonical transcript as a queued call. Identical re-ingestion is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.errors import DuplicateCallError
from app.models import Call, CallState, Claim, ExtractionRun, LlmMode, ReviewEvent
from app.models import Utterance as UtteranceRow
from app.models.tables import utcnow
from app.pipeline.calls import get_or_create_tenant, set_state
from app.schemas.transcript import Transcript


class StoreStatus(StrEnum):
    created = "created"
    unchanged = "unchanged"
    replaced = "replaced"


@dataclass(frozen=True)
class StoredCall:
    call_id: str
    external_id: str
    status: StoreStatus
    state: CallState
    llm_mode: LlmMode = LlmMode.sync

    @property
    def needs_processing(self) -> bool:
        return self.status is not StoreStatus.unchanged

    @property
    def needs_enqueue(self) -> bool:
        """A worker must be told; a batch-mode call waits in the database for the batch collector."""
        return self.needs_processing and self.llm_mode is LlmMode.sync


def store_transcript(
    session: Session,
    transcript: Transcript,
    *,
    tenant: str,
    external_id: str,
    source_name: str | None = None,
    replace: bool = False,
    llm_mode: LlmMode = LlmMode.sync,
) -> StoredCall:
    """Insert (or, with `replace`, overwrite) one call and its utterances. Flushes; never commits.

    `llm_mode` is how the call's extraction reaches the model (batch: it waits for the next batch)."""
    tenant_row = get_or_create_tenant(session, tenant)
    content_hash = transcript.content_hash()
    existing = session.scalar(
        select(Call).where(Call.tenant_id == tenant_row.id, Call.external_id == external_id).with_for_update()
    )
    if existing is not None:
        if existing.transcript_hash == content_hash:
            return StoredCall(existing.id, external_id, StoreStatus.unchanged, existing.state, existing.llm_mode)
        if not replace:
            raise DuplicateCallError(
                f"call {external_id!r} already exists in tenant {tenant!r} with different content; "
                "pass --replace to overwrite it (its extractions are discarded)"
            )
        before = {"transcript_hash": existing.transcript_hash, "state": existing.state.value}
        # Evidence offsets point into the old utterances, so the old extraction cannot survive them.
        session.execute(delete(Claim).where(Claim.call_id == existing.id))
        session.execute(delete(ExtractionRun).where(ExtractionRun.call_id == existing.id))
        session.execute(delete(UtteranceRow).where(UtteranceRow.call_id == existing.id))
        call = existing
        status = StoreStatus.replaced
        session.add(
            ReviewEvent(
                tenant_id=tenant_row.id,
                call_id=call.id,
                actor_name="system",
                action="transcript_replaced",
                before=before,
                after={"transcript_hash": content_hash},
            )
        )
    else:
        call = Call(tenant_id=tenant_row.id, external_id=external_id)
        session.add(call)
        status = StoreStatus.created

    meta = transcript.metadata
    call.agent_id = meta.agent_id
    call.team = meta.team
    call.started_at = meta.started_at
    call.language = meta.language
    call.source_format = transcript.source_format
    call.source_name = source_name
    call.transcript_hash = content_hash
    call.vendor_hints = transcript.vendor_hints or None
    call.ingest_warnings = transcript.warnings or None
    call.attempts = 0
    call.llm_mode = llm_mode
    # A replaced transcript leaves the batch its old version was in; that answer is dropped.
    call.llm_batch_id = None
    call.enqueued_at = utcnow()
    set_state(call, CallState.queued)
    session.flush()
    # Bulk insert: the ORM's per-object cost dominates a call's write (PITFALLS.md).
    session.execute(
        insert(UtteranceRow),
        [
            {
                "call_id": call.id,
                "index": u.index,
                "speaker": u.speaker,
                "role": u.role.value,
                "role_confidence": u.role_confidence,
                "start_s": u.start,
                "end_s": u.end,
                "text": u.text,
            }
            for u in transcript.utterances
        ],
    )
    return StoredCall(call.id, external_id, status, call.state, call.llm_mode)
