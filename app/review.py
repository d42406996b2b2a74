"""Review decisions: approve, edit or reject an item, add a missed item, decide or reopen a call, delete a call.

Every decision appends one `ReviewEvent` (who, when, what, before, after) in the same transaction as
the change it records, so the audit trail and the data cannot disagree. Events are never updated or
deleted: the ORM guards below refuse it in code, and migration 0002 adds database triggers that refuse
it for every client.

Every function takes the acting `Principal` and resolves records through `visible_calls_clause`: a call
the user cannot see raises `NotFoundError` (the API answers 404), an action their role does not allow
on a call they can see raises `AccessDeniedError` (403), and a decision the call's state does not allow
raises `ReviewConflictError` (409). Functions flush; the entry point commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session, selectinload

from app.db.session import scalar_for_update
from app.db.types import as_utc
from app.errors import NotFoundError, PostcallError
from app.handoff.outbox import EventType, record_event
from app.models import Call, CallState, Claim, Evidence, ReviewEvent, ReviewStatus
from app.models.tables import REVIEWED_STATES, utcnow
from app.pipeline.analyst_fields import analyst_fields, call_clock, due_fields
from app.pipeline.calls import load_transcript, lock_call, set_state
from app.pipeline.note import derived_case_note
from app.pipeline.persist import evidence_values, latest_succeeded_run, state_for_run
from app.pipeline.retention import scrub_review_events
from app.privacy.mask import MASK_CHAR, CallMasks
from app.privacy.reads import unmask_selection
from app.schemas.extraction import MAX_DUE_CHARS, Owner
from app.schemas.grounding import ClaimKind, ClaimStatus, VerifiedEvidence
from app.schemas.transcript import Transcript
from app.text.storable import unstorable_problem
from app.users import Principal, visible_calls_clause

MAX_CLAIM_TEXT_CHARS = 2_000
MAX_SELECTION_PIECES = 20
# Calls whose extraction is finished and not yet decided: only these can be approved or rejected as a whole. A
# decided call is reopened first (supervisors, admins): a reviewer on a page from before another's decision
# flipped it without a word, and an agent could undo one.
DECIDABLE_CALL_STATES = frozenset({CallState.ready_for_review, CallState.needs_attention})
# Kinds a reviewer may add from a transcript selection; reason and outcome exist once per call.
ADDABLE_KINDS = frozenset({ClaimKind.action_item, ClaimKind.summary})


class ReviewConflictError(PostcallError):
    """The decision does not fit the record's current state (superseded run, call still processing...)."""


class ReviewInputError(PostcallError):
    """The decision's input is invalid: empty text, unknown owner, a selection not in the transcript."""


class ClaimAction(StrEnum):
    approve = "approve"
    edit = "edit"
    reject = "reject"


class CallDecision(StrEnum):
    approve = "approve"
    reject = "reject"
    # Back to review: the items of an approved or rejected call are locked until a supervisor reopens it.
    reopen = "reopen"


class EventAction(StrEnum):
    claim_approved = "claim_approved"
    claim_edited = "claim_edited"
    claim_rejected = "claim_rejected"
    claim_added = "claim_added"
    call_approved = "call_approved"
    call_rejected = "call_rejected"
    call_reopened = "call_reopened"
    call_deleted = "call_deleted"
    note_edited = "note_edited"
    # A user with view_pii asked to see a call's card numbers, SSNs and accounts unmasked.
    pii_unmasked = "pii_unmasked"


CLAIM_EVENT = {
    ClaimAction.approve: (EventAction.claim_approved, ReviewStatus.approved),
    ClaimAction.edit: (EventAction.claim_edited, ReviewStatus.edited),
    ClaimAction.reject: (EventAction.claim_rejected, ReviewStatus.rejected),
}
CALL_EVENT = {
    CallDecision.approve: (EventAction.call_approved, CallState.approved),
    CallDecision.reject: (EventAction.call_rejected, CallState.rejected),
}
# The hand-off event each call decision writes to the outbox.
HANDOFF_EVENT = {
    CallDecision.approve: EventType.approved,
    CallDecision.reject: EventType.rejected,
    CallDecision.reopen: EventType.reopened,
}


