"""Windowing long transcripts and merging the per-window answers."""

from __future__ import annotations

import itertools

import pytest

from app.llm.openai_windows import merge_extractions, plan_windows, similar_texts, utterance_tokens
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement
from app.schemas.transcript import Role, Utterance


def utterances(texts: list[str]) -> list[Utterance]:
    return [Utterance(index=i, speaker="S", role=Role.agent, text=text) for i, text in enumerate(texts)]


def statement(text: str, utterance: int) -> Statement:
    return Statement(text=text, evidence=[EvidenceRef(utterance=utterance, quote=f"quote {utterance}")])


def test_a_transcript_within_budget_is_one_window() -> None:
    lines = utterances([f"short line {i}" for i in range(10)])

    assert plan_windows(lines, budget_tokens=10_000) == [lines]


def test_windows_respect_the_budget_overlap_and_cover_everything() -> None:
    lines = utterances([f"utterance number {i} " + "w" * (20 + 7 * (i % 5)) for i in range(100)])
    budget = 200

    windows = plan_windows(lines, budget)

    assert len(windows) > 3
    for window in windows:
        assert sum(utterance_tokens(u) for u in window) <= budget
        indices = [u.index for u in window]
        assert indices == list(range(indices[0], indices[-1] + 1))
    assert windows[0][0].index == 0
    assert windows[-1][-1].index == 99
    for before, after in itertools.pairwise(windows):
        assert after[0].index <= before[-1].index  # at least one utterance repeated
        assert after[0].index > before[0].index  # always moving forward


def test_an_utterance_larger_than_the_budget_travels_whole_and_alone() -> None:
    giant = "g" * 4_000
    lines = utterances(["hello", giant, "bye"])

    windows = plan_windows(lines, budget_tokens=100)

    assert [u.text for u in windows[1]] == [giant]
    assert {u.index for window in windows for u in window} == {0, 1, 2}


def test_plan_windows_rejects_a_non_positive_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_windows(utterances(["x"]), 0)


def test_merge_folds_duplicates_and_unites_their_evidence() -> None:
    first = Extraction(
        summary=[statement("Customer reported a double charge of $30.", 2), statement("Agent verified identity.", 4)],
        reason=statement("Double charge.", 1),
        outcome=statement("Pending.", 9),
    )
    second = Extraction(
        summary=[statement("The customer reported a double charge of $30", 9), statement("Refund issued.", 15)],
        reason=statement("Something later.", 10),
        outcome=statement("Refund issued, resolved.", 20),
    )

    merged = merge_extractions([first, second])

    assert [s.text for s in merged.summary] == [
        "Customer reported a double charge of $30.",
        "Agent verified identity.",
        "Refund issued.",
    ]
    assert [ref.utterance for ref in merged.summary[0].evidence] == [2, 9]
    assert merged.reason is not None
    assert merged.reason.text == "Double charge."
    assert merged.outcome is not None
    assert merged.outcome.text == "Refund issued, resolved."


def test_merge_keeps_statements_whose_numbers_differ() -> None:
    merged = merge_extractions(
        [
            Extraction(summary=[statement("Refund of $30 promised.", 1)]),
            Extraction(summary=[statement("Refund of $50 promised.", 8)]),
        ]
    )

    assert len(merged.summary) == 2


def test_merge_keeps_action_items_with_different_owners() -> None:
    def item(owner: Owner, utterance: int) -> ActionItem:
        evidence = [EvidenceRef(utterance=utterance, quote="q")]
        return ActionItem(text="Send the signed form.", owner=owner, evidence=evidence)

    merged = merge_extractions(
        [
            Extraction(action_items=[item(Owner.customer, 3)]),
            Extraction(action_items=[item(Owner.agent, 12), item(Owner.customer, 13)]),
        ]
    )

    assert [(a.owner, [r.utterance for r in a.evidence]) for a in merged.action_items] == [
        (Owner.customer, [3, 13]),
        (Owner.agent, [12]),
    ]


def test_merge_takes_reason_and_outcome_from_whichever_window_has_them() -> None:
    merged = merge_extractions(
        [
            Extraction(outcome=statement("Early outcome.", 1)),
            Extraction(reason=statement("Late reason.", 9)),
            Extraction(),
        ]
    )

    assert merged.reason is not None
    assert merged.reason.text == "Late reason."
    assert merged.outcome is not None
    assert merged.outcome.text == "Early outcome."


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("Agent will call back tomorrow.", "The agent will call back tomorrow", True),
        ("Agent will call back tomorrow.", "Customer will call back tomorrow.", False),
        ("Refund in 5 days.", "Refund in 7 days.", False),
    ],
)
def test_similar_texts(first: str, second: str, same: bool) -> None:
    assert similar_texts(first, second) is same
