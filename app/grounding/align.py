"""Align one evidence quote to the transcript: exact, normalized, fuzzy, relocated or ungrounded.

The search runs from cheap and certain to costly and lenient, and stops at the first success:

1. exact      the quote, verbatim, in the cited utterance (at token boundaries);
2. normalized its normalized tokens, contiguous, in the cited utterance's normalized tokens;
3. relocated  1 or 2 in another utterance, the nearest one to the cited index winning;
4. the same across adjacent utterances of one speaker (a quote that runs over a turn break);
5. fuzzy      a close span in the cited utterance (or, relocated, in another) whose critical tokens
              all agree and whose differing words are all ASR slips or function words.

Whatever is found, the evidence records character offsets into the *original* utterance text:
``utterances[ev.utterance].text[ev.char_start:ev.char_end]`` is the matched span.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jellyfish
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein, ScoreAlignment

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
from app.schemas.grounding import EvidenceStatus, VerifiedEvidence
from app.schemas.transcript import Utterance
from app.text.lexicon import ANSWER_OPENERS, FILLERS, NEGATIVE_RESPONSE_PARTICLES, TURN_OPENERS
from app.text.normalize import CRITICAL_KINDS, NormalizedText, TokenKind, negates_clause, normalize

# An ellipsis in a quote joins pieces taken from different places: "I'll send … by Friday".
ELLIPSIS_RE = re.compile(r"\s*(?:…|\.{3,}|\[\s*(?:…|\.{3,})\s*\])\s*")
# Wrapping a model may put around a quote; never part of what was said.
QUOTE_WRAPPING = " \t\r\n\"'“”‘’«»"

# Words whose replacement, omission or insertion does not change what a quote claims. Pronouns are
# deliberately absent: "I will send it" and "you will send it" name different owners.
FUNCTION_WORDS = frozenset(
    {
        "a", "an", "the", "of", "to", "for", "in", "on", "at", "by", "with", "from", "into", "onto",
        "about", "as", "and", "or", "but", "so", "if", "then", "than", "that", "this", "these", "those",
        "it", "its", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "have",
        "has", "had", "there", "here", "just", "also", "really", "very", "well", "oh", "okay", "alright",
        "right", "yeah", "yes", "yep", "sure", "please", "um", "uh", "like", "actually", "mr", "mrs", "ms",
        "miss", "sir", "maam", "what", "where", "when", "which", "who", "how", "why"
    }
)
# Words that open or close a turn without saying anything about the call.
DISCOURSE_MARKERS = frozenset({"okay", "alright", "right", "yeah", "yes", "yep", "so", "well", "oh", "um", "uh"})
# Pronouns and modals: ASR drops them often, so a quote may have one the transcript lacks; but swapping
# one for another changes who does what ("I" vs "you") or how firm a promise is ("will" vs "can").
DROPPABLE_WORDS = frozenset(
    {
        "i", "you", "we", "they", "he", "she", "me", "us", "them", "him", "her", "my", "your", "our",
        "their", "his", "one", "can", "could", "will", "would", "shall", "should", "may", "might", "must",
    }
)
# Endings that make another form of the same word; ASR engines drop and add them all the time.
INFLECTIONS = frozenset({"s", "es", "d", "ed", "red", "ing", "ting", "er", "ly"})

# Function words that are each other's opposite: "from my savings" is not "to my savings".
OPPOSITE_FUNCTION_WORDS = frozenset(
    frozenset(pair) for pair in (("from", "to"), ("from", "into"), ("in", "out"), ("on", "off"))
)
# A word and the same word with one of these in front say opposite things ("activate"/"deactivate").
NEGATING_PREFIXES = frozenset({"un", "in", "im", "ir", "il", "dis", "non", "de", "mis"})

# The pieces of a quote joined by an ellipsis must lie within this many utterances of the citation.
ELLIPSIS_MAX_DISTANCE = 2

# Utterances preselected by shared words before fuzzy scoring: this many times FUZZY_CANDIDATES.
PRESELECT_FACTOR = 3

# How many multi-utterance speaker blocks (nearest the citation first) a fuzzy quote is tried against.
BLOCKS_TRIED = 3

# When critical tokens disagree, the reason names the most telling kind.
MISMATCH_REASON_BY_KIND: tuple[tuple[TokenKind, Reason], ...] = (
    (TokenKind.negation, Reason.negation_mismatch),
    (TokenKind.id, Reason.id_mismatch),
    (TokenKind.date, Reason.date_mismatch),
    (TokenKind.time, Reason.time_mismatch),
    (TokenKind.amount, Reason.amount_mismatch),
    (TokenKind.percent, Reason.amount_mismatch),
    (TokenKind.number, Reason.number_mismatch),
)


@dataclass(frozen=True, slots=True)
class _Span:
    """Tokens [first, last) of one utterance's normalized text."""

    utterance: int
    first: int
    last: int


# Turns a token window [first, last) into per-utterance spans plus the quote tokens mapped to each.
SpanBuilder = Callable[[int, int], tuple[tuple[_Span, ...], tuple[tuple[int, int], ...]]]


@dataclass(frozen=True, slots=True)
class _FuzzyVerdict:
    spans: tuple[_Span, ...]
    score: float
    accepted: bool
    # Why a close span was still refused (critical or content mismatch); None when it was not close.
    reason: Reason | None
    # Quote tokens that map to each span, to split the quote text when it runs over utterances.
    quote_token_ranges: tuple[tuple[int, int], ...]


class _Block:
    """Adjacent utterances of one speaker, their normalized tokens laid end to end.

    The tokens are laid out on first use: a call has several blocks, and most quotes need none of them
    (a quote found nowhere is tried against the nearest few only).
    """

    __slots__ = ("_layout", "_prepared", "utterances")

    def __init__(self, utterances: tuple[int, ...], prepared: PreparedTranscript) -> None:
        self.utterances = utterances
        self._prepared = prepared
        self._layout: tuple[NormalizedText, tuple[int, ...], tuple[int, ...]] | None = None

    @property
    def text(self) -> NormalizedText:
        return self._laid_out()[0]

    # For each block token: which utterance it belongs to and its index there.
    @property
    def owner(self) -> tuple[int, ...]:
        return self._laid_out()[1]

    @property
    def local(self) -> tuple[int, ...]:
        return self._laid_out()[2]

    def _laid_out(self) -> tuple[NormalizedText, tuple[int, ...], tuple[int, ...]]:
        if self._layout is None:
            self._layout = self._prepared._lay_out(self.utterances)
        return self._layout