def append_event(
    session: Session,
    principal: Principal | None,
    *,
    tenant_id: int,
    call_id: str,
    action: EventAction,
    claim_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> ReviewEvent:
    review_event = ReviewEvent(
        tenant_id=tenant_id,
        call_id=call_id,
        claim_id=claim_id,
        actor_user_id=principal.user_id if principal else None,
        actor_name=principal.name if principal else "system",
        action=action.value,
        before=before,
        after=after,
        created_at=utcnow(),
    )
    session.add(review_event)
    return review_event


# ---------------------------------------------------------------------------------------- lookups


def visible_call(session: Session, principal: Principal, call_id: str, *, for_update: bool = False) -> Call:
    """The call, if this user may see it. Absent and invisible are the same answer.

    `for_update` holds the row lock (on SQLite, the write lock) so a decision and a worker's claim, or two
    decisions, cannot interleave."""
    query = select(Call).where(Call.id == call_id, visible_calls_clause(principal))
    if for_update:  # read as the lock finds it, even when this session read the call before (its changes flushed)
        session.flush()
        query = query.execution_options(populate_existing=True)
    call = scalar_for_update(session, query) if for_update else session.scalar(query)
    if call is None:
        raise NotFoundError(f"call {call_id} not found")
    return call


def visible_claim(session: Session, principal: Principal, claim_id: int) -> tuple[Claim, Call]:
    row = session.execute(
        select(Claim, Call)
        .join(Call, Call.id == Claim.call_id)
        .where(Claim.id == claim_id, visible_calls_clause(principal))
        .options(selectinload(Claim.evidence))
    ).first()
    if row is None:
        raise NotFoundError(f"claim {claim_id} not found")
    return row[0], row[1]


def _claim_snapshot(claim: Claim) -> dict[str, Any]:
    return {"text": claim.text, "owner": claim.owner, "due": claim.due, "review_status": claim.review_status.value}


def _require_open(call: Call) -> None:
    # An approved record must not change underneath its approval (nor a rejected one quietly).
    if call.state in REVIEWED_STATES:
        raise ReviewConflictError(
            f"call {call.id} is {call.state.value}; its items can no longer change unless a supervisor reopens it"
        )


def _require_current(session: Session, claim: Claim) -> None:
    run = latest_succeeded_run(session, claim.call_id)
    if run is None or claim.run_id != run.id:
        raise ReviewConflictError(
            f"claim {claim.id} belongs to a superseded extraction; reload the call to review its current items"
        )


def _clean_text(text: str | None, what: str, limit: int) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise ReviewInputError(f"{what} is empty")
    problem = unstorable_problem(cleaned)
    if problem:
        raise ReviewInputError(f"{what} {problem}")
    if len(cleaned) > limit:
        raise ReviewInputError(f"{what} is longer than {limit} characters")
    return cleaned


def _clean_owner(owner: str | None) -> str:
    try:
        return Owner(owner or "").value
    except ValueError:
        allowed = ", ".join(o.value for o in Owner)
        raise ReviewInputError(f"owner must be one of {allowed}, not {owner!r}") from None


def _clean_due(due: str | None) -> str | None:
    cleaned = (due or "").strip()
    problem = unstorable_problem(cleaned)
    if problem:
        raise ReviewInputError(f"due {problem}")
    if len(cleaned) > MAX_DUE_CHARS:
        raise ReviewInputError(f"due is longer than {MAX_DUE_CHARS} characters")
    return cleaned or None


# -------------------------------------------------------------------------------- claim decisions


@dataclass(frozen=True)
class ClaimChanges:
    """An edit. `None` leaves a field as it is; an empty `due` clears it."""

    text: str | None = None
    owner: str | None = None
    due: str | None = None


def review_claim(
    session: Session,
    principal: Principal,
    claim_id: int,
    action: ClaimAction,
    changes: ClaimChanges | None = None,
    *,
    expected: ReviewStatus | None = None,
) -> Claim:
    """Approve, edit or reject one item of the call's current extraction. `expected`: the item's review status
    as the reviewer saw it; when another decision changed it meanwhile (a colleague rejected it while this
    page was open), ReviewConflictError and nothing changes. Approving an approved item, or rejecting a
    rejected one, changes nothing and records nothing."""
    claim, call = visible_claim(session, principal, claim_id)
    principal.require(principal.can_review, "review items")
    # The call's row lock: decisions on its items take turns with each other and with the call's own
    # decision, and both are read again as the last of them left them.
    call = visible_call(session, principal, call.id, for_update=True)
    session.refresh(claim)
    _require_open(call)
    _require_current(session, claim)
    if action is not ClaimAction.edit and claim.review_status is CLAIM_EVENT[action][1]:
        # The same decision again (a repeated key press, a retried request, whatever status it says it saw):
        # already so, nothing new to record.
        return claim
    if expected is not None and claim.review_status is not expected:
        by = _decided_by(session, ReviewEvent.claim_id == claim.id, ReviewEvent.call_id == claim.call_id)
        raise ReviewConflictError(
            f"item {claim.id} was {claim.review_status.value} meanwhile{by}: nothing changed; reload to see it")
    before = _claim_snapshot(claim)
    if action is ClaimAction.edit:
        changes = changes or ClaimChanges()
        if changes.text is None and changes.owner is None and changes.due is None:
            raise ReviewInputError("an edit changes the text, the owner or the due date")
        masks = _call_masks(session, call)
        typed_unseen = False
        # The masked text sent back as it was shown (an edit of the owner or due only) keeps the stored text.
        if changes.text is not None and changes.text.strip() != (claim.text_masked or "").strip():
            claim.text = _clean_text(changes.text, "text", MAX_CLAIM_TEXT_CHARS)
            claim.text_masked = masks.written_by(principal, claim.text)
            # Digits typed where the editor sees the call masked: what they typed is stored (view_pii readers
            # see it), but they cannot know it is the call's; checked on the masked text, "4999 …" over the
            # real "4000 …" was stored as verified. Never verified, right or wrong, so no guess is told apart.
            typed_unseen = not principal.can_view_pii and claim.text_masked != claim.text
        if changes.owner is not None:
            if claim.kind != ClaimKind.action_item.value:
                raise ReviewInputError("only action items have an owner")
            claim.owner = _clean_owner(changes.owner)
        if changes.due is not None:
            if claim.kind != ClaimKind.action_item.value:
                raise ReviewInputError("only action items have a due date")
            due = _clean_due(changes.due)
            # Resolved from the phrase as typed, stored masked as the pipeline stores a model's phrase:
            # analysts' views and the record show it as it is.
            claim.due = masks.written_by(principal, due) if due else None
            for column, value in due_fields(due, call_clock(session, call.id)).items():
                setattr(claim, column, value)
        verdict_before = (claim.grounding_status, claim.grounding_reason)
        _check_again(principal, masks, claim)
        if typed_unseen and claim.grounding_status == ClaimStatus.grounded.value:
            claim.grounding_status, claim.grounding_reason = ClaimStatus.ungrounded.value, "unsupported_number"
        elif not principal.can_view_pii and claim.text_masked != claim.text \
                and verdict_before[0] == ClaimStatus.ungrounded.value:
            # Checked on the masked text, the digits that made the item unverified are hidden: an edit of the
            # owner or the due date alone turned invented card digits "verified". Such a verdict only stands.
            claim.grounding_status, claim.grounding_reason = verdict_before
    event_action, status = CLAIM_EVENT[action]
    claim.review_status = status
    append_event(
        session,
        principal,
        tenant_id=call.tenant_id,
        call_id=call.id,
        claim_id=claim.id,
        action=event_action,
        before=before,
        after=_claim_snapshot(claim),
    )
    session.flush()
    call.flagged_items = pending_unverified(session, call.id)
    return claim


class _TranscriptMasks(CallMasks):
    """A call's masks with its transcript, as `load_transcript` returns it."""

    def __init__(self, transcript: Transcript) -> None:
        super().__init__({u.index: u.text for u in transcript.utterances})
        self.transcript = transcript

    def written_by(self, principal: Principal, text: str) -> str:
        """`text`, written by `principal`, masked as stored: by the shape of the call's hidden values when
        they may not see them, never by equality (that told them whether a guess was right: `CallMasks.text`)."""
        return self.text(text, by_shape=not principal.can_view_pii)

    def as_seen_by(self, principal: Principal) -> Transcript:
        """The transcript as `principal` sees it: masked unless they may view personal data. What reviewers
        write is checked against that: against the stored text, whether an item's numbers were found would
        tell the masked digits, one guess at a time."""
        if principal.can_view_pii:
            return self.transcript
        return self.transcript.model_copy(update={"utterances": [
            u.model_copy(update={"text": self.utterances[u.index]}) for u in self.transcript.utterances]})


def _call_masks(session: Session, call: Call) -> _TranscriptMasks:
    return _TranscriptMasks(load_transcript(session, call))


def _check_again(principal: Principal, masks: _TranscriptMasks, claim: Claim) -> None:
    """Verify an edited item again on the evidence it cites (each span as the editor sees it): an edit that
    writes "$5000" over evidence saying "$50" is stored unverified, as the same item added would be, not
    left with the verdict of the words it replaced."""
    from app.grounding import verify_extraction
    from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Statement

    seen = masks.as_seen_by(principal)
    texts = {u.index: u.text for u in seen.utterances}
    evidence = []
    for ev in claim.evidence:
        index, start, end = ev.utterance_index, ev.char_start, ev.char_end
        if index is not None and index in texts and start is not None and end is not None:
            reference = EvidenceRef(utterance=index, quote=texts[index][start:end])
        else:
            reference = EvidenceRef(utterance=ev.cited_utterance, quote=ev.quote)
        if reference.quote.strip():
            evidence.append(reference)
    # The text as the editor sees it too: a masked text on masked evidence, as an added item is checked.
    text = claim.text if principal.can_view_pii else (claim.text_masked or masks.text(claim.text))
    if claim.kind == ClaimKind.action_item.value and claim.owner is not None:
        statement: Statement = ActionItem(text=text, owner=Owner(claim.owner), due=claim.due, evidence=evidence)
    else:
        statement = Statement(text=text, evidence=evidence)
    extraction = Extraction(action_items=[statement]) if isinstance(statement, ActionItem) else Extraction(
        summary=[statement])
    (verified,) = verify_extraction(seen, extraction).claims
    claim.grounding_status = verified.status.value
    claim.grounding_reason = verified.reason if verified.status is ClaimStatus.ungrounded else None


@dataclass(frozen=True)
class SelectedQuote:
    """One piece of a transcript selection: the text selected inside one utterance."""

    utterance: int
    quote: str


@dataclass(frozen=True)
class NewItem:
    kind: ClaimKind
    text: str
    owner: str | None
    due: str | None
    selection: Sequence[SelectedQuote]


@dataclass(frozen=True)
class AddedItem:
    claim: Claim
    # The same item was added before (a retried request, a double submit): that one, nothing new stored.
    repeated: bool = False


def add_reviewer_claim(session: Session, principal: Principal, call_id: str, item: NewItem) -> AddedItem:
    """Add an item the extraction missed, with the reviewer's transcript selection as its evidence.

    The selection goes through the same verifier as model output, so the stored spans obey the same
    invariant (offsets slice the utterance to the quote) and a claim whose own critical tokens (amounts,
    dates, negations) are not in the selection is stored as unverified, like any other. A selection that
    is not in the transcript at all is refused rather than stored.

    The same item again (kind, text, owner, due and evidence spans of a reviewer's item of the current
    extraction) is that item, `repeated`: a retried request added it once more, and the record then carried
    four identical tasks for one. Adds to one call take turns (its row lock), so two retries racing do too.
    """
    from app.grounding import verify_extraction
    from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Statement

    visible_call(session, principal, call_id)  # another tenant's call is not found, before any permission says so
    principal.require(principal.can_review, "add items")  # before the lock: a refused add takes none
    call = visible_call(session, principal, call_id, for_update=True)
    _require_open(call)
    if item.kind not in ADDABLE_KINDS:
        raise ReviewInputError(f"a reviewer can add {' or '.join(sorted(ADDABLE_KINDS))} items, not {item.kind}")
    run = latest_succeeded_run(session, call.id)
    if run is None:
        raise ReviewConflictError(f"call {call.id} has no finished extraction to add an item to")
    text = _clean_text(item.text, "text", MAX_CLAIM_TEXT_CHARS)
    is_action = item.kind is ClaimKind.action_item
    owner = _clean_owner(item.owner) if is_action else None
    due = _clean_due(item.due) if is_action else None
    pieces = [piece for piece in item.selection if piece.quote.strip()]
    if not pieces:
        raise ReviewInputError("select the transcript text that supports the item")
    if len(pieces) > MAX_SELECTION_PIECES:
        raise ReviewInputError(f"a selection may span at most {MAX_SELECTION_PIECES} utterances")
    masks = _call_masks(session, call)
    transcript = masks.transcript
    last_index = len(transcript.utterances) - 1
    for piece in pieces:
        if not 0 <= piece.utterance <= last_index:
            raise ReviewInputError(f"utterance {piece.utterance} does not exist (the call has 0..{last_index})")
    evidence = [EvidenceRef(utterance=piece.utterance, quote=piece.quote) for piece in pieces]
    texts = {u.index: u.text for u in transcript.utterances}
    # The call masked once: for a selection made on the masked page, for the check below, for the quotes.
    if principal.can_view_pii and any(MASK_CHAR in ref.quote for ref in evidence):
        # Selected on the masked page: the stored span.
        evidence = [EvidenceRef(utterance=ref.utterance, quote=unmask_selection(
            ref.quote, texts[ref.utterance], masks.utterances[ref.utterance])) for ref in evidence]
    checked = masks.as_seen_by(principal)
    if owner is not None:  # set exactly for action items
        extraction = Extraction(action_items=[ActionItem(text=text, owner=Owner(owner), due=due, evidence=evidence)])
    else:
        extraction = Extraction(summary=[Statement(text=text, evidence=evidence)])
    (verified,) = verify_extraction(checked, extraction).claims
    missing = [ev for ev in verified.evidence if not ev.grounded]
    if missing or not verified.evidence:
        where = ", ".join(str(ev.cited_utterance) for ev in missing)
        raise ReviewInputError(f"the selected text was not found in the transcript (utterance {where})")
    if checked is not transcript:  # masking keeps lengths: the same offsets slice the stored text
        verified = verified.model_copy(update={"evidence": [_stored_span(ev, texts) for ev in verified.evidence]})
    stored_due = masks.written_by(principal, due) if due else None
    # Compared as the reviewer reads items: without view_pii by the masked text, so that whether a twin exists
    # never tells digits they typed from another reviewer's unmasked ones.
    seen_text = text if principal.can_view_pii else masks.written_by(principal, text)
    twin = _same_reviewer_item(session, run.id, item.kind, seen_text, owner, stored_due,
                               [(ev.utterance, ev.char_start, ev.char_end) for ev in verified.evidence],
                               masked=not principal.can_view_pii)
    if twin is not None:
        return AddedItem(twin, repeated=True)
    position = session.scalar(select(func.coalesce(func.max(Claim.position), -1)).where(Claim.run_id == run.id))
    claim = Claim(
        run_id=run.id,
        call_id=call.id,
        tenant_id=call.tenant_id,
        position=int(position if position is not None else -1) + 1,
        kind=item.kind.value,
        text=text,
        text_masked=masks.written_by(principal, text),
        owner=owner,
        # Stored masked; its date was resolved from it as typed.
        due=stored_due,
        grounding_status=verified.status.value,
        grounding_reason=verified.reason if verified.status is ClaimStatus.ungrounded else None,
        **analyst_fields(verified, call_clock(session, call.id), texts),
        # The reviewer wrote it and chose its evidence: adding it is their decision on it.
        review_status=ReviewStatus.approved,
        origin="reviewer",
        created_at=utcnow(),
    )
    claim.evidence = [
        Evidence(**evidence_values(ev, position), tenant_id=call.tenant_id,
                 quote_masked=masks.quote(ev.quote, ev.utterance, ev.char_start, ev.char_end))
        for position, ev in enumerate(verified.evidence)
    ]
    session.add(claim)
    session.flush()
    append_event(
        session,
        principal,
        tenant_id=call.tenant_id,
        call_id=call.id,
        claim_id=claim.id,
        action=EventAction.claim_added,
        before=None,
        after={
            **_claim_snapshot(claim),
            "kind": claim.kind,
            "grounding_status": claim.grounding_status,
            "evidence": [
                {"utterance": ev.utterance_index, "char_start": ev.char_start, "char_end": ev.char_end}
                for ev in claim.evidence
            ],
        },
    )
    session.flush()
    return AddedItem(claim)


def _same_reviewer_item(session: Session, run_id: int, kind: ClaimKind, text: str, owner: str | None,
                        due: str | None, spans: list[tuple[int | None, int | None, int | None]], *,
                        masked: bool) -> Claim | None:
    """A reviewer's item of run `run_id` with this kind, text (its `masked` copy), owner, due and evidence
    spans, if any, not rejected (adding a rejected item again is a new decision)."""
    column = Claim.text_masked if masked else Claim.text
    candidates = session.scalars(
        select(Claim).where(Claim.run_id == run_id, Claim.origin == "reviewer", Claim.kind == kind.value,
                            column == text, Claim.review_status != ReviewStatus.rejected)
        .options(selectinload(Claim.evidence))
    ).all()
    for claim in candidates:
        if (claim.owner, claim.due) == (owner, due) and sorted(
                (ev.position, ev.utterance_index, ev.char_start, ev.char_end) for ev in claim.evidence) == [
                (position, *span) for position, span in enumerate(spans)]:
            return claim
    return None


def _stored_span(ev: VerifiedEvidence, texts: Mapping[int, str]) -> VerifiedEvidence:
    """Evidence verified on the masked transcript, quoting the stored text where its quote holds masked
    characters (the span the same offsets slice)."""
    if MASK_CHAR not in ev.quote or ev.utterance is None or ev.char_start is None or ev.char_end is None:
        return ev
    return ev.model_copy(update={"quote": texts[ev.utterance][ev.char_start : ev.char_end]})


# --------------------------------------------------------------------------------- call decisions


def pending_unverified(session: Session, call_id: str) -> int:
    """Unverified items of the current extraction that nobody has decided on yet, counted: an edit the
    transcript does not support counts too (`undecided_unverified`). The count is kept on the call
    (`flagged_items`: at persist and here, on each item decision); readers use that."""
    run = latest_succeeded_run(session, call_id)
    if run is None:
        return 0
    count = session.scalar(select(func.count()).select_from(Claim).where(*undecided_unverified(run.id)))
    return int(count or 0)


def undecided_unverified(run_id: int | ColumnElement[int | None]) -> tuple[ColumnElement[bool], ...]:
    """Conditions on `Claim`: an unverified item of run `run_id` that nobody has decided on yet. An item edited
    into words its evidence does not support is one: the edit is checked again (`_check_again`), and approving
    it, as written, is a decision of its own. Counted as decided, it let bulk approval ("every item verified")
    send "$900 credit", typed over a $90 one, downstream as part of an approved record."""
    return (
        Claim.run_id == run_id,
        Claim.grounding_status == ClaimStatus.ungrounded.value,
        Claim.review_status.in_((ReviewStatus.pending, ReviewStatus.edited)),
    )


def decide_call(session: Session, principal: Principal, call_id: str, decision: CallDecision) -> Call:
    """Approve, reject or reopen a whole call.

    Approving needs every unverified item decided first, so an unchecked statement never enters an
    approved record as fact. Reopening (supervisors, admins) sends an approved or rejected call back to
    review, in the state its extraction implies (every item grounded: ready_for_review; otherwise
    needs_attention); item decisions made so far are kept. Approving an approved call, or rejecting a
    rejected one, changes nothing and writes no event.
    """
    call = visible_call(session, principal, call_id, for_update=True)
    if decision is CallDecision.reopen:
        principal.require(principal.can_reopen_calls, "reopen decided calls")
        if call.state not in REVIEWED_STATES:
            raise ReviewConflictError(
                f"call {call.id} is {call.state.value}; only an approved or rejected call can be reopened"
            )
        state = _reopened_state(session, call)
        event_action = EventAction.call_reopened
    else:
        principal.require(principal.can_review, "approve or reject calls")
        event_action, state = CALL_EVENT[decision]
        if call.state is state:
            # The same decision again (a retried request, a double click, a second reviewer agreeing): already
            # so, nothing new to audit or to hand off. Another event would reach every receiver as a new one.
            return call
        if call.state in REVIEWED_STATES:
            by = _decided_by(session, ReviewEvent.call_id == call.id, ReviewEvent.tenant_id == call.tenant_id,
                             ReviewEvent.action.in_(CALL_DECISION_ACTIONS))
            raise ReviewConflictError(
                f"call {call.id} was {call.state.value} meanwhile{by}: nothing changed; a supervisor reopens it to "
                "decide again")
        if call.state not in DECIDABLE_CALL_STATES:
            raise ReviewConflictError(f"call {call.id} is {call.state.value}; only a processed call can be decided")
        if decision is CallDecision.approve:
            pending = call.flagged_items
            if pending:
                raise ReviewConflictError(
                    f"{pending} unverified item(s) still pending: approve, edit or reject them before approving "
                    "the call"
                )
    _move_call(session, principal, call, state, event_action, HANDOFF_EVENT[decision], before=call.state)
    return call


# The events of a whole call's standing decision.
CALL_DECISION_ACTIONS = (EventAction.call_approved.value, EventAction.call_rejected.value)


def _decided_by(session: Session, *where: ColumnElement[bool]) -> str:
    """" by NAME at TIME": who made the last decision of the audit trail's events `where` selects ("" if none)."""
    event = session.execute(select(ReviewEvent.actor_name, ReviewEvent.created_at).where(*where)
                            .order_by(ReviewEvent.id.desc()).limit(1)).first()
    return "" if event is None else f" by {event.actor_name} at {as_utc(event.created_at):%Y-%m-%d %H:%M} UTC"


def _move_call(session: Session, principal: Principal | None, call: Call, state: CallState, action: EventAction,
               handoff: EventType, *, before: CallState, why: str | None = None) -> None:
    """Give a locked call its new state, audited (`principal`; None: `system`) and handed off in the same
    transaction: every decision on a whole call, a supervisor's or the pipeline's."""
    set_state(call, state)
    after = {"state": state.value, **({"why": why} if why else {})}
    append_event(session, principal, tenant_id=call.tenant_id, call_id=call.id, action=action,
                 before={"state": before.value}, after=after)
    session.flush()
    record_event(session, call, handoff, actor=principal.name if principal else "system")


def _reopened_state(session: Session, call: Call) -> CallState:
    """The state a reopened call goes back to: the one its extraction implies."""
    run = latest_succeeded_run(session, call.id)
    return state_for_run(session, run.id) if run is not None else CallState.needs_attention


def reopen_for_new_result(session: Session, call_id: str, decided: CallState) -> None:
    """A decided call (`decided`: its state before this extraction) whose new extraction is being stored
    (`postcall reprocess`) goes back to review in the same transaction, before the new result's
    `call.processed`: audited (by `system`) and handed off as `call.reopened`, as a supervisor's reopen is.
    Without it the new extraction silently undid the decision for receivers that follow decisions
    (`call.approved`, `call.rejected`, `call.reopened`). A re-extraction that fails or is interrupted stores
    nothing, so the decision stands. The caller holds the call's row lock."""
    call = lock_call(session, call_id)
    if call is None:
        raise NotFoundError(f"call {call_id} not found")
    _move_call(session, None, call, _reopened_state(session, call), EventAction.call_reopened, EventType.reopened,
               before=decided, why="extracted again (postcall reprocess)")


def delete_call(session: Session, principal: Principal, call_id: str) -> None:
    """Hard-delete a call: transcript, runs, items and evidence go (database cascades). Its review events
    stay, their text snapshots cleared, and one more records the deletion without any transcript content."""
    call = visible_call(session, principal, call_id, for_update=True)
    principal.require(principal.can_delete_calls, "delete calls")
    facts = {
        "external_id": call.external_id,
        "agent_id": call.agent_id,
        "team": call.team,
        "state": call.state.value,
    }
    tenant_id = call.tenant_id
    record_event(session, call, EventType.deleted, actor=principal.name)
    session.expunge(call)
    # Content-free, as a retention purge leaves it: the snapshots hold claim texts, masked when read with the
    # call's transcript (a date of birth said across turns), which goes with the call.
    session.connection().execute(scrub_review_events([call_id]))  # Core: the ORM guard refuses any UPDATE
    session.execute(delete(Call).where(Call.id == call_id), execution_options={"synchronize_session": False})
    append_event(session, principal, tenant_id=tenant_id, call_id=call_id, action=EventAction.call_deleted,
                 before=facts, after=None)
    session.flush()


def record_unmasking(session: Session, principal: Principal, call: Call, where: str) -> None:
    """Allow an unmasked view of `call` only with view_pii, and audit it (no content in the event)."""
    principal.require(principal.can_view_pii, "see personal data unmasked (needs the view_pii permission)")
    append_event(session, principal, tenant_id=call.tenant_id, call_id=call.id, action=EventAction.pii_unmasked,
                 after={"where": where})
    session.flush()


def call_events(session: Session, principal: Principal, call_id: str) -> list[ReviewEvent]:
    """A call's audit trail, oldest first. Admins can still read the trail a deleted call left behind."""
    call = session.scalar(select(Call.id).where(Call.id == call_id, visible_calls_clause(principal)))
    if call is None:
        exists_elsewhere = session.scalar(select(Call.id).where(Call.id == call_id)) is not None
        if not principal.can_delete_calls or exists_elsewhere:
            raise NotFoundError(f"call {call_id} not found")
    # A visible call is always in the user's tenant, and so is the trail of one their tenant deleted.
    events = list(
        session.scalars(
            select(ReviewEvent)
            .where(ReviewEvent.call_id == call_id, ReviewEvent.tenant_id == principal.tenant_id)
            .order_by(ReviewEvent.id)
        ).all()
    )
    if call is None and not events:
        raise NotFoundError(f"call {call_id} not found")
    return events


# ------------------------------------------------------------------------------- case note, bulk


MAX_NOTE_CHARS = 4_000


def edit_case_note(session: Session, principal: Principal, call_id: str, text: str | None) -> Call:
    """Replace the call's derived case note with the reviewer's wording; empty text goes back to the
    derived note. Audited like every decision; locked once the call is approved or rejected.

    The note is stored masked (card numbers, SSNs and accounts with the last four kept, dates of birth
    and CVVs whole: `mask_text`): it is written for the CRM the hand-off record files it in, and every
    reviewer reads it, so what only `view_pii` may unmask never enters it. Resubmitting the masked note
    as shown changes nothing."""
    call = visible_call(session, principal, call_id, for_update=True)
    principal.require(principal.can_review, "edit the case note")
    _require_open(call)
    cleaned = (text or "").strip() or None
    if cleaned is not None and len(cleaned) > MAX_NOTE_CHARS:
        raise ReviewInputError(f"the note is longer than {MAX_NOTE_CHARS} characters")
    masks = _call_masks(session, call)
    if cleaned is not None:
        cleaned = masks.written_by(principal, cleaned)
    if call.case_note is not None and cleaned == masks.written_by(principal, call.case_note):
        cleaned = call.case_note  # a note stored before notes were masked, resubmitted as shown: unchanged
    if cleaned == call.case_note:
        return call
    if call.case_note is None and cleaned == masks.written_by(principal, derived_case_note(session, call)):
        # The derived note saved as shown: kept derived, so it follows the items (a rejected item leaves it)
        # rather than frozen as the reviewer's words with an "edited" badge.
        return call
    before = {"case_note": call.case_note}
    call.case_note = cleaned
    append_event(session, principal, tenant_id=call.tenant_id, call_id=call.id, action=EventAction.note_edited,
                 before=before, after={"case_note": cleaned})
    session.flush()
    return call


@dataclass(frozen=True)
class BulkApproval:
    approved: list[str]
    refused: dict[str, str]  # call id -> why it was left alone


def approve_verified_calls(session: Session, principal: Principal, call_ids: Sequence[str]) -> BulkApproval:
    """Approve many calls whose every item is verified (state `ready_for_review`), each through
    `decide_call`, so each gets its own audit event (and whatever else approving a call does).

    Supervisors and admins only. A call that is not visible, not ready for review or has an undecided
    unverified item is left alone and reported; the others are approved in the caller's transaction."""
    principal.require(principal.can_reopen_calls, "bulk-approve calls")
    approved: list[str] = []
    refused: dict[str, str] = {}
    # One order for every bulk approval: two supervisors approving the same calls in opposite orders deadlocked.
    for call_id in sorted(set(call_ids)):
        try:
            # Locked before it is read: a call a colleague approved meanwhile is reported so, not as approved here.
            call = visible_call(session, principal, call_id, for_update=True)
        except NotFoundError:
            refused[call_id] = "not found"
            continue
        if call.state is not CallState.ready_for_review:
            refused[call_id] = f"{call.state.value}: only calls whose items are all verified are approved in bulk"
        elif call.flagged_items:
            refused[call_id] = "unverified items pending"
        else:
            decide_call(session, principal, call_id, CallDecision.approve)
            approved.append(call_id)
    return BulkApproval(approved, refused)
