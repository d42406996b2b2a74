"""The verifier on real transcripts (../shared/data): skipped, with a message, when the data is absent.

A small, fixed slice of what `python -m bench.grounding.run` measures in full.
"""

from __future__ import annotations

import random

import pytest

from app.grounding import PreparedTranscript
from app.schemas.grounding import EvidenceStatus
from bench.grounding.cases import _flip_negation, _swap_date, _swap_id, _swap_number, load_harper_valley, load_tweetsumm
from tests.grounding.helpers import assert_offsets_slice_original
from tests.support.data import require_shared_data

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
