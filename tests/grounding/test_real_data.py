"""The verifier on real transcripts (../shared/data): skipped, with a message, when the data is absent.

A small, fixed slice of what `python -m bench.grounding.run` measures in full.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

import app.grounding.align as align
import app.grounding.claims as claims
import app.text.normalize as normalize_module
from app.grounding import PreparedTranscript, Reason, verify_extraction
from app.schemas.grounding import EvidenceStatus, VerificationReport, VerifiedEvidence
from app.schemas.transcript import Transcript
from app.text.lexicon import CRITICAL_KINDS, NEGATIVE_POLARITY_WORDS
from app.text.normalize import NEGATION_VALUE, NormalizedText, TokenKind, normalize
from bench.grounding.cases import (
    CaseSet,
    _flip_negation,
    _swap_date,
    _swap_id,
    _swap_number,
    build_cases,
    load_harper_valley,
    load_tweetsumm,
)
from tests.grounding.helpers import assert_offsets_slice_original
from tests.support.data import require_shared_data
from tests.text.test_normalize import replaced_drop_stutters

DIALOGS = 120


def test_tweetsumm_gold_spans_are_exact_and_relocate_when_miscited() -> None:
    root = require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl").parents[1]
    checked = 0
    for _, turns, quotes in load_tweetsumm(root)[:DIALOGS]:
        prepared = PreparedTranscript(turns)
        for index, quote in quotes:
            exact = prepared.align_quote(index, quote)
            assert [piece.status for piece in exact] == [EvidenceStatus.exact], (quote, exact)
            assert_offsets_slice_original(turns, exact)
            elsewhere = (index + 1) % len(turns)
            moved = prepared.align_quote(elsewhere, quote)
            assert all(piece.grounded for piece in moved), (quote, moved)
            assert_offsets_slice_original(turns, moved)
            checked += 1
    assert checked > DIALOGS


def test_harper_valley_changed_amounts_are_caught_against_the_asr_text() -> None:
    root = require_shared_data("harper_valley_bank").parent
    rng = random.Random(7)
    tens = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    checked = 0
    for _, human, asr in load_harper_valley(root):
        prepared = PreparedTranscript(asr)
        for index, (said, heard) in enumerate(zip(human, asr, strict=True)):
            if said.text != heard.text or "dollars" not in said.text:
                continue
            present = [word for word in tens if f" {word} " in f" {said.text} "]
            if not present:
                continue
            word = rng.choice(present)
            changed = f" {said.text} ".replace(f" {word} ", f" {rng.choice([w for w in tens if w != word])} ", 1)
            evidence = prepared.align_quote(index, changed.strip())
            assert all(not piece.grounded for piece in evidence), (said.text, changed, evidence)
            checked += 1
    assert checked >= 10


def test_fabrications_get_the_same_answer_with_and_without_the_cited_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzzy stage may stop at the cited utterance's refusal (see `_decided_at_cited`): on real dialogs
    and the fabrications the benchmark makes, that never changes an answer."""
    root = require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl").parents[1]
    rng = random.Random(11)
    cases = []
    for _, turns, quotes in load_tweetsumm(root)[:DIALOGS]:
        for index, quote in quotes:
            swapped = _swap_number(quote, rng)
            fabrications = (_flip_negation(quote), _swap_date(quote, rng), _swap_id(quote, rng))
            for fabricated in (swapped[0] if swapped else None, *fabrications):
                if fabricated is not None:
                    cases.append((turns, index, fabricated))
    assert len(cases) > 100

    def answers() -> list[object]:
        prepared: dict[int, PreparedTranscript] = {}
        return [
            prepared.setdefault(id(turns), PreparedTranscript(turns)).align_quote(index, quote)
            for turns, index, quote in cases
        ]

    with_shortcut = answers()
    monkeypatch.setattr(PreparedTranscript, "_decided_at_cited", lambda *_: None)
    assert with_shortcut == answers()


# --- the cheaper paths against the code they replaced ------------------------------------------------
#
# Verification was made cheaper without changing an answer: critical values remembered per normalized
# text and tested by identity, speaker blocks laid out only when needed (behind one string search), the
# negation context found with one regex, the claim detail check on plain dicts, stutters ruled out at a
# word's first piece. Below, the code each of those replaced, put back with monkeypatch, must give the
# same evidence and the same reports on real dialogs and on every kind of fabrication the benchmark makes.

CASES_PER_CATEGORY = 300


def _replaced_critical_values(
    self: NormalizedText, first: int = 0, last: int | None = None
) -> tuple[tuple[TokenKind, str], ...]:
    stop = len(self.tokens) if last is None else last
    values: list[tuple[TokenKind, str]] = []
    for position in range(first, stop):
        kind = self.kinds[position]
        if kind in CRITICAL_KINDS:
            value = NEGATION_VALUE if kind is TokenKind.negation else self.tokens[position]
            values.append((kind, value))
    return tuple(values)


def _replaced_negated_context(text: str, start: int, end: int) -> bool:
    words = align._words_before(text, start)  # what comes before the span is not what this test compares
    if words and words[-1] == "no" and not align._answers_after_particle(text, start, end):
        return True
    if any(normalize_module.negates_clause(word) for word in words):  # the same words as negations
        return True
    if align.CLAUSE_BREAK_RE.fullmatch(text[end - 1 : end] if end > start else ""):
        return False
    after = text[end : end + align.NEGATION_CONTEXT_CHARS].lower()
    cut = align.CLAUSE_BREAK_RE.search(after)
    following = align.WORD_RE.findall(after[: cut.start()] if cut else after)[:1]
    return bool(following) and following[0] in ("not", "never")


