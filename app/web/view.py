"""What the call page shows, computed once in Python so the template only lays it out.

Evidence highlighting is decided here, not in the browser: each utterance's text is cut at every
evidence boundary into segments that know which items cite them. Offsets are code points into the
stored utterance text (the grounding invariant), and Python slices by code points too, so the marks
land exactly on the verified span whatever the script or emoji; the browser only toggles a class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.types import as_utc
from app.models import Call, CallState, LlmBatch, LlmMode, ReviewEvent, Tenant
from app.models import Utterance as UtteranceRow
from app.models.tables import REVIEWED_STATES
from app.pipeline.note import case_note, stated_as_fact
from app.pipeline.queries import call_summary, claim_out, current_claims, latest_run, run_out, stored_masks
from app.privacy.mask import CallMasks, mask_text
from app.privacy.reads import mask_claim, mask_snapshot, shown_snapshot
from app.review import DECIDABLE_CALL_STATES, call_events, visible_call
from app.schemas.api import CallSummaryOut, ClaimOut, EvidenceOut, RunOut
from app.schemas.grounding import ClaimKind, ClaimStatus, EvidenceStatus
from app.users import Principal

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600
SECTIONS = (
    (ClaimKind.reason, "Reason for the call"),
    (ClaimKind.outcome, "Outcome"),
    (ClaimKind.summary, "Summary"),
    (ClaimKind.action_item, "Action items"),
)
# The status names are the ones the CLI and the docs use; the explanation is the label's tooltip.
EVIDENCE_LABELS = {
    EvidenceStatus.exact.value: "exact",
    EvidenceStatus.normalized.value: "normalized",
    EvidenceStatus.fuzzy.value: "fuzzy",
    EvidenceStatus.relocated.value: "relocated",
    EvidenceStatus.ungrounded.value: "ungrounded",
}
EVIDENCE_EXPLANATIONS = {
    EvidenceStatus.exact.value: "the quote is in the cited utterance, character for character",
    EvidenceStatus.normalized.value: "the quote is in the cited utterance up to case, punctuation and fillers",
    EvidenceStatus.fuzzy.value: "a close match, with every number, date and negation equal",
    EvidenceStatus.relocated.value: "found in another utterance than the one cited",
    EvidenceStatus.ungrounded.value: "not found in the transcript, or a number, date or negation differs",
}
EVENT_LABELS = {
    "claim_approved": "approved an item",
    "claim_edited": "edited an item",
    "claim_rejected": "rejected an item",
    "claim_added": "added an item",
    "call_approved": "approved the call",
    "call_rejected": "rejected the call",
    "call_reopened": "reopened the call for review",
    "call_deleted": "deleted the call",
    "note_edited": "edited the case note",
    "transcript_replaced": "replaced the transcript",
    "metadata_corrected": "corrected the call's agent, team, start or language",
    "llm_mode_changed": "changed how the call reaches the model (sync or batch)",
    "pii_unmasked": "viewed personal data unmasked",
}
SNAPSHOT_FIELDS = ("text", "owner", "due", "review_status", "state", "case_note")
# Bidirectional controls: embeddings, overrides, isolates and the marks. Applied, they reorder what is shown
# ("please \u202eevil\u202c text" displays "please txet live"), so a transcript could make a reviewer read
# something it does not say; shown, they are a visible code, as the CLI prints them (app/cli/render.py).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
BIDI_CONTROL_MARK = Markup('<span class="bidi-control" title="a bidirectional control character, shown, not applied">'
                           "{}</span>")


def show_bidi(value: object) -> Markup:
    """Plain text (transcript-derived) for HTML: escaped, each bidirectional control shown as `\u202e`."""
    text = "" if value is None else str(value)
    shown: list[str] = []
    end = 0
    for control in BIDI_CONTROLS.finditer(text):
        shown.append(escape(text[end:control.start()]))
        shown.append(BIDI_CONTROL_MARK.format(f"\\u{ord(control.group()):04x}"))
        end = control.end()
    shown.append(escape(text[end:]))
    return Markup("").join(shown)


def bidi_codes(value: object) -> str:
    """`show_bidi` for an attribute (a tooltip), where no markup goes: each control as its code, in text."""
    text = "" if value is None else str(value)
    return BIDI_CONTROLS.sub(lambda control: f"\\u{ord(control.group()):04x}", text)


def utc_minute(moment: datetime | None) -> str:
    """A stored time as pages show it, labelled: "2026-12-05 04:30 UTC" (every time is kept in UTC)."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else ""


def due_day(day: date | None, *, today: date | None = None) -> str:
    """A due date in the queue: "Mon 02 Mar" this year, "Mon 02 Mar 2027" in any other."""
    if day is None:
        return ""
    this_year = (today or datetime.now(UTC).date()).year
    return day.strftime("%a %d %b") if day.year == this_year else day.strftime("%a %d %b %Y")


