"""Long calls: split a transcript into overlapping windows of whole utterances, merge the answers.

A transcript whose prompt would exceed the input budget is never truncated. It is cut into windows
of whole utterances that overlap a little (so a commitment spoken across a cut is seen whole at
least once), each window is extracted on its own with the utterances' *global* indices, and the
per-window answers are merged here, duplicates from the overlaps folded together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from rapidfuzz import fuzz

from app.llm.prompt import rendered_line
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Statement
from app.schemas.transcript import Utterance

# A deliberately rough token estimate: English text averages about four characters per token for
# OpenAI tokenizers. Being a little pessimistic only costs an extra window; tiktoken would be exact
# for OpenAI models but not for the local servers we also support, and it is a heavy dependency.
CHARS_PER_TOKEN = 4
# Share of a window's transcript budget repeated at the start of the next window.
WINDOW_OVERLAP_FRACTION = 0.1
# Two statements from different windows are the same statement above this rapidfuzz
# token_sort_ratio (0-100) on normalized text, provided their numbers agree.
DUPLICATE_TEXT_SIMILARITY = 85.0

_NON_WORD = re.compile(r"[^\w\s]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

StatementT = TypeVar("StatementT", bound=Statement)


def estimate_tokens(text: str) -> int:
    """Upper-leaning estimate of the tokens `text` costs in a prompt."""
    return len(text) // CHARS_PER_TOKEN + 1


def utterance_tokens(utterance: Utterance) -> int:
    """Tokens of one rendered transcript line (plus its newline)."""
    return estimate_tokens(rendered_line(utterance)) + 1


def plan_windows(utterances: Sequence[Utterance], budget_tokens: int) -> list[list[Utterance]]:
    """Cut `utterances` into consecutive windows of whole utterances, each within `budget_tokens`.

    Consecutive windows overlap by about `WINDOW_OVERLAP_FRACTION` of the budget (at least one
    utterance when possible). An utterance larger than the whole budget gets a window of its own:
    it is sent whole rather than cut, and the server decides whether it fits its context.
    """
    if budget_tokens <= 0:
        raise ValueError("budget_tokens must be positive")
    costs = [utterance_tokens(u) for u in utterances]
    if sum(costs) <= budget_tokens:
        return [list(utterances)]

    overlap_budget = int(budget_tokens * WINDOW_OVERLAP_FRACTION)
    windows: list[list[Utterance]] = []
    start = 0
    while start < len(utterances):
        end = start
        used = 0
        while end < len(utterances) and (end == start or used + costs[end] <= budget_tokens):
            used += costs[end]
            end += 1
        windows.append(list(utterances[start:end]))
        if end >= len(utterances):
            break
        # Step back from the cut while the repeated tail stays within the overlap budget,
        # always moving forward by at least one utterance.
        next_start = end
        repeated = 0
        while next_start - 1 > start and repeated + costs[next_start - 1] <= overlap_budget:
            next_start -= 1
            repeated += costs[next_start]
        if next_start == end and end - 1 > start:
            next_start = end - 1  # the overlap budget is smaller than the last line: repeat it anyway
        start = next_start
    return windows


def merge_extractions(parts: Sequence[Extraction]) -> Extraction:
    """Fold per-window answers into one: duplicates merged, evidence united, order kept.

    `reason` comes from the first window that states one (why people call is said early) and
    `outcome` from the last window that states one (how the call ended is said late).
    """
    if len(parts) == 1:
        return parts[0]
    summary: list[Statement] = []
    action_items: list[ActionItem] = []
    for part in parts:
        for statement in part.summary:
            _add_or_fold(summary, statement, _same_statement)
        for item in part.action_items:
            _add_or_fold(action_items, item, _same_action_item)
    reason = next((part.reason for part in parts if part.reason is not None), None)
    outcome = next((part.outcome for part in reversed(parts) if part.outcome is not None), None)
    return Extraction(summary=summary, action_items=action_items, reason=reason, outcome=outcome)


def _add_or_fold(
    merged: list[StatementT],
    candidate: StatementT,
    same: Callable[[StatementT, StatementT], bool],
) -> None:
    for position, kept in enumerate(merged):
        if same(kept, candidate):
            merged[position] = kept.model_copy(
                update={"evidence": _union_evidence(kept.evidence, candidate.evidence)}
            )
            return
    merged.append(candidate)


def _same_statement(first: Statement, second: Statement) -> bool:
    return similar_texts(first.text, second.text)


def _same_action_item(first: ActionItem, second: ActionItem) -> bool:
    if first.owner is not second.owner:
        return False
    if first.due is not None and second.due is not None and not similar_texts(first.due, second.due):
        return False
    return similar_texts(first.text, second.text)


def similar_texts(first: str, second: str) -> bool:
    """True when two claim texts say the same thing: near-identical wording and the same numbers."""
    left, right = _normalize(first), _normalize(second)
    if _NUMBER.findall(left) != _NUMBER.findall(right):
        return False
    return fuzz.token_sort_ratio(left, right) >= DUPLICATE_TEXT_SIMILARITY


def _normalize(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def _union_evidence(first: Sequence[EvidenceRef], second: Sequence[EvidenceRef]) -> list[EvidenceRef]:
    seen = {(ref.utterance, ref.quote) for ref in first}
    union = list(first)
    for ref in second:
        if (ref.utterance, ref.quote) not in seen:
            seen.add((ref.utterance, ref.quote))
            union.append(ref)
    return union
