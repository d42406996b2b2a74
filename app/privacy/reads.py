"""Masking the read models a reviewer gets (API responses, the call page, the audit trail).

Masking keeps every length, so an evidence span's offsets slice the masked utterance exactly where
they slice the stored one. A quote that is that slice is shown as the masked slice (so the quote and
the highlighted transcript agree); any other quote, and every claim text, is masked on its own: that
copy is stored with the row (`claims.text_masked`, `evidence.quote_masked`, written with the text), so
a read takes it from there instead of running the detector again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.privacy.mask import MASK_CHAR, CallMasks, mask_text, mask_utterances, masked_copy, masked_span
from app.schemas.api import CallDetailOut, ClaimOut, EvidenceOut

# The audit snapshot fields that carry text from a call.
TEXT_FIELDS = ("text", "quote", "case_note")
# Snapshot fields earlier versions stored that no reader is shown: the transcript's content hash, of the unmasked
# text, against which a reader of the masked one could try the masked digits offline.
NEVER_SHOWN = frozenset({"transcript_hash"})


@dataclass(frozen=True)
class StoredMasks:
    """A claim's masked copies as stored: its text's (`claims.text_masked`) and its evidence quotes'
    (`evidence.quote_masked`, in evidence order). None where a row holds none: the columns are nullable,
    though every write sets them and migration 0006 filled them in for the rows written before."""

    text: str | None = None
    quotes: Sequence[str | None] = ()


NO_STORED_MASKS = StoredMasks()


def mask_call_detail(detail: CallDetailOut, stored: Mapping[int, StoredMasks] | None = None) -> CallDetailOut:
    """The detail masked; `stored`: the claims' stored masked copies, by claim id."""
    originals = {u.index: u.text for u in detail.utterances}
    masked = mask_utterances(originals)
    copies = stored or {}
    return detail.model_copy(
        update={
            # A speaker label, and the ingest warnings that quote labels, are masked as any text is.
            "utterances": [u.model_copy(update={"text": masked[u.index], "speaker": mask_text(u.speaker)})
                           for u in detail.utterances],
            "warnings": [mask_text(warning) for warning in detail.warnings],
            "claims": [
                mask_claim(claim, originals, masked, copies.get(claim.id, NO_STORED_MASKS)) for claim in detail.claims
            ],
        }
    )


def mask_claim(
    claim: ClaimOut, originals: Mapping[int, str], masked: Mapping[int, str], stored: StoredMasks = NO_STORED_MASKS
) -> ClaimOut:
    quotes = [*stored.quotes, *[None] * (len(claim.evidence) - len(stored.quotes))]
    return claim.model_copy(
        update={
            "text": masked_copy(stored.text, claim.text),
            "evidence": [
                ev.model_copy(update={"quote": _masked_quote(ev, originals, masked, quote_masked)})
                for ev, quote_masked in zip(claim.evidence, quotes, strict=False)
            ],
        }
    )


def mask_lone_claim(claim: ClaimOut, stored: StoredMasks = NO_STORED_MASKS) -> ClaimOut:
    """A claim without its transcript at hand (a POST response): every text masked on its own."""
    return mask_claim(claim, {}, {}, stored)


def mask_snapshot(snapshot: dict[str, Any] | None, masks: CallMasks | None = None) -> dict[str, Any] | None:
    """An audit event's before/after with its text fields masked: as the call's transcript is when its
    `masks` are given (`CallMasks.text`), else each on its own."""
    if not snapshot:
        return snapshot
    # By shape: the trail shows every reader what reviewers typed (`CallMasks.text`).
    mask = (lambda text: masks.text(text, by_shape=True)) if masks is not None else mask_text
    return {key: mask(value) if key in TEXT_FIELDS and isinstance(value, str) else value
            for key, value in snapshot.items() if key not in NEVER_SHOWN}


def shown_snapshot(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """An audit event's before/after as a reader allowed to see personal data is shown it: without the
    fields no reader is shown (`NEVER_SHOWN`)."""
    if not snapshot:
        return snapshot
    return {key: value for key, value in snapshot.items() if key not in NEVER_SHOWN}


def _masked_quote(
    ev: EvidenceOut, originals: Mapping[int, str], masked: Mapping[int, str], quote_masked: str | None
) -> str:
    span = masked_span(ev.quote, ev.utterance, ev.char_start, ev.char_end, originals, masked)
    if span is not None:
        return span
    return masked_copy(quote_masked, ev.quote)


def unmask_selection(quote: str, original: str, masked: str) -> str:
    """A reviewer's selection copied from the masked transcript, as the stored text says it.

    The selection is found in the masked utterance; the same span of the stored one is the quote
    the verifier checks. A selection without masked characters, or not found, is returned as is."""
    if MASK_CHAR not in quote:
        return quote
    at = masked.find(quote)
    return original[at : at + len(quote)] if at >= 0 else quote
