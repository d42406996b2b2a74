"""Grounding thresholds, in one place. docs/grounding.md gives the measurement behind each value.

Change one only together with a run of `python -m bench.grounding.sweep` (one threshold at a time)
and `python -m bench.grounding.run`: they report the acceptance of genuine quotes (verbatim,
normalized, under real ASR noise) and of fabrications (changed numbers, flipped negations, swapped
content words, sentences from another call) side by side, and these numbers are the trade-off.
"""

from __future__ import annotations

# A fuzzy span must look like the quote character by character: rapidfuzz `fuzz.ratio` (0..1) between
# the normalized quote and the normalized transcript span. Below this, "near" is not "the same words".
FUZZY_MIN_SCORE = 0.75

# Share of the quote's normalized tokens that must be matched in the span (equal, or an ASR-plausible
# substitution). Stops an invented sentence from aligning to a short prefix that happens to match.
# Measured: at 0.6 a reordered negation flip got through, at 0.65 none; higher costs ASR recall.
FUZZY_MIN_QUOTE_COVERAGE = 0.65

# Two different words count as an ASR slip ("recognise"/"recognize", "account"/"accounts") when their
# Jaro-Winkler similarity reaches this, or when they sound alike (equal Metaphone codes: "card"/"cart").
# Below it, a differing content word is a different claim ("debit" vs "credit") and the quote fails.
ASR_SLIP_MIN_JARO_WINKLER = 0.9

# ...and only when the two spellings are at most this many character edits apart (Levenshtein): a long
# shared prefix alone ("cannot-pay-elin" / "cannot-pay-loop") is not a slip.
ASR_SLIP_MAX_EDITS = 2

# Only this many differing content words (neither equal, nor an ASR slip, nor a function word) are
# tolerated in a fuzzy span. Zero: one swapped content word is exactly what a fabrication looks like.
FUZZY_MAX_CONTENT_EDITS = 0

# How many best-scoring utterances (by rapidfuzz partial_ratio on normalized text) get the full,
# token-level fuzzy check when a quote is not found verbatim or normalized.
FUZZY_CANDIDATES = 4

# Quick pre-filter for those candidates: rapidfuzz partial_ratio (0..100) on normalized text.
FUZZY_CANDIDATE_CUTOFF = 60.0
