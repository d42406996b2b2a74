"""Grounding: check every evidence quote against the transcript and every claim against its evidence.

`verify_extraction` is what the pipeline calls; `align_quote` checks one citation; build a
`PreparedTranscript` once per call when aligning many quotes by hand.
"""

from app.grounding.align import PreparedTranscript
from app.grounding.claims import align_quote, verify_extraction
from app.grounding.reasons import Reason
from app.grounding.thresholds import (
    ASR_SLIP_MAX_EDITS,
    ASR_SLIP_MIN_JARO_WINKLER,
    FUZZY_CANDIDATE_CUTOFF,
    FUZZY_CANDIDATES,
    FUZZY_MAX_CONTENT_EDITS,
    FUZZY_MIN_QUOTE_COVERAGE,
    FUZZY_MIN_SCORE,
)

__all__ = [
    "ASR_SLIP_MAX_EDITS",
    "ASR_SLIP_MIN_JARO_WINKLER",
    "FUZZY_CANDIDATES",
    "FUZZY_CANDIDATE_CUTOFF",
    "FUZZY_MAX_CONTENT_EDITS",
    "FUZZY_MIN_QUOTE_COVERAGE",
    "FUZZY_MIN_SCORE",
    "PreparedTranscript",
    "Reason",
    "align_quote",
    "verify_extraction",
]