class PreparedTranscript:
    """A transcript indexed for alignment. Build it once per call and reuse it for every quote.

    Utterances are normalized lazily (a verbatim quote never needs it) and at most once.
    """

    def __init__(self, utterances: Sequence[Utterance]) -> None:
        self.utterances: tuple[Utterance, ...] = tuple(utterances)
        self._texts = [utterance.text for utterance in self.utterances]
        self._normalized: list[NormalizedText | None] = [None] * len(self.utterances)
        self._joined: list[str] | None = None
        self._blocks: list[_Block] | None = None
        self._blocks_haystack: str | None = None
        self._index: dict[str, list[int]] | None = None
        # Per utterance, how often each critical value occurs in it (see `_decided_at_cited`).
        self._critical: list[Counter[str] | None] = [None] * len(self.utterances)
        self._block_critical: dict[tuple[int, ...], Counter[str]] = {}
        # Speaker blocks sorted by distance from an anchor: quotes of one call share anchors.
        self._block_order: dict[int, list[_Block]] = {}
        # Every utterance (raw, then normalized and space-padded) in one string: a quote absent from it
        # is absent from every utterance, so the per-utterance searches can be skipped.
        self._raw_haystack: str | None = None
        self._normalized_haystack: str | None = None
        # Quotes normalized so far: one call often cites the same passage for several claims.
        self._quotes: dict[str, NormalizedText] = {}
        # The claim checks' reading of the call's words for names (app/grounding/claims.py), on first use.
        self.names: Any = None

    def __len__(self) -> int:
        return len(self.utterances)

    def normalized(self, index: int) -> NormalizedText:
        cached = self._normalized[index]
        if cached is None:
            cached = normalize(self._texts[index])
            self._normalized[index] = cached
        return cached

    def normalized_quote(self, quote: str) -> NormalizedText:
        """`normalize(quote)`, remembered for this transcript."""
        cached = self._quotes.get(quote)
        if cached is None:
            cached = normalize(quote)
            self._quotes[quote] = cached
        return cached

    def align_quote(self, cited_index: int, quote: str) -> list[VerifiedEvidence]:
        """Align `quote` (cited at `cited_index`) to this transcript; one evidence per piece or span.

        A quote with an ellipsis is first tried whole (tweets and chats use "..." as text). If that
        fails, each piece is aligned on its own, and must be found near the citation: an ellipsis
        joins parts of one passage, not words from anywhere in the call.
        """
        text = quote.strip(QUOTE_WRAPPING)
        if not text:
            return [_ungrounded(cited_index, quote, Reason.not_found)]
        whole = self._align_piece(cited_index, text)
        if all(piece.grounded for piece in whole) or not ELLIPSIS_RE.search(text):
            return whole
        pieces = [piece.strip(QUOTE_WRAPPING) for piece in ELLIPSIS_RE.split(text)]
        pieces = [piece for piece in pieces if piece]
        if len(pieces) < 2:
            return whole
        anchor = min(max(cited_index, 0), len(self.utterances) - 1)
        near = range(max(anchor - ELLIPSIS_MAX_DISTANCE, 0), anchor + ELLIPSIS_MAX_DISTANCE + 1)
        evidence: list[VerifiedEvidence] = []
        for piece in pieces:
            evidence.extend(self._align_piece(cited_index, piece, near))
        # One passage is one speaker's: "I was charged $40 ... I will refund the $40" joining the customer's
        # words to the agent's is not something anyone said.
        speakers = {self.utterances[piece.utterance].speaker for piece in evidence
                    if piece.grounded and piece.utterance is not None}
        if len(speakers) > 1:
            refused = {"status": EvidenceStatus.ungrounded, "reason": Reason.mixed_speakers.value}
            return [piece.model_copy(update=refused) if piece.grounded else piece for piece in evidence]
        return evidence

    # --- the search ---------------------------------------------------------------------------

    def _align_piece(self, cited: int, piece: str, allowed: range | None = None) -> list[VerifiedEvidence]:
        count = len(self.utterances)
        in_range = 0 <= cited < count
        anchor = min(max(cited, 0), count - 1)
        relocation_reason = None if in_range else Reason.bad_index
        # A verbatim or normalized occurrence right after "not" / before "never" is refused, and
        # remembered so the answer can point at it if nothing better turns up.
        refused: VerifiedEvidence | None = None

        def refuse(index: int, interval: tuple[int, int]) -> None:
            nonlocal refused
            if refused is None:
                refused = VerifiedEvidence(
                    cited_utterance=cited,
                    utterance=index,
                    quote=piece,
                    status=EvidenceStatus.ungrounded,
                    char_start=interval[0],
                    char_end=interval[1],
                    score=1.0,
                    reason=Reason.negation_mismatch.value,
                )

        if in_range:
            found = _find_verbatim(self._texts[cited], piece)
            if found is not None:
                if not _negated_context(self._texts[cited], *found):
                    return [self._evidence(cited, cited, piece, EvidenceStatus.exact, found, 1.0)]
                refuse(cited, found)

        quote = self.normalized_quote(piece)
        if not quote.tokens:
            return [_ungrounded(cited, piece, Reason.not_found)]

        if in_range:
            span = self._find_normalized(cited, quote)
            if span is not None:
                interval = self._char_interval(span)
                if not _negated_context(self._texts[cited], *interval):
                    return [self._span_evidence(cited, piece, span, EvidenceStatus.normalized, 1.0)]
                refuse(cited, interval)

        # Verbatim or normalized anywhere at all? If not, no utterance needs to be searched one by one.
        verbatim_anywhere = piece in self._raw_search_text()
        normalized_anywhere = verbatim_anywhere or self._normalized_anywhere(quote)
        for index in _by_distance(anchor, count) if normalized_anywhere else ():
            if index == cited or (allowed is not None and index not in allowed):
                continue
            found = _find_verbatim(self._texts[index], piece) if verbatim_anywhere else None
            if found is None:
                span = self._find_normalized(index, quote)
                found = self._char_interval(span) if span is not None else None
            if found is None:
                continue
            if _negated_context(self._texts[index], *found):
                refuse(index, found)
                continue
            return [self._evidence(cited, index, piece, EvidenceStatus.relocated, found, 1.0, relocation_reason)]

        across = self._find_across_utterances(anchor, quote, allowed)
        if across is not None:
            spans, ranges = across
            return self._multi_span_evidence(
                cited, piece, quote, spans, ranges, EvidenceStatus.normalized, 1.0, relocation_reason
            )

        verdict = self._fuzzy(cited if in_range else None, anchor, quote, allowed)
        if verdict is not None and verdict.accepted and self._spans_negated(verdict.spans):
            refuse(verdict.spans[0].utterance, self._char_interval(verdict.spans[0]))
            verdict = None
        if verdict is not None and verdict.accepted:
            return self._multi_span_evidence(
                cited,
                piece,
                quote,
                verdict.spans,
                verdict.quote_token_ranges,
                EvidenceStatus.fuzzy,
                verdict.score,
                relocation_reason,
            )
        if refused is not None:
            return [refused]
        if verdict is not None and verdict.reason is not None:
            # Close, but a number, negation, date or content word differs: point at the span so the
            # reviewer sees what the transcript says instead.
            span = verdict.spans[0]
            start, end = self._char_interval(span)
            return [
                VerifiedEvidence(
                    cited_utterance=cited,
                    utterance=span.utterance,
                    quote=piece,
                    status=EvidenceStatus.ungrounded,
                    char_start=start,
                    char_end=end,
                    score=verdict.score,
                    reason=verdict.reason.value,
                )
            ]
        return [_ungrounded(cited, piece, relocation_reason or Reason.not_found)]

    def _spans_negated(self, spans: Sequence[_Span]) -> bool:
        """Whether a negation sits right before the first span or right after the last one."""
        first, last = spans[0], spans[-1]
        start = self._char_interval(first)[0]
        end = self._char_interval(last)[1]
        return _negated_context(self._texts[first.utterance], start, start) or _negated_context(
            self._texts[last.utterance], end, end
        )

    def _raw_search_text(self) -> str:
        if self._raw_haystack is None:
            self._raw_haystack = "\n".join(self._texts)
        return self._raw_haystack

    def _normalized_anywhere(self, quote: NormalizedText) -> bool:
        """Whether the quote's tokens occur contiguously in some utterance (what `_find_normalized` needs).

        Tokens never hold whitespace, so a padded quote cannot match across the newline between two
        utterances: this is exactly "`NormalizedText.find` succeeds somewhere", minus the word-cut check.
        """
        if self._normalized_haystack is None:
            self._normalized_haystack = "\n".join(f" {joined} " for joined in self._all_joined())
        return f" {quote.joined} " in self._normalized_haystack

    def _find_normalized(self, index: int, quote: NormalizedText) -> _Span | None:
        """The first occurrence of the quote's tokens that does not end inside a word ("I can" in "I can't")."""
        text = self.normalized(index)
        first = text.find(quote)
        while first is not None:
            last = first + len(quote.tokens)
            if not _cuts_word_at(text, last):
                return _Span(index, first, last)
            first = text.find(quote, first + 1)
        return None

    def _find_across_utterances(
        self, anchor: int, quote: NormalizedText, allowed: range | None
    ) -> tuple[tuple[_Span, ...], tuple[tuple[int, int], ...]] | None:
        """A normalized match that runs over adjacent utterances of one speaker, nearest block first."""
        if f" {quote.joined} " not in self._blocks_search_text():
            return None
        for block in self._blocks_by_distance(anchor, allowed=allowed):
            first = block.text.find(quote)
            if first is None:
                continue
            spans, ranges = self._split_block_range(
                block, first, first + len(quote.tokens), range(len(quote.tokens))
            )
            if self._spans_negated(spans):
                continue
            return spans, ranges
        return None

    def _split_block_range(
        self, block: _Block, first: int, last: int, quote_positions: Sequence[int]
    ) -> tuple[tuple[_Span, ...], tuple[tuple[int, int], ...]]:
        """Cut block tokens [first, last) into per-utterance spans; map quote tokens alongside.

        `quote_positions[k]` is the quote token aligned with block token first + k (for a normalized
        match this is just k).
        """
        spans: list[_Span] = []
        ranges: list[tuple[int, int]] = []
        owners, local = block.owner, block.local
        position = first
        while position < last:
            owner = owners[position]
            end = position
            while end < last and owners[end] == owner:
                end += 1
            spans.append(_Span(owner, local[position], local[end - 1] + 1))
            quote_first = quote_positions[position - first]
            quote_last = quote_positions[end - 1 - first] + 1
            ranges.append((quote_first, quote_last))
            position = end
        return tuple(spans), tuple(ranges)

    # --- fuzzy --------------------------------------------------------------------------------

    def _fuzzy(
        self, cited: int | None, anchor: int, quote: NormalizedText, allowed: range | None
    ) -> _FuzzyVerdict | None:
        """The best fuzzy verdict: an accepted span (cited utterance first), else the closest refusal."""
        eligible = self._preselect(quote)
        cited_verdict = self._cited_verdict(cited, quote, allowed)
        if cited_verdict is not None:
            decided = self._decided_at_cited(cited_verdict, cited, anchor, quote, allowed, eligible)
            if decided is not None:
                return decided
        verdicts: list[tuple[int, _FuzzyVerdict]] = []
        candidates, scores, alignments = self._rank(cited, quote, eligible)
        for index in candidates:
            if allowed is not None and index not in allowed:
                continue
            if index == cited and cited_verdict is not None:
                verdict: _FuzzyVerdict | None = cited_verdict
            else:
                verdict = self._fuzzy_in(index, quote, alignments.get(index))
            if verdict is None:
                continue
            if verdict.accepted and index == cited:
                return verdict
            verdicts.append((index, verdict))
        if len(quote.tokens) > 1 and not any(verdict.accepted for _, verdict in verdicts):
            # Perhaps the quote runs over a turn break: try the speaker blocks nearest the citation,
            # those where the quote fits better than in any one of their utterances.
            for block in self._blocks_tried(anchor, allowed):
                alone = max(scores.get(index, 0.0) for index in block.utterances)
                verdict = self._fuzzy_in_block_beyond(block, quote, alone)
                if verdict is not None:
                    verdicts.append((verdict.spans[0].utterance, verdict))
        accepted = [item for item in verdicts if item[1].accepted]
        if accepted:
            return max(accepted, key=lambda item: (item[1].score, -abs(item[0] - anchor)))[1]
        refused = [item for item in verdicts if item[1].reason is not None]
        if refused:
            return max(refused, key=lambda item: (item[0] == cited, item[1].score, -abs(item[0] - anchor)))[1]
        return None

    def _cited_verdict(self, cited: int | None, quote: NormalizedText, allowed: range | None) -> _FuzzyVerdict | None:
        """The cited utterance's fuzzy verdict, judged first; None when the search would not judge it.

        It is only worth judging first when the quote has critical tokens: that is when the ranking of
        other candidates may turn out to be unnecessary (see `_decided_at_cited`).
        """
        if cited is None or (allowed is not None and cited not in allowed):
            return None
        if not self._cited_is_candidate(cited, quote) or not quote.critical_values():
            return None
        return self._fuzzy_in(cited, quote)

    def _cited_is_candidate(self, cited: int | None, quote: NormalizedText) -> bool:
        """Whether the fuzzy search judges the cited utterance (whatever its rank): it is long enough."""
        return cited is not None and len(self._all_joined()[cited]) >= _min_candidate_length(quote)

    def _decided_at_cited(
        self,
        cited_verdict: _FuzzyVerdict,
        cited: int | None,
        anchor: int,
        quote: NormalizedText,
        allowed: range | None,
        eligible: dict[int, str],
    ) -> _FuzzyVerdict | None:
        """What the whole fuzzy search would answer, when the cited utterance's verdict decides it; else None.

        An accepted cited span is the answer. A refusal with a reason (a number differs) is the answer
        unless another utterance or a speaker block accepts the quote, and accepting needs every one of
        the quote's critical tokens there. So when the quote's number (date, ID, negation) is said in no
        candidate the search would judge, ranking them (rapidfuzz over every preselected utterance,
        the costly part of the fuzzy stage) cannot change the answer and is skipped. The one block
        that holds the cited utterance is still judged: its refusal may outscore the cited one's.
        """
        if cited_verdict.accepted:
            return cited_verdict
        if cited_verdict.reason is None:
            return None
        needed = Counter(value for _, value in quote.critical_values())
        if any(index != cited and needed <= self._critical_counts(index) for index in eligible):
            return None
        blocks = self._blocks_tried(anchor, allowed) if len(quote.tokens) > 1 else []
        if any(needed <= self._block_critical_counts(block) for block in blocks):
            return None
        joined = self._all_joined()
        for block in blocks:
            if cited not in block.utterances:
                continue  # its refusal would not be at the cited utterance, so it loses to the cited one
            alone = max(
                fuzz.partial_ratio(quote.joined, joined[index]) if index in eligible else 0.0
                for index in block.utterances
            )
            verdict = self._fuzzy_in_block_beyond(block, quote, alone)
            if (
                verdict is not None
                and verdict.spans[0].utterance == cited
                and verdict.reason is not None
                and verdict.score > cited_verdict.score
            ):
                return verdict
        return cited_verdict

    def _blocks_tried(self, anchor: int, allowed: range | None) -> list[_Block]:
        """The speaker blocks a fuzzy quote is tried against: the nearest ones with an allowed utterance."""
        return list(self._blocks_by_distance(anchor, limit=BLOCKS_TRIED, allowed=allowed))

    def _fuzzy_in_block_beyond(self, block: _Block, quote: NormalizedText, alone: float) -> _FuzzyVerdict | None:
        """The block's verdict when the quote fits the block better than `alone`, else None.

        `alone` is the best score of one of the block's utterances; a verdict whose span stays inside one
        utterance is that utterance's business, so it is dropped too.
        """
        if fuzz.partial_ratio(quote.joined, block.text.joined, score_cutoff=alone + 1) == 0:
            return None
        verdict = self._fuzzy_in_block(block, quote)
        if verdict is not None and len(verdict.spans) > 1:
            return verdict
        return None

    def _critical_counts(self, index: int) -> Counter[str]:
        """How often each critical value occurs in utterance `index`, built once per utterance."""
        cached = self._critical[index]
        if cached is None:
            cached = Counter(value for _, value in self.normalized(index).critical_values())
            self._critical[index] = cached
        return cached

    def _block_critical_counts(self, block: _Block) -> Counter[str]:
        """The critical values of a speaker block's utterances together, built once per block."""
        cached = self._block_critical.get(block.utterances)
        if cached is None:
            cached = sum(map(self._critical_counts, block.utterances), Counter())
            self._block_critical[block.utterances] = cached
        return cached

    def _preselect(self, quote: NormalizedText) -> dict[int, str]:
        """Utterances worth a fuzzy comparison with the quote, by shared words: index -> normalized text.

        Shared words preselect (weighted by rarity in the call, from an inverted index), so a long call
        costs a few dictionary lookups per quote token, not a fuzzy comparison per utterance.
        """
        joined = self._all_joined()
        # Utterances much shorter than the quote cannot hold it (a quote running over several of them
        # is the block search's job); partial_ratio would otherwise score "yes" inside any quote.
        min_length = _min_candidate_length(quote)
        index = self._token_index()
        weights: dict[int, float] = {}
        for token in set(quote.tokens):
            holders = index.get(token)
            if holders:
                weight = 1.0 / len(holders)
                for holder in holders:
                    weights[holder] = weights.get(holder, 0.0) + weight
        preselected = sorted(weights, key=weights.__getitem__, reverse=True)[: FUZZY_CANDIDATES * PRESELECT_FACTOR]
        return {position: joined[position] for position in preselected if len(joined[position]) >= min_length}

    def _rank(
        self, cited: int | None, quote: NormalizedText, eligible: dict[int, str]
    ) -> tuple[list[int], dict[int, float], dict[int, ScoreAlignment]]:
        """The best-scoring utterances to judge (cited first), the scores, and the alignments found.

        rapidfuzz partial_ratio ranks the preselected few (best first; a tie keeps preselection order).
        The alignment behind each score is kept: locating the quote in a candidate needs it again.
        """
        alignments: dict[int, ScoreAlignment] = {}
        scores: dict[int, float] = {}
        for position, text in eligible.items():
            alignment = fuzz.partial_ratio_alignment(quote.joined, text)
            scores[position] = alignment.score if alignment is not None else 0.0
            if alignment is not None and len(quote.joined) <= len(text):
                alignments[position] = alignment
        ranked = sorted(scores, key=scores.__getitem__, reverse=True)[:FUZZY_CANDIDATES]
        indices = [position for position in ranked if scores[position] >= FUZZY_CANDIDATE_CUTOFF]
        if cited is not None and cited not in indices and self._cited_is_candidate(cited, quote):
            indices.insert(0, cited)
        return indices, scores, alignments

    def _token_index(self) -> dict[str, list[int]]:
        """Normalized token -> the utterances that contain it (in order), built once."""
        if self._index is None:
            holders: defaultdict[str, list[int]] = defaultdict(list)
            for position in range(len(self.utterances)):
                for token in set(self.normalized(position).tokens):
                    holders[token].append(position)
            self._index = holders
        return self._index

    def _fuzzy_in(
        self, index: int, quote: NormalizedText, alignment: ScoreAlignment | None = None
    ) -> _FuzzyVerdict | None:
        """The verdict on utterance `index`; `alignment` is the quote's partial_ratio_alignment there, if known."""
        text = self.normalized(index)
        window = _locate(quote, text, alignment)
        if window is None:
            return None
        first, last = window
        return _judge(quote, text, first, last, lambda a, b: ((_Span(index, a, b),), ((0, len(quote)),)))

    def _fuzzy_in_block(self, block: _Block, quote: NormalizedText) -> _FuzzyVerdict | None:
        window = _locate(quote, block.text)
        if window is None:
            return None
        first, last = window

        def split(a: int, b: int) -> tuple[tuple[_Span, ...], tuple[tuple[int, int], ...]]:
            positions = _quote_positions(quote, block.text, a, b)
            return self._split_block_range(block, a, b, positions)

        return _judge(quote, block.text, first, last, split)

    # --- indexes ------------------------------------------------------------------------------

    def _all_joined(self) -> list[str]:
        if self._joined is None:
            self._joined = [self.normalized(index).joined for index in range(len(self.utterances))]
        return self._joined

    def _blocks_by_distance(
        self, anchor: int, limit: int | None = None, allowed: range | None = None
    ) -> Iterator[_Block]:
        """Speaker blocks nearest `anchor` first (the first `limit`), those with an `allowed` utterance."""
        ordered = self._block_order.get(anchor)
        if ordered is None:
            ordered = sorted(
                self._speaker_blocks(), key=lambda block: (_distance_to_block(anchor, block), block.utterances[0])
            )
            self._block_order[anchor] = ordered
        for block in ordered[:limit] if limit is not None else ordered:
            if allowed is None or any(index in allowed for index in block.utterances):
                yield block

    def _speaker_blocks(self) -> list[_Block]:
        """Runs of two or more consecutive utterances by the same speaker, found once (laid out lazily)."""
        if self._blocks is None:
            blocks: list[_Block] = []
            index = 0
            while index < len(self.utterances):
                end = index + 1
                while end < len(self.utterances) and self.utterances[end].speaker == self.utterances[index].speaker:
                    end += 1
                if end - index > 1:
                    blocks.append(_Block(tuple(range(index, end)), self))
                index = end
            self._blocks = blocks
        return self._blocks

    def _blocks_search_text(self) -> str:
        """Every speaker block's normalized text, space-padded, one per line: what `_Block.text.joined` holds.

        A block's joined text is its utterances' joined texts (those with tokens) joined by spaces, so a
        quote absent from this string is in no block, and no block needs laying out to know it.
        """
        if self._blocks_haystack is None:
            joined = self._all_joined()
            self._blocks_haystack = "\n".join(
                " " + " ".join(joined[index] for index in block.utterances if joined[index]) + " "
                for block in self._speaker_blocks()
            )
        return self._blocks_haystack

    def _lay_out(self, members: tuple[int, ...]) -> tuple[NormalizedText, tuple[int, ...], tuple[int, ...]]:
        """The block of `members`: their tokens end to end, and each token's utterance and index there."""
        tokens: list[str] = []
        kinds: list[TokenKind] = []
        starts: list[int] = []
        ends: list[int] = []
        owner: list[int] = []
        local: list[int] = []
        # Offsets into the utterances laid end to end (one apart), so two tokens share a start only if
        # they come from one source word. Evidence offsets come from the utterances, not from these.
        base = 0
        for index in members:
            text = self.normalized(index)
            tokens.extend(text.tokens)
            kinds.extend(text.kinds)
            starts.extend(map(base.__add__, text.starts))
            ends.extend(map(base.__add__, text.ends))
            owner.extend([index] * len(text.tokens))
            local.extend(range(len(text.tokens)))
            base += len(self._texts[index]) + 1
        return NormalizedText.of(tuple(tokens), kinds, starts, ends), tuple(owner), tuple(local)

    # --- results ------------------------------------------------------------------------------

    def _char_interval(self, span: _Span) -> tuple[int, int]:
        text = self.normalized(span.utterance)
        return text.starts[span.first], text.ends[span.last - 1]

    def _evidence(
        self,
        cited: int,
        index: int,
        piece: str,
        status: EvidenceStatus,
        interval: tuple[int, int],
        score: float,
        reason: Reason | None = None,
    ) -> VerifiedEvidence:
        return VerifiedEvidence(
            cited_utterance=cited,
            utterance=index,
            quote=piece,
            status=status,
            char_start=interval[0],
            char_end=interval[1],
            score=score,
            reason=reason.value if reason else None,
        )

    def _span_evidence(
        self,
        cited: int,
        piece: str,
        span: _Span,
        status: EvidenceStatus,
        score: float,
        reason: Reason | None = None,
    ) -> VerifiedEvidence:
        return self._evidence(cited, span.utterance, piece, status, self._char_interval(span), score, reason)

    def _multi_span_evidence(
        self,
        cited: int,
        piece: str,
        quote: NormalizedText,
        spans: Sequence[_Span],
        quote_ranges: Sequence[tuple[int, int]],
        status: EvidenceStatus,
        score: float,
        reason: Reason | None,
    ) -> list[VerifiedEvidence]:
        """One evidence per utterance a match covers, each with its piece of the quote."""
        covers_cited = any(span.utterance == cited for span in spans)
        if len(spans) == 1:
            span = spans[0]
            final = status if span.utterance == cited else EvidenceStatus.relocated
            return [self._span_evidence(cited, piece, span, final, score, reason)]
        evidence: list[VerifiedEvidence] = []
        for position, (span, (quote_first, quote_last)) in enumerate(zip(spans, quote_ranges, strict=True)):
            # Each piece runs from where its first token starts to where the next piece begins, so
            # the pieces put back together give the whole quote.
            piece_start = 0 if position == 0 else quote.starts[quote_first]
            is_last = position == len(spans) - 1
            piece_end = len(piece) if is_last else quote.starts[quote_ranges[position + 1][0]]
            quote_piece = piece[piece_start:piece_end].strip() or piece[
                quote.starts[quote_first] : quote.ends[quote_last - 1]
            ]
            start, end = self._char_interval(span)
            span_status = status if covers_cited else EvidenceStatus.relocated
            if span_status is EvidenceStatus.normalized and self._texts[span.utterance][start:end] == quote_piece:
                span_status = EvidenceStatus.exact
            evidence.append(
                VerifiedEvidence(
                    cited_utterance=cited,
                    utterance=span.utterance,
                    quote=quote_piece,
                    status=span_status,
                    char_start=start,
                    char_end=end,
                    score=score,
                    reason=reason.value if reason else None,
                )
            )
        return evidence


