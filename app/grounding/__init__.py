"""Grounding: check every evidence quote against the transcript and every claim against its evidence.

`verify_extraction` is what the pipeline calls; `align_quote` checks one citation; build a
`PreparedTranscript` once per call when aligning many quotes by hand.
"""

from app.grounding.align import PreparedTranscript
from app.grounding.claims import align_quote, spoken_words, verify_extraction
from app.grounding.reasons import Reason

__all__ = [
    "PreparedTranscript",
    "Reason",
    "align_quote",
    "spoken_words",
    "verify_extraction",
]
