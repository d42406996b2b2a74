"""The restatement rule (app/pipeline/dedup.py) and the case note (app/pipeline/note.py), on real outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from app.ingest import load_transcript
from app.llm.heuristic import extract_heuristic
from app.pipeline.dedup import deduplicate, dropped_restatements
from app.pipeline.note import MAX_NOTE_SENTENCES, case_note
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE_PATHS = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".json", ".txt"})


def _statement(text: str, utterance: int = 0) -> Statement:
    return Statement(text=text, evidence=[EvidenceRef(utterance=utterance, quote=text)])


# What the heuristic wrote for samples/bank_lost_card.json before this rule existed (the demo's first
# call): the summary repeated the reason and the outcome, and an action item the summary's last line.
BANK_BEFORE = Extraction(
    reason=_statement("The customer says they're calling because they lost their debit card.", 1),
    outcome=_statement("Resolved: the agent has also ordered a replacement debit card to the address the "
                       "company has on file, 22 Elm Road.", 13),
    summary=[
        _statement("The customer says they're calling because they lost their debit card.", 1),
        _statement("The agent has blocked the card ending in 6467, so nobody can use it from now on.", 11),
        _statement("Resolved: the agent has also ordered a replacement debit card to the address the company has "
                   "on file, 22 Elm Road.", 13),
        _statement("The new card will arrive within 5 to 7 business days.", 15),
    ],
    action_items=[
        ActionItem(text="The new card will arrive within 5 to 7 business days.", owner=Owner.agent,
                   due="within 5 to 7 business days",
                   evidence=[EvidenceRef(utterance=15, quote="The new card will arrive within 5 to 7 business days.")]),
    ],
)


def test_restatements_keep_the_richest_placement() -> None:
    deduped = deduplicate(BANK_BEFORE)
    # The reason, the outcome and the dated item stay where they are; the summary keeps only what is new.
    assert deduped.reason == BANK_BEFORE.reason
    assert deduped.outcome == BANK_BEFORE.outcome
    assert deduped.action_items == BANK_BEFORE.action_items
    assert [s.text for s in deduped.summary] == [
        "The agent has blocked the card ending in 6467, so nobody can use it from now on."
    ]
    assert sorted(dropped_restatements(BANK_BEFORE)) == [("summary", 0), ("summary", 2), ("summary", 3)]


def test_an_outcome_restating_an_action_item_gives_way_to_the_item() -> None:
    item = ActionItem(text="A technician will visit tomorrow between 8 and 12", owner=Owner.other,
                      due="tomorrow between 8 and 12",
                      evidence=[EvidenceRef(utterance=5, quote="a technician will visit tomorrow between 8 and 12")])
    extraction = Extraction(
        reason=_statement("Internet down since last night", 1),
        outcome=_statement("Pending: a technician will visit tomorrow between 8 and 12", 5),
        action_items=[item],
    )
    deduped = deduplicate(extraction)
    assert deduped.outcome is None
    assert deduped.action_items == [item]


def test_different_numbers_or_negations_are_never_merged() -> None:
    # A fabricated amount must not hide behind its verified twin: both stay, the verifier flags one.
    real = _statement("The agent refunded the $50 late fee", 3)
    fabricated = _statement("The agent refunded the $500 late fee", 3)
    negated = _statement("The agent has not refunded the $50 late fee", 3)
    extraction = Extraction(outcome=real, summary=[fabricated, negated])
    assert deduplicate(extraction) == extraction


def test_distinct_statements_are_all_kept() -> None:
    extraction = Extraction(
        reason=_statement("The caller lost their card", 1),
        outcome=_statement("Resolved: a replacement card was ordered", 5),
        summary=[_statement("The card was blocked after a check of recent transactions", 3)],
    )
    assert dropped_restatements(extraction) == []


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda p: p.name)
def test_heuristic_output_has_no_restatement_left_to_drop(path: Path) -> None:
    """The offline extractor's own summary joins facts instead of repeating a field."""
    extraction = extract_heuristic(load_transcript(path).transcript)
    assert dropped_restatements(extraction) == []
    assert not any('said "' in s.text or 'asked "' in s.text for s in extraction.summary)


@dataclass(frozen=True)
class _Item:
    kind: str
    text: str
    owner: str | None = None
    due: str | None = None


def test_case_note_is_two_to_four_sentences_without_repeats() -> None:
    deduped = deduplicate(BANK_BEFORE)
    items = [_Item("reason", deduped.reason.text), _Item("outcome", deduped.outcome.text)]  # type: ignore[union-attr]
    items += [_Item("summary", s.text) for s in deduped.summary]
    items += [_Item("action_item", "The agent will email a confirmation", "agent", "today")]
    note = case_note(items)
    assert note == (
        "The customer says they're calling because they lost their debit card. "
        "The agent has blocked the card ending in 6467, so nobody can use it from now on. "
        "Resolved: the agent has also ordered a replacement debit card to the address the company has on file, "
        "22 Elm Road. Next: the agent will email a confirmation (today)."
    )


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda p: p.name)
def test_case_note_of_every_sample(path: Path) -> None:
    extraction = extract_heuristic(load_transcript(path).transcript)
    items = [_Item("reason", extraction.reason.text)] if extraction.reason else []
    items += [_Item("outcome", extraction.outcome.text)] if extraction.outcome else []
    items += [_Item("summary", s.text) for s in extraction.summary]
    items += [_Item("action_item", a.text, a.owner.value, a.due) for a in extraction.action_items]
    note = case_note(items)
    sentences = [s for s in note.replace("a.m.", "am").replace("p.m.", "pm").replace("Dr.", "Dr")
                 .split(". ") if s.strip()]
    assert 2 <= len(sentences) <= MAX_NOTE_SENTENCES, note
    assert extraction.reason is not None
    assert extraction.reason.text.rstrip(".")[:40] in note


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=lambda p: p.name)
def test_shared_word_and_value_sets_are_the_ones_computed_afresh(path: Path) -> None:
    """`content_words` and `critical_values` are remembered per text (de-duplication and the case note read
    the same statements): a remembered answer must be the one computed afresh, and immutable."""
    from app.pipeline.dedup import content_words, critical_values

    extraction = extract_heuristic(load_transcript(path).transcript)
    texts = [s.text for s in (extraction.reason, extraction.outcome, *extraction.summary, *extraction.action_items)
             if s is not None]
    assert texts
    for text in texts:
        for remembered in (content_words, critical_values):
            first, again = remembered(text), remembered(text)
            assert again is first  # shared, not recomputed
            assert first == remembered.__wrapped__(text)  # type: ignore[attr-defined]
            assert isinstance(first, frozenset)