# --- free helpers ---------------------------------------------------------------------------------


def _min_candidate_length(quote: NormalizedText) -> int:
    """Normalized utterances shorter than this are not fuzzy candidates for the quote on their own."""
    return len(quote.joined) // 2


def _ungrounded(cited: int, quote: str, reason: Reason) -> VerifiedEvidence:
    return VerifiedEvidence(
        cited_utterance=cited,
        utterance=None,
        quote=quote,
        status=EvidenceStatus.ungrounded,
        reason=reason.value,
    )


def _by_distance(anchor: int, count: int) -> Iterator[int]:
    """anchor, anchor-1, anchor+1, anchor-2, ...: on a tie the earlier utterance wins."""
    yield anchor
    for distance in range(1, count):
        if anchor - distance >= 0:
            yield anchor - distance
        if anchor + distance < count:
            yield anchor + distance


def _distance_to_block(anchor: int, block: _Block) -> int:
    first, last = block.utterances[0], block.utterances[-1]
    if first <= anchor <= last:
        return 0
    return first - anchor if anchor < first else anchor - last


def _find_verbatim(text: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` occurs in `text` without cutting a word or number ("$4" is not in "$45")."""
    start = text.find(quote)
    while start >= 0:
        end = start + len(quote)
        if _clean_boundary(text, start, end, quote):
            return start, end
        start = text.find(quote, start + 1)
    return None


def _cuts_word_at(text: NormalizedText, position: int) -> bool:
    """Whether tokens `position - 1` and `position` come from one source word ("can't" -> can, not)."""
    return 0 < position < len(text.tokens) and text.starts[position] == text.starts[position - 1]


def _clean_boundary(text: str, start: int, end: int, quote: str) -> bool:
    if start > 0 and quote[0].isalnum() and text[start - 1].isalnum():
        return False
    if end < len(text) and quote[-1].isalnum() and text[end].isalnum():
        return False
    # "I can" inside "I can't": the word goes on past an apostrophe.
    if end + 1 < len(text) and quote[-1].isalpha() and text[end] in "'’" and text[end + 1].isalpha():
        return False
    # "$5" inside "$5,000" or "2.5": a digit followed by a separator and another digit.
    return not (
        end + 1 < len(text) and quote[-1].isdigit() and text[end] in ".,:" and text[end + 1].isdigit()
    )


CLAUSE_BREAK_RE = re.compile(r"[.!?;:,\n(){}\[\]]")
WORD_RE = re.compile(r"[a-z]+(?:['’ʼ][a-z]+)?")
# Looking this far around a span is enough to see the two words before it and the one after it.
NEGATION_CONTEXT_CHARS = 40
CLAUSE_BREAK_SPLIT_RE = re.compile(f"({CLAUSE_BREAK_RE.pattern})")  # the breaks kept between the clauses
# Words set off by commas that leave a negation reaching past them ("not, unfortunately, refund").
ASIDE_WORDS = frozenset({*FILLERS, "unfortunately", "sadly", "honestly", "actually", "really", "though",
                         "however", "again", "still", "sorry", "afraid", "i'm", "im", "i", "am"})
# Words between a negation and what it negates: "not able to refund", "no way I will refund".
NEGATION_BRIDGES = frozenset({"able", "to", "going", "gonna", "be", "really", "just", "even", "ever", "way"})


def _negated_context(text: str, start: int, end: int) -> bool:
    """Whether the span text[start:end] sits right after a negation, or right before one, in its clause.

    "flying with you again" is verbatim in "Never flying with you again", and "I will" in "I will not":
    quoting them without the negation says the opposite of what was said.
    """
    words = _words_before(text, start)
    if words and words[-1] == "no" and not _answers_after_particle(text, start, end):
        return True
    if any(negates_clause(word) for word in words):
        return True
    if CLAUSE_BREAK_RE.fullmatch(text[end - 1 : end] if end > start else ""):
        # The span closes its own clause ("... miss my flight.") so what follows is another one.
        return False
    after = text[end : end + NEGATION_CONTEXT_CHARS].lower()
    cut = CLAUSE_BREAK_RE.search(after)
    following = WORD_RE.search(after[: cut.start()] if cut else after)
    return following is not None and following.group() in ("not", "never")


def _words_before(text: str, start: int) -> list[str]:
    """The last two words of the span's clause before it, past words that bridge a negation to what it
    negates ("not able to", "no way"), or, when the span opens its clause, the end of the clause before an
    aside between commas if that clause ends in its negation ("I will not, unfortunately, refund": "will
    not"; "I don't know, uh, I'll check" is two clauses)."""
    before = text[max(0, start - 2 * NEGATION_CONTEXT_CHARS) : start].lower()
    pieces = CLAUSE_BREAK_SPLIT_RE.split(before)  # clause, break, clause, ..., the span's own clause last
    own = WORD_RE.findall(pieces[-1])
    if own:
        return _through_bridges(own)[-2:]
    index = len(pieces) - 1
    while (index >= 4 and pieces[index - 1] == "," and pieces[index - 3] == "," and _is_aside(pieces[index - 2])):
        index -= 4
        words = _through_bridges(WORD_RE.findall(pieces[index]))
        if words and _negates(words[-1]):
            return words[-2:]
        if words:
            return []
    return []


def _through_bridges(words: list[str]) -> list[str]:
    """`words` without the bridge words at their end when a negation precedes them ("not able to": "not");
    as they are otherwise ("don't forget to" is no negation of what follows)."""
    kept = list(words)
    while kept and kept[-1] in NEGATION_BRIDGES:
        kept.pop()
    return kept if kept and len(kept) < len(words) and _negates(kept[-1]) else words


def _negates(word: str) -> bool:
    return word == "no" or negates_clause(word)


def _is_aside(clause: str) -> bool:
    words = WORD_RE.findall(clause)
    return bool(words) and all(word in ASIDE_WORDS for word in words)


def _answers_after_particle(text: str, start: int, end: int) -> bool:
    """Whether the "no" right before text[start:end] is a response particle and the span the answer.

    "anything else?" - "no thank you that was it": the "no" opens the turn and answers the question, so
    "thank you that was it" quotes what was said. Only a turn-initial particle counts, and only before a
    word that cannot be what a determiner "no" negates ("no fees apply" keeps its negation).
    """
    opening = WORD_RE.findall(text[:start].lower().replace("’", "'"))
    if not opening or opening[-1] not in NEGATIVE_RESPONSE_PARTICLES:
        return False
    if not all(word in TURN_OPENERS for word in opening[:-1]):
        return False
    answer = WORD_RE.findall(text[start:end].lower().replace("’", "'"))[:1]
    return bool(answer) and answer[0] in ANSWER_OPENERS


def _locate(
    quote: NormalizedText, text: NormalizedText, alignment: ScoreAlignment | None = None
) -> tuple[int, int] | None:
    """The token window of `text` that best matches `quote`: rapidfuzz finds it, tokens refine it.

    `alignment`, when given, is `fuzz.partial_ratio_alignment(quote.joined, text.joined)` already computed.
    """
    if not text.tokens:
        return None
    if len(quote.joined) <= len(text.joined):
        if alignment is None:
            alignment = fuzz.partial_ratio_alignment(quote.joined, text.joined)
        if alignment is None:
            return None
        first = max(bisect_right(text.joined_offsets, alignment.dest_start) - 1, 0)
        last = max(bisect_left(text.joined_offsets, alignment.dest_end), first + 1)
    else:
        first, last = 0, len(text.tokens)
    first, last = _refine_window(quote.joined, text, first, last)
    # Whole source words only: a window ending inside "won't" would hide its "not".
    while _cuts_word_at(text, first):
        first -= 1
    while _cuts_word_at(text, last):
        last += 1
    return first, last


def _refine_window(quote: str, text: NormalizedText, first: int, last: int) -> tuple[int, int]:
    """Move each end of [first, last) one token at a time while the similarity to the quote improves.

    Character-level (not token-level) similarity, so a misrecognized word ("accounts" for "account")
    still pulls the window over it.
    """

    joined, offsets, count = text.joined, text.joined_offsets, len(text.tokens)

    def similarity(a: int, b: int) -> float:
        end = offsets[b] - 1 if b < count else len(joined)
        return fuzz.ratio(quote, joined[offsets[a] : end])

    best = similarity(first, last)
    improved = True
    while improved:
        improved = False
        candidate = (first, last)
        # Steps of up to three tokens, so a run of inserted words does not stop the window early.
        for step in (1, 2, 3):
            for a, b in ((first - step, last), (first + step, last), (first, last + step), (first, last - step)):
                if 0 <= a < b <= count:
                    value = similarity(a, b)
                    if value > best:
                        best, candidate, improved = value, (a, b), True
        first, last = candidate
    return first, last


def _quote_positions(quote: NormalizedText, text: NormalizedText, first: int, last: int) -> list[int]:
    """For each text token in [first, last), the quote token aligned with it (or the previous one)."""
    positions: list[int] = []
    for opcode in Levenshtein.opcodes(quote.tokens, text.tokens[first:last]):
        width = opcode.dest_end - opcode.dest_start
        for offset in range(width):
            if opcode.tag in ("equal", "replace"):
                positions.append(min(opcode.src_start + offset, opcode.src_end - 1))
            else:
                positions.append(max(opcode.src_start - 1, 0))
    return positions


def _judge(
    quote: NormalizedText,
    text: NormalizedText,
    first: int,
    last: int,
    build: SpanBuilder,
) -> _FuzzyVerdict:
    """Decide whether text tokens [first, last) support the quote, and if not, why."""
    span_tokens = text.tokens[first:last]
    score = fuzz.ratio(quote.joined, " ".join(span_tokens)) / 100.0
    if score < FUZZY_MIN_SCORE:
        spans, ranges = build(first, last)
        return _FuzzyVerdict(spans, score, False, None, ranges)
    critical_reason = _critical_mismatch(quote, text, first, last)
    spans, ranges = build(first, last)
    if critical_reason is not None:
        # Close enough to be worth a reason: a critical token differs, whatever the words say.
        return _FuzzyVerdict(spans, score, False, critical_reason, ranges)
    # What the transcript says just outside the span, for quote words at its edges that the span lacks.
    width = len(quote.tokens)
    before = text.tokens[max(first - width, 0) : first]
    after = text.tokens[last : last + width]
    matched, content_edits = _compare_words(quote, span_tokens, before, after)
    if matched / len(quote.tokens) < FUZZY_MIN_QUOTE_COVERAGE:
        return _FuzzyVerdict(spans, score, False, None, ranges)
    if content_edits > FUZZY_MAX_CONTENT_EDITS:
        return _FuzzyVerdict(spans, score, False, Reason.content_mismatch, ranges)
    return _FuzzyVerdict(spans, score, True, None, ranges)


def _compare_words(
    quote: NormalizedText, span_tokens: Sequence[str], before: Sequence[str], after: Sequence[str]
) -> tuple[int, int]:
    """Count quote tokens the span supports, and content words of the quote it does not.

    Differences come in regions (runs of non-equal opcodes). Inside one, a quote word is supported
    by an ASR slip of some span word; a region whose words only differ in spacing ("checkbook" vs
    "check book") is supported whole. Unsupported function words are free; an unsupported pronoun
    or modal is free when dropped, but a swapped one ("I" vs "you") is a content edit. Critical
    tokens are left to the critical-token comparison. Quote words hanging over an edge of the span
    are compared with the transcript words `before` or `after` it: "I will receive" against "you |
    will receive" is a swapped pronoun, not a dropped one.
    """
    matched = 0
    content_edits = 0
    region_quote: list[int] = []
    region_span: list[str] = []

    def close_region() -> None:
        nonlocal matched, content_edits
        if not region_quote:
            return
        words = [quote.tokens[position] for position in region_quote]
        if region_span and "".join(words) == "".join(region_span):
            matched += len(words)
        else:
            remaining = list(region_span)
            if not remaining and region_quote[0] == 0:
                remaining = list(before[max(len(before) - len(words), 0) :])
            elif not remaining and region_quote[-1] == len(quote.tokens) - 1:
                remaining = list(after[: len(words)])
            unsupported: list[int] = []
            for position, word in zip(region_quote, words, strict=True):
                slip = next((other for other in remaining if _is_asr_slip(word, other)), None)
                if slip is not None:
                    matched += 1
                    remaining.remove(slip)
                else:
                    unsupported.append(position)
            content_edits += _unsupported_content(quote, unsupported, remaining)
        region_quote.clear()
        region_span.clear()

    for opcode in Levenshtein.opcodes(quote.tokens, span_tokens):
        if opcode.tag == "equal":
            close_region()
            matched += opcode.src_end - opcode.src_start
        else:
            region_quote.extend(range(opcode.src_start, opcode.src_end))
            region_span.extend(span_tokens[opcode.dest_start : opcode.dest_end])
    close_region()
    return matched, content_edits


def _unsupported_content(quote: NormalizedText, unsupported: Sequence[int], remaining: Sequence[str]) -> int:
    """How many quote tokens at `unsupported` are content the transcript does not back.

    `remaining` is what the transcript says in their place. Critical tokens are not counted here
    (the critical comparison judges them). A function word is free, and so is a dropped pronoun or
    modal, unless the transcript has a content word there that the quote's word replaces ("right
    night" for "last night"), or a different pronoun ("I" for "you"). A discourse marker opening or
    closing the quote is free whatever the transcript has there.
    """
    replaced_content = any(other not in FUNCTION_WORDS and other not in DROPPABLE_WORDS for other in remaining)
    swapped_droppable = any(other in DROPPABLE_WORDS for other in remaining)
    edits = 0
    last = len(quote.tokens) - 1
    for position in unsupported:
        word = quote.tokens[position]
        if quote.kinds[position] in CRITICAL_KINDS:
            continue
        if word in FUNCTION_WORDS and not replaced_content:
            continue
        if word in DISCOURSE_MARKERS and position in (0, last):
            continue  # "okay, one second" heard as "say one second": a leading "okay" claims nothing
        if word in DROPPABLE_WORDS and not replaced_content and not swapped_droppable:
            continue
        edits += 1
    return edits


@functools.lru_cache(maxsize=1 << 16)
def _is_asr_slip(word: str, other: str) -> bool:
    """Two different words that an ASR engine (or a spelling variant) would plausibly confuse."""
    if word in FUNCTION_WORDS and other in FUNCTION_WORDS:
        return frozenset((word, other)) not in OPPOSITE_FUNCTION_WORDS
    if not word.isalpha() or not other.isalpha():
        return False
    longer, shorter = (word, other) if len(word) >= len(other) else (other, word)
    if longer.endswith(shorter) and longer[: -len(shorter)] in NEGATING_PREFIXES:
        return False
    if longer.startswith(shorter) and longer[len(shorter) :] in INFLECTIONS and len(shorter) >= 3:
        return True  # "transfer" / "transferred", "account" / "accounts": same word, other form
    if Levenshtein.distance(word, other) > ASR_SLIP_MAX_EDITS:
        return False
    if jellyfish.jaro_winkler_similarity(word, other) >= ASR_SLIP_MIN_JARO_WINKLER:
        return True
    sound = jellyfish.metaphone(word)
    return len(sound) >= 2 and sound == jellyfish.metaphone(other)


def _critical_mismatch(quote: NormalizedText, text: NormalizedText, first: int, last: int) -> Reason | None:
    """The reason the critical tokens of the quote and of text[first:last] disagree, or None."""
    quote_values = quote.critical_values()
    span_values = text.critical_values(first, last)
    if not quote_values and not span_values:
        return None
    # In order, not as a bag: "no updates ... the bus isn't" and "the bus is ... no news" both hold
    # two negations, but not in the same places.
    if [value for _, value in quote_values] == [value for _, value in span_values]:
        return None
    quote_counts = Counter(value for _, value in quote_values)
    span_counts = Counter(value for _, value in span_values)
    differing = set((quote_counts - span_counts) + (span_counts - quote_counts)) or set(quote_counts)
    kinds = {kind for kind, value in (*quote_values, *span_values) if value in differing}
    for kind, reason in MISMATCH_REASON_BY_KIND:
        if kind in kinds:
            return reason
    return Reason.number_mismatch
