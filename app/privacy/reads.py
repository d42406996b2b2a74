"""Masking the read models a reviewer gets (API responses, the call page, the audit trail).

Masking keeps every length, so an evidence span's offsets slice the masked utterance exactly where
they slice the stored one. A quote that is that slice is shown as the masked slice (so the quote and
the highlighted transcript agree); any other quote, and every claim text, is masked on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.privacy.mask import MASK_CHAR, mask_text, mask_turns
from app.schemas.api import CallDetailOut, ClaimOut, EvidenceOut

# The audit snapshot fields that carry text from a call.
TEXT_FIELDS = ("text", "quote")


def mask_call_detail(detail: CallDetailOut) -> CallDetailOut:
    originals = {u.index: u.text for u in detail.utterances}
    masked = dict(zip(originals, mask_turns(list(originals.values())), strict=True))
    return detail.model_copy(
        update={
            "utterances": [u.model_copy(update={"text": masked[u.index]}) for u in detail.utterances],
            "claims": [mask_claim(claim, originals, masked) for claim in detail.claims],
        }
    )


def mask_claim(claim: ClaimOut, originals: Mapping[int, str], masked: Mapping[int, str]) -> ClaimOut:
    return claim.model_copy(
        update={
            "text": mask_text(claim.text),
            "evidence": [
                ev.model_copy(update={"quote": _masked_quote(ev, originals, masked)}) for ev in claim.evidence
            ],
        }
    )


def mask_lone_claim(claim: ClaimOut) -> ClaimOut:
    """A claim without its transcript at hand (a POST response): every text masked on its own."""
    return mask_claim(claim, {}, {})


def mask_snapshot(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """An audit event's before/after with its text fields masked."""
    if not snapshot:
        return snapshot
    return {
        key: mask_text(value) if key in TEXT_FIELDS and isinstance(value, str) else value
        for key, value in snapshot.items()
    }


def _masked_quote(ev: EvidenceOut, originals: Mapping[int, str], masked: Mapping[int, str]) -> str:
    if ev.utterance is not None and ev.char_start is not None and ev.char_end is not None:
        original, shown = originals.get(ev.utterance), masked.get(ev.utterance)
        if original is not None and shown is not None and original[ev.char_start : ev.char_end] == ev.quote:
            return shown[ev.char_start : ev.char_end]
    return mask_text(ev.quote)


def unmask_selection(quote: str, original: str, masked: str) -> str:
    """A reviewer's selection copied from the masked transcript, as the stored text says it.

    The selection is found in the masked utterance; the same span of the stored one is the quote
    the verifier checks. A selection without masked characters, or not found, is returned as is."""
    if MASK_CHAR not in quote:
        return quote
    at = masked.find(quote)
    return original[at : at + len(quote)] if at >= 0 else quote
