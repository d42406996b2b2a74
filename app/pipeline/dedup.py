"""One statement, one placement: drop restatements across reason, outcome, summary and action items.

Providers repeat themselves: a summary that opens with the reason and closes with the outcome, an
outcome that is the last action item again. A reviewer then approves the same sentence two or three
times. This rule runs on every provider's extraction, after extraction and before verification, so the
verifier checks, and the reviewer sees, only what is stored.

Where a statement goes decides how useful it is, so the richest placement keeps it:
    action item (owner, due date: it can be tracked)  >  reason, outcome (the call's headline)  >  summary.
A statement is dropped only when another one *covers* it: at least `COVERED_SHARE` of its content words
are in the other, and every critical value it holds (number, amount, date, time, negation) is in the
other too. So dropping never loses a detail, and a fabricated amount never hides behind a verified twin:
"$500 refund" and "$50 refund" are different statements, both kept, and the wrong one is flagged.

Which pairs are compared, and why:
- a summary statement against everything (the summary is the residue: what no other field says);
- the outcome against action items (an outcome that only restates the open item adds nothing);
- action items against each other, and summary statements against each other.
The reason is never dropped: it answers a different question (why they called) than any item.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from app.schemas.extraction import ActionItem, Extraction, Statement
from app.text.normalize import TokenKind, normalize

# Share of a statement's content words another statement must hold to cover it.
COVERED_SHARE = 0.8
# Below this many content words a statement is compared by equality only (too little to measure).
MIN_CONTENT_WORDS = 2

_STOP_WORDS = frozenset(
    {
        "a", "an", "the", "and", "or", "but", "to", "of", "for", "on", "in", "at", "by", "with", "from", "about",
        "as", "into", "onto", "that", "this", "these", "those", "it", "its", "is", "are", "was", "were", "be",
        "been", "being", "has", "have", "had", "do", "does", "did", "will", "would", "can", "could", "should",
        "shall", "may", "might", "must", "i", "me", "my", "we", "us", "our", "you", "your", "he", "him", "his",
        "she", "her", "they", "them", "their", "there", "here", "so", "then", "than", "also", "just", "very",
        "all", "any", "some", "up", "out", "if", "when", "once", "which", "who", "what", "how", "now", "again",
        "customer", "customers", "caller", "agent", "agents", "company", "customer's", "agent's", "company's", "says",
        "said", "asked", "s",
    }
)  # fmt: skip

# Higher keeps the statement when two placements say the same thing.
_RANK = {"action_item": 3, "reason": 2, "outcome": 2, "summary": 1}
# (dropped kind, keeping kind) pairs the rule compares; see the module docstring.
_COMPARED = frozenset(
    {
        ("summary", "summary"), ("summary", "reason"), ("summary", "outcome"), ("summary", "action_item"),
        ("outcome", "action_item"), ("action_item", "action_item"),
    }
)  # fmt: skip


# A leading label ("Resolved: ", "Pending follow-up: "): "Pending: X" restates X.
_LABEL = re.compile(r"^\s*[A-Za-z][A-Za-z -]{0,30}:\s")


# A call's statements are read here by de-duplication and again by the case note written with its result
# (app/pipeline/note.py), each text several times; the results are immutable, so those reads share them.
# Bounded, as `normalize` is: a worker sees endless distinct texts.
@functools.lru_cache(maxsize=4096)
def content_words(text: str) -> frozenset[str]:
    """The words that carry a statement's content (normalized tokens, no function or role words, no
    leading label)."""
    normalized = normalize(_LABEL.sub("", text, count=1))
    return frozenset(
        token
        for token, kind in zip(normalized.tokens, normalized.kinds, strict=True)
        if kind is TokenKind.word and token not in _STOP_WORDS and len(token) > 1
    )


@functools.lru_cache(maxsize=4096)
def critical_values(text: str) -> frozenset[tuple[TokenKind, str]]:
    return frozenset(normalize(text).critical_values())


@dataclass(frozen=True)
class _Entry:
    kind: str
    position: int  # within its kind
    statement: Statement
    words: frozenset[str]
    critical: frozenset[tuple[TokenKind, str]]

    @property
    def richness(self) -> tuple[int, int, int, int, int]:
        due = int(isinstance(self.statement, ActionItem) and self.statement.due is not None)
        # Earlier wins the last tie, so the rule is deterministic.
        return (_RANK[self.kind], due, len(self.statement.evidence), len(self.words), -self.position)


def covers(keeper: _Entry, other: _Entry) -> bool:
    """`keeper` says everything `other` says: its content words (mostly) and every critical value."""
    if not other.critical <= keeper.critical:
        return False
    if len(other.words) < MIN_CONTENT_WORDS:
        return bool(other.words) and other.words == keeper.words
    return len(other.words & keeper.words) >= COVERED_SHARE * len(other.words)


def _entries(extraction: Extraction) -> list[_Entry]:
    placed: list[tuple[str, int, Statement]] = []
    if extraction.reason is not None:
        placed.append(("reason", 0, extraction.reason))
    if extraction.outcome is not None:
        placed.append(("outcome", 0, extraction.outcome))
    placed += [("summary", i, s) for i, s in enumerate(extraction.summary)]
    placed += [("action_item", i, s) for i, s in enumerate(extraction.action_items)]
    return [_Entry(kind, pos, s, content_words(s.text), critical_values(s.text)) for kind, pos, s in placed]


def dropped_restatements(extraction: Extraction) -> list[tuple[str, int]]:
    """(kind, position) of every statement another placement covers, richest placement first."""
    kept: list[_Entry] = []
    dropped: list[tuple[str, int]] = []
    for entry in sorted(_entries(extraction), key=lambda e: e.richness, reverse=True):
        if any((entry.kind, keeper.kind) in _COMPARED and covers(keeper, entry) for keeper in kept):
            dropped.append((entry.kind, entry.position))
        else:
            kept.append(entry)
    return dropped


def deduplicate(extraction: Extraction) -> Extraction:
    """The extraction without restatements; order within each field is kept."""
    dropped = set(dropped_restatements(extraction))
    if not dropped:
        return extraction
    return extraction.model_copy(
        update={
            "reason": extraction.reason,
            "outcome": None if ("outcome", 0) in dropped else extraction.outcome,
            "summary": [s for i, s in enumerate(extraction.summary) if ("summary", i) not in dropped],
            "action_items": [a for i, a in enumerate(extraction.action_items) if ("action_item", i) not in dropped],
        }
    )
