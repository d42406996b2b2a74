"""Small builders for grounding tests: transcripts from plain strings, and the offsets invariant."""

from __future__ import annotations

from collections.abc import Sequence

from app.schemas.grounding import EvidenceStatus, VerifiedEvidence
from app.schemas.transcript import Role, Transcript, Utterance

ROLE_BY_SPEAKER = {"agent": Role.agent, "customer": Role.customer}


def utterances(*lines: str | tuple[str, str]) -> list[Utterance]:
    """Utterances from strings (speaker alternates agent/customer) or (speaker, text) pairs."""
    built: list[Utterance] = []
    for index, line in enumerate(lines):
        if isinstance(line, tuple):
            speaker, text = line
        else:
            speaker, text = ("agent" if index % 2 == 0 else "customer"), line
        built.append(
            Utterance(index=index, speaker=speaker, role=ROLE_BY_SPEAKER.get(speaker, Role.unknown), text=text)
        )
    return built


def transcript(*lines: str | tuple[str, str]) -> Transcript:
    return Transcript(utterances=utterances(*lines))


def assert_offsets_slice_original(turns: Sequence[Utterance], evidence: Sequence[VerifiedEvidence]) -> None:
    """The stored invariant: a grounded span's offsets slice its utterance's original text to the match.

    For `exact` the slice is the quote itself; for every other grounded status it is a non-empty
    interval inside the utterance.
    """
    for piece in evidence:
        if not piece.grounded:
            continue
        assert piece.utterance is not None and piece.char_start is not None and piece.char_end is not None
        text = turns[piece.utterance].text
        assert 0 <= piece.char_start < piece.char_end <= len(text)
        span = text[piece.char_start : piece.char_end]
        assert span == span.strip(), f"span {span!r} has surrounding whitespace"
        if piece.status is EvidenceStatus.exact:
            assert span == piece.quote