# The review pages' Jinja filters (registered by app.web.pages.render).
TEMPLATE_FILTERS = {"show_bidi": show_bidi, "bidi_codes": bidi_codes, "utc_minute": utc_minute, "due_day": due_day}


def time_label(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, SECONDS_PER_HOUR)
    minutes, secs = divmod(rest, SECONDS_PER_MINUTE)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def humanize(code: str | None) -> str:
    return (code or "").replace("_", " ")


@dataclass(frozen=True)
class TextSegment:
    text: str
    claim_ids: str  # space-separated ids of the items citing this stretch; "" when none


@dataclass(frozen=True)
class UtteranceView:
    index: int
    speaker: str
    role: str
    time: str
    segments: list[TextSegment]


@dataclass(frozen=True)
class EvidenceView:
    utterance: int | None
    cited_utterance: int
    time: str
    role: str
    quote: str
    status: str
    status_label: str
    explanation: str
    reason: str
    grounded: bool


@dataclass(frozen=True)
class ClaimView:
    claim: ClaimOut
    grounded: bool
    reason: str
    evidence: list[EvidenceView]

    @property
    def id(self) -> int:
        return self.claim.id


@dataclass(frozen=True)
class Section:
    kind: str
    title: str
    items: list[ClaimView]


@dataclass(frozen=True)
class EventView:
    when: str
    actor: str
    label: str
    claim_id: int | None
    changes: list[str]


@dataclass(frozen=True)
class CallPage:
    call: CallSummaryOut
    run: RunOut | None
    warnings: list[str]
    utterances: list[UtteranceView]
    sections: list[Section]
    events: list[EventView]
    pending_unverified: int
    decidable: bool
    # Approved or rejected: items are locked until a supervisor reopens the call.
    reopenable: bool
    claim_count: int
    # The case note (the agent's wording, else derived from the items) and whether it was edited.
    note: str
    note_edited: bool
    # Every item verified and none pending a decision: one key approves it and opens the next call.
    approvable: bool
    # Batch mode: "waiting in batch B (status)" or "waiting for the next batch"; None otherwise.
    batch_note: str | None = None


def segment_text(text: str, spans: list[tuple[int, int, int]]) -> list[TextSegment]:
    """Cut `text` at every span boundary; each piece lists the claims whose spans cover it."""
    if not spans:
        return [TextSegment(text, "")]
    boundaries = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    segments: list[TextSegment] = []
    for start, end in pairwise(boundaries):
        if start >= end:
            continue
        covering = sorted({claim for s, e, claim in spans if s <= start and end <= e})
        segments.append(TextSegment(text[start:end], " ".join(map(str, covering))))
    return segments


def _evidence_spans(claims: list[ClaimOut], lengths: dict[int, int]) -> dict[int, list[tuple[int, int, int]]]:
    spans: dict[int, list[tuple[int, int, int]]] = {}
    for claim in claims:
        for ev in claim.evidence:
            if ev.utterance is None or ev.char_start is None or ev.char_end is None:
                continue
            length = lengths.get(ev.utterance)
            # A span outside its utterance would break the invariant; showing nothing beats a wrong mark.
            if length is None or not 0 <= ev.char_start < ev.char_end <= length:
                continue
            spans.setdefault(ev.utterance, []).append((ev.char_start, ev.char_end, claim.id))
    return spans


def _evidence_view(ev: EvidenceOut, utterances: dict[int, UtteranceView]) -> EvidenceView:
    where = ev.utterance if ev.utterance is not None else ev.cited_utterance
    utterance = utterances.get(where)
    return EvidenceView(
        utterance=ev.utterance,
        cited_utterance=ev.cited_utterance,
        time=utterance.time if utterance else "",
        role=utterance.role if utterance else "",
        quote=ev.quote,
        status=ev.status,
        status_label=EVIDENCE_LABELS.get(ev.status, ev.status),
        explanation=EVIDENCE_EXPLANATIONS.get(ev.status, ""),
        reason=humanize(ev.reason),
        grounded=ev.status != EvidenceStatus.ungrounded.value,
    )