def _replaced_texts_profile(texts: Sequence[str]) -> tuple[Counter[str], set[str]]:
    evidence_values: Counter[str] = Counter()
    evidence_words: set[str] = set()
    for text in texts:
        span = normalize(text)
        evidence_values.update(value for _, value in span.critical_values())
        evidence_words.update(span.tokens)
    return evidence_values, evidence_words


def _replaced_unsupported_detail(
    claim_values: Sequence[tuple[TokenKind, str]], evidence_counts: Counter[str], evidence_words: set[str]
) -> Reason | None:
    evidence_values = evidence_counts.copy()
    for kind, value in claim_values:
        if kind is TokenKind.negation:
            if evidence_values[NEGATION_VALUE] or evidence_words & NEGATIVE_POLARITY_WORDS:
                continue
            return Reason.unsupported_negation
        if evidence_values[value] > 0:
            evidence_values[value] -= 1
            continue
        if kind is TokenKind.id:
            return Reason.unsupported_id
        if kind is TokenKind.date and not any(character.isdigit() for character in value):
            return Reason.unsupported_date
        if kind in claims.NUMERIC_KINDS or kind is TokenKind.date:
            if value.isalpha():
                continue
            return Reason.unsupported_number
    return None


class _EverythingIn(str):
    """A search text that holds every quote: the block search then tries every block, as it used to."""

    def __contains__(self, _: object) -> bool:
        return True


def _put_back_replaced_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NormalizedText, "critical_values", _replaced_critical_values)
    monkeypatch.setattr(align, "_negated_context", _replaced_negated_context)
    monkeypatch.setattr(claims, "_texts_profile", _replaced_texts_profile)
    monkeypatch.setattr(claims, "_unsupported_detail", _replaced_unsupported_detail)
    monkeypatch.setattr(PreparedTranscript, "_blocks_search_text", lambda _: _EverythingIn())
    monkeypatch.setattr(normalize_module, "_drop_stutters", replaced_drop_stutters)


def _quotes_over_turn_breaks(case_set: CaseSet, limit: int = 600) -> list[tuple[str, int, str]]:
    """The end of one turn and the start of the next by the same speaker, quoted as one: what the block
    search finds (cited at the first turn, and one turn off)."""
    quotes: list[tuple[str, int, str]] = []
    for transcript_id, turns in case_set.transcripts.items():
        for index in range(len(turns) - 1):
            first, second = turns[index], turns[index + 1]
            if first.speaker != second.speaker or len(quotes) >= limit:
                continue
            tail, head = first.text.split()[-3:], second.text.split()[:3]
            if len(tail) == 3 and len(head) == 3:
                quote = " ".join((*tail, *head))
                quotes += [(transcript_id, index, quote), (transcript_id, max(index - 1, 0), quote)]
    return quotes


@pytest.fixture(scope="module")
def case_set() -> CaseSet:
    require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl")
    require_shared_data("harper_valley_bank")
    return build_cases()


def test_cheaper_verification_answers_as_the_code_it_replaced(
    case_set: CaseSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: Counter[str] = Counter()
    cases = []
    for case in case_set.cases:
        if taken[case.category] < CASES_PER_CATEGORY:
            taken[case.category] += 1
            cases.append(case)
    quotes = [(case.transcript_id, case.cited, case.quote) for case in cases] + _quotes_over_turn_breaks(case_set)
    claim_cases = case_set.claim_cases

    def answers() -> tuple[list[list[VerifiedEvidence]], list[VerificationReport]]:
        normalize.cache_clear()  # each side normalizes afresh, with its own code
        prepared: dict[str, PreparedTranscript] = {}
        evidence = [
            prepared.setdefault(transcript_id, PreparedTranscript(case_set.transcripts[transcript_id]))
            .align_quote(cited, quote)
            for transcript_id, cited, quote in quotes
        ]
        reports = [
            verify_extraction(Transcript(utterances=case_set.transcripts[case.transcript_id]), case.extraction())
            for case in claim_cases
        ]
        return evidence, reports

    cheaper = answers()
    _put_back_replaced_code(monkeypatch)
    replaced = answers()
    normalize.cache_clear()  # no text normalized by the code put back outlives the test

    assert len(cheaper[0]) == len(replaced[0]) and len(cheaper[1]) == len(replaced[1])
    for quote, ours, theirs in zip(quotes, cheaper[0], replaced[0], strict=True):
        assert [piece.model_dump() for piece in ours] == [piece.model_dump() for piece in theirs], quote
    for case, ours_report, their_report in zip(claim_cases, cheaper[1], replaced[1], strict=True):
        assert ours_report.model_dump() == their_report.model_dump(), case
    # The sample reaches every stage of the search and every claim check.
    statuses = {piece.status for answer in cheaper[0] for piece in answer}
    assert statuses == set(EvidenceStatus)
    over_turn_breaks = sum(len({piece.utterance for piece in answer if piece.grounded}) > 1 for answer in cheaper[0])
    assert over_turn_breaks > 100
    reasons = {claim.reason for report in cheaper[1] for claim in report.claims}
    assert {None, "unsupported_number", "owner_mismatch", "speaker_mismatch"} <= reasons
