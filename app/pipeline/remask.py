"""Stored masked copies computed again with the detector as it is now.

Readers without `view_pii` are shown masked copies stored when a row was written: claims' `text_masked`,
evidence's `quote_masked`, and texts stored masked only (a claim's due phrase, a call's case note, the
hand-off record in each outbox event). When the detector learns to find more (after an SSN cue any nine
digits, an ITIN among them), rows written before keep what the old detector left. `remask_calls` walks
the calls, a chunk per transaction, and rewrites every copy that masking now changes. Masking a masked text
again changes nothing already masked, so a run is safe to repeat and to interrupt.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.models import Call, Claim, Evidence, OutboxEvent
from app.models import Utterance as UtteranceRow
from app.privacy.mask import CallMasks, nothing_to_mask

CHUNK_CALLS = 200
# The texts of a hand-off record (app/handoff/record.py): statements, their evidence, the note, the due phrase.
_STATEMENT_TEXTS = ("text", "due_phrase")


@dataclass
class RemaskReport:
    calls: int = 0
    claims: int = 0
    evidence: int = 0
    notes: int = 0
    events: int = 0


def remask_calls(
    factory: sessionmaker[Session], *, tenant_id: int | None = None, on_calls: Callable[[int], None] | None = None,
) -> RemaskReport:
    """Every stored masked copy of the calls (of `tenant_id`, or all) masked again; counts of what changed.
    A chunk of calls per transaction, in id order."""
    report = RemaskReport()
    after = ""
    while True:
        with unit_of_work(factory) as session:
            query = select(Call.id).where(Call.id > after).order_by(Call.id).limit(CHUNK_CALLS)
            if tenant_id is not None:
                query = query.where(Call.tenant_id == tenant_id)
            call_ids = list(session.scalars(query))
            if not call_ids:
                return report
            _remask_chunk(session, call_ids, report)
        report.calls += len(call_ids)
        after = call_ids[-1]
        if on_calls is not None:
            on_calls(len(call_ids))


def _remask_chunk(session: Session, call_ids: list[str], report: RemaskReport) -> None:
    connection = session.connection()
    utterances: dict[str, dict[int, str]] = {}
    for call_id, index, text in connection.execute(
        select(UtteranceRow.call_id, UtteranceRow.index, UtteranceRow.text).where(UtteranceRow.call_id.in_(call_ids))
    ):
        utterances.setdefault(call_id, {})[index] = text
    masks = {call_id: CallMasks(texts) for call_id, texts in utterances.items()}

    for claim_id, call_id, text, text_masked, due in connection.execute(
        select(Claim.id, Claim.call_id, Claim.text, Claim.text_masked, Claim.due).where(Claim.call_id.in_(call_ids))
    ):
        changes: dict[str, Any] = {}
        call_masks = masks.get(call_id) or CallMasks({})
        masked = call_masks.text(text)
        if masked != text_masked:
            changes["text_masked"] = masked
        masked_due = call_masks.text(due) if due else due  # stored masked only: masked again
        if masked_due != due:
            changes["due"] = masked_due
        if changes:
            connection.execute(update(Claim).where(Claim.id == claim_id).values(**changes))
            report.claims += 1

    for evidence_id, call_id, quote, utterance, start, end, quote_masked in connection.execute(
        select(Evidence.id, Claim.call_id, Evidence.quote, Evidence.utterance_index, Evidence.char_start,
               Evidence.char_end, Evidence.quote_masked)
        .join(Claim, Claim.id == Evidence.claim_id).where(Claim.call_id.in_(call_ids))
    ):
        call_masks = masks.get(call_id) or CallMasks({})
        masked = call_masks.quote(quote, utterance, start, end)
        if masked != quote_masked:
            connection.execute(update(Evidence).where(Evidence.id == evidence_id).values(quote_masked=masked))
            report.evidence += 1

    for call_id, note in connection.execute(
        select(Call.id, Call.case_note).where(Call.id.in_(call_ids), Call.case_note.is_not(None))
    ):
        masked_note = (masks.get(call_id) or CallMasks({})).text(note) if note else note
        if masked_note != note:
            connection.execute(update(Call).where(Call.id == call_id).values(case_note=masked_note))
            report.notes += 1

    for event in session.scalars(select(OutboxEvent).where(OutboxEvent.call_id.in_(call_ids))):
        # A copy: changed in place, the loaded value would equal the new one and no UPDATE would be written.
        data = copy.deepcopy(event.payload.get("data"))
        if isinstance(data, dict) and _remask_record(data, masks.get(event.call_id) or CallMasks({})):
            event.payload = {**event.payload, "data": data}
            report.events += 1
    session.flush()


def _remask_record(data: dict[str, Any], masks: CallMasks) -> bool:
    """Mask the texts of one hand-off record again, in place, as the call's transcript is (`masks`);
    whether any changed."""
    changed = False
    summary = data.get("summary")
    if isinstance(summary, dict) and isinstance(summary.get("note"), str):
        changed |= _remask_field(summary, "note", masks)
    for statement in _statements(data):
        for field in _STATEMENT_TEXTS:
            if isinstance(statement.get(field), str):
                changed |= _remask_field(statement, field, masks)
        for evidence in statement.get("evidence") or ():
            if isinstance(evidence, dict) and isinstance(evidence.get("quote"), str):
                changed |= _remask_field(evidence, "quote", masks)
    return changed


def _statements(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("reason", "outcome"):
        if isinstance(data.get(key), dict):
            yield data[key]
    summary = data.get("summary")
    if isinstance(summary, dict):
        yield from (s for s in summary.get("statements") or () if isinstance(s, dict))
    yield from (item for item in data.get("action_items") or () if isinstance(item, dict))


def _remask_field(holder: dict[str, Any], field: str, masks: CallMasks) -> bool:
    text = holder[field]
    if nothing_to_mask(text):
        return False
    masked = masks.text(text)
    if masked == text:
        return False
    holder[field] = masked
    return True