def _short(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return f"“{value}”" if isinstance(value, str) else str(value)


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    before, after = before or {}, after or {}
    changes = []
    for name in SNAPSHOT_FIELDS:
        if name in after and before.get(name) != after.get(name):
            if name in before:
                changes.append(f"{name}: {_short(before.get(name))} → {_short(after.get(name))}")
            else:
                changes.append(f"{name}: {_short(after.get(name))}")
    return changes


def event_view(review_event: ReviewEvent, *, masked: bool = True, masks: CallMasks | None = None) -> EventView:
    """One audit event; `masked`: its texts masked (as the call's transcript is, given its `masks`)."""
    before, after = review_event.before, review_event.after
    if masked:
        before, after = mask_snapshot(before, masks), mask_snapshot(after, masks)
    else:
        before, after = shown_snapshot(before), shown_snapshot(after)
    return EventView(
        when=as_utc(review_event.created_at).strftime("%Y-%m-%d %H:%M:%S UTC"),
        actor=review_event.actor_name,
        label=EVENT_LABELS.get(review_event.action, humanize(review_event.action)),
        claim_id=review_event.claim_id,
        changes=describe_changes(before, after),
    )


def build_call_page(session: Session, principal: Principal, call_id: str, *, unmask: bool = False) -> CallPage:
    """Everything the call page shows. Utterances are read as plain rows, not ORM objects or API
    models: a one-hour call has hundreds, and per-object overhead would dominate the page's cost.

    Card numbers, SSNs and accounts are masked unless `unmask` (the caller has checked and audited
    the view_pii permission). Masking keeps lengths, so evidence offsets highlight the masked text."""
    call = visible_call(session, principal, call_id)
    tenant = session.get(Tenant, call.tenant_id)
    run, claim_rows = current_claims(session, call.id)
    shown_run = run or latest_run(session, call.id)
    claims = [claim_out(claim) for claim in claim_rows]
    rows: list[tuple[int, str, str, float | None, str]] = [
        (index, speaker, role, start, text)
        for index, speaker, role, start, text in session.execute(
            select(UtteranceRow.index, UtteranceRow.speaker, UtteranceRow.role, UtteranceRow.start_s, UtteranceRow.text)
            .where(UtteranceRow.call_id == call.id)
            .order_by(UtteranceRow.index)
        ).all()
    ]
    masks: CallMasks | None = None
    warnings = list(call.ingest_warnings or [])
    if not unmask:
        originals = {index: text for index, _, _, _, text in rows}
        masks = CallMasks(originals)
        masked = masks.utterances
        claims = [
            mask_claim(claim, originals, masked, stored_masks(row))
            for claim, row in zip(claims, claim_rows, strict=True)
        ]
        rows = [(index, mask_text(speaker), role, start, masked[index]) for index, speaker, role, start, _ in rows]
        warnings = [mask_text(warning) for warning in warnings]
    spans = _evidence_spans(claims, {index: len(text) for index, _, _, _, text in rows})
    utterances = [
        # The speaker label only when it says more than the role ("AGENT Agent" said it twice).
        UtteranceView(index, "" if speaker.strip().lower() == role.lower() else speaker, role, time_label(start),
                      segment_text(text, spans.get(index, [])))
        for index, speaker, role, start, text in rows
    ]
    by_index = {u.index: u for u in utterances}
    pending = call.flagged_items  # unverified items of the current run nobody has decided on yet
    sections = []
    for kind, title in SECTIONS:
        items = [
            ClaimView(
                claim=claim,
                grounded=claim.status == ClaimStatus.grounded.value,
                reason=humanize(claim.reason),
                evidence=[_evidence_view(ev, by_index) for ev in claim.evidence],
            )
            for claim in claims
            if claim.kind == kind.value
        ]
        sections.append(Section(kind.value, title, items))
    return CallPage(
        call=call_summary(call, tenant.slug if tenant else "?"),
        run=run_out(shown_run) if shown_run else None,
        warnings=warnings,
        utterances=utterances,
        sections=sections,
        events=[event_view(e, masked=not unmask, masks=masks) for e in call_events(session, principal, call.id)],
        pending_unverified=pending,
        decidable=CallState(call.state) in DECIDABLE_CALL_STATES,
        reopenable=CallState(call.state) in REVIEWED_STATES,
        claim_count=len(claims),
        # An agent's note is stored masked; one written before notes were is masked here.
        note=(call.case_note if masks is None else masks.text(call.case_note)) if call.case_note
        else case_note([c for c in claims if stated_as_fact(c.status, c.review_status)]),
        note_edited=call.case_note is not None,
        approvable=CallState(call.state) in (CallState.ready_for_review, CallState.needs_attention)
        and not pending,
        batch_note=batch_note(session, call),
    )


def batch_note(session: Session, call: Call) -> str | None:
    """Where a batch-mode call waits: in a provider batch (and its status), or for the next batch."""
    if call.llm_batch_id is not None:
        status = session.scalar(select(LlmBatch.status).where(LlmBatch.id == call.llm_batch_id))
        return f"waiting in batch {call.llm_batch_id} ({humanize(status or 'unknown')})"
    if call.llm_mode is LlmMode.batch and call.state is CallState.queued:
        return "waiting for the next batch"
    return None
