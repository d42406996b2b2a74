"""The case note: the record as the 2-4 sentences a CRM case holds.

`case_note(items)` derives it from the call's current items that may be stated as fact
(`stated_as_fact`: verified, or checked by a reviewer; never rejected): the summary first (it is the
narrative), then the reason, the outcome and the next steps, each only when the sentences already
chosen do not cover it (the restatement rule of `app.pipeline.dedup`). An agent may rewrite the note;
`calls.case_note` then holds their text and `call_case_note` returns it instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.orm import Session

from app.models import Call, ReviewStatus
from app.pipeline.dedup import COVERED_SHARE, content_words, critical_values

MAX_NOTE_SENTENCES = 4
MIN_NOTE_SENTENCES = 2
# Next steps named in the note's last sentence; the rest are in the action items.
MAX_NOTE_STEPS = 2
MAX_NOTE_CHARS = 4_000


class NoteSource(Protocol):
    """What the note needs of an item: the `claims` row, the API's ClaimOut and the like all fit."""

    @property
    def kind(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def owner(self) -> str | None: ...

    @property
    def due(self) -> str | None: ...


def _sentence(text: str) -> str:
    cleaned = " ".join(text.split()).rstrip()
    if not cleaned:
        return ""
    cleaned = cleaned[0].upper() + cleaned[1:]
    return cleaned if cleaned[-1] in ".!?" else cleaned + "."


def _step(item: NoteSource) -> str:
    text = " ".join(item.text.split()).rstrip(" .")
    text = text[0].lower() + text[1:] if text[:2] != text[:2].upper() else text
    if item.due and item.due.lower() not in text.lower():
        text = f"{text} ({item.due})"
    return text


def case_note(items: Sequence[NoteSource]) -> str:
    """The derived note of a call's items (pass the current items, rejected ones left out).

    Sentences are chosen summary first (the narrative), then the reason and the outcome when the chosen
    ones do not already say them, then up to two next steps; they are written in the call's order:
    reason, summary, outcome, next steps."""
    by_kind: dict[str, list[NoteSource]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    # (narrative order, text) in the order of preference.
    candidates = [(1 + n / 100, i.text) for n, i in enumerate(by_kind.get("summary", []))]
    candidates += [(0.0, i.text) for i in by_kind.get("reason", [])[:1]]
    candidates += [(2.0, i.text) for i in by_kind.get("outcome", [])[:1]]
    chosen: list[tuple[float, str]] = []
    words: set[str] = set()
    critical: set[object] = set()

    def said(text: str) -> bool:
        own = content_words(text)
        return bool(own) and critical_values(text) <= critical and len(own & words) >= COVERED_SHARE * len(own)

    for order, text in candidates:
        if len(chosen) >= MAX_NOTE_SENTENCES - 1 or said(text):
            continue
        chosen.append((order, _sentence(text)))
        words.update(content_words(text))
        critical.update(critical_values(text))
    steps = [_step(i) for i in by_kind.get("action_item", []) if not said(i.text)][:MAX_NOTE_STEPS]
    if steps:
        chosen.append((3.0, _sentence("Next: " + "; ".join(steps))))
    return " ".join(text for _, text in sorted(chosen, key=lambda c: c[0]) if text)[:MAX_NOTE_CHARS]


def stated_as_fact(grounding_status: str, review_status: str) -> bool:
    """Whether the note may state an item: verified and not rejected, or unverified but approved by a
    reviewer. An unverified item nobody has approved never enters the note, an edit the transcript does not
    support included (app/review.py `undecided_unverified`)."""
    if review_status == ReviewStatus.rejected.value:
        return False
    return grounding_status == "grounded" or review_status == ReviewStatus.approved.value


def call_case_note(session: Session, call: Call) -> str:
    """The note of `call`: the agent's edited text if any, else derived from its current items."""
    if call.case_note:
        return call.case_note
    return derived_case_note(session, call)


def derived_case_note(session: Session, call: Call) -> str:
    """The note `call`'s current items make, whatever a reviewer wrote instead."""
    from app.pipeline.queries import current_claims

    _, claims = current_claims(session, call.id)
    return case_note([c for c in claims if stated_as_fact(c.grounding_status, c.review_status.value)])
