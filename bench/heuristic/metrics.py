"""Scoring helpers for the heuristic benchmark: ROUGE-1/2/L, reason-vs-task matching, evidence checks.

ROUGE here is the plain textbook definition (lowercased word tokens, no stemming, F1), written out so
the benchmark needs no extra dependency; figures are comparable between runs of this benchmark, and
close to, not identical with, `rouge-score` without its stemmer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from app.llm.heuristic_text import critical_tokens_preserved
from app.schemas.extraction import Extraction, Owner, Statement
from app.schemas.transcript import Role, Transcript

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Rouge:
    rouge1: float
    rouge2: float
    rougeL: float


def _f1(overlap: int, candidate: int, reference: int) -> float:
    if overlap == 0 or candidate == 0 or reference == 0:
        return 0.0
    precision, recall = overlap / candidate, overlap / reference
    return 2 * precision * recall / (precision + recall)


def _ngram_f1(candidate: list[str], reference: list[str], n: int) -> float:
    cand = Counter(tuple(candidate[i : i + n]) for i in range(len(candidate) - n + 1))
    ref = Counter(tuple(reference[i : i + n]) for i in range(len(reference) - n + 1))
    return _f1(sum((cand & ref).values()), sum(cand.values()), sum(ref.values()))


def _lcs_length(left: Sequence[str], right: Sequence[str]) -> int:
    previous = [0] * (len(right) + 1)
    for a in left:
        current = [0]
        for j, b in enumerate(right):
            current.append(previous[j] + 1 if a == b else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge(candidate: str, reference: str) -> Rouge:
    cand, ref = tokenize(candidate), tokenize(reference)
    return Rouge(
        rouge1=_ngram_f1(cand, ref, 1),
        rouge2=_ngram_f1(cand, ref, 2),
        rougeL=_f1(_lcs_length(cand, ref), len(cand), len(ref)),
    )


def mean_rouge(candidate: str, references: Sequence[str]) -> Rouge:
    """Average F1 over the references (TweetSumm gives three per dialog)."""
    scores = [rouge(candidate, reference) for reference in references]
    count = max(len(scores), 1)
    return Rouge(
        rouge1=sum(s.rouge1 for s in scores) / count,
        rouge2=sum(s.rouge2 for s in scores) / count,
        rougeL=sum(s.rougeL for s in scores) / count,
    )


# Keywords by which a reason statement names each Harper Valley task type.
HARPER_TASK_KEYWORDS: dict[str, frozenset[str]] = {
    "replace card": frozenset({"card", "replace", "replacement", "lost", "stolen"}),
    "pay bill": frozenset({"bill", "pay", "payment"}),
    "reset password": frozenset({"password", "reset", "login"}),
    "transfer money": frozenset({"transfer", "money", "move"}),
    "check balance": frozenset({"balance"}),
    "get branch hours": frozenset({"hours", "open", "branch"}),
    "order checks": frozenset({"checks", "checkbook", "cheques", "book"}),
    "schedule appointment": frozenset({"appointment", "schedule", "meeting"}),
}


def predicted_task(reason: Statement | None) -> str | None:
    """The task type whose keywords the reason (text and quotes) mentions most; None on no mention."""
    if reason is None:
        return None
    tokens = set(tokenize(reason.text + " " + " ".join(e.quote for e in reason.evidence)))
    scored = [(len(tokens & keywords), task) for task, keywords in HARPER_TASK_KEYWORDS.items()]
    best = max(scored)
    return best[1] if best[0] > 0 else None


def claims(extraction: Extraction) -> list[Statement]:
    found: list[Statement] = [*extraction.summary, *extraction.action_items]
    found += [s for s in (extraction.reason, extraction.outcome) if s is not None]
    return found


@dataclass(frozen=True)
class EvidenceCheck:
    quotes: int
    exact: int  # quote is a verbatim substring of the cited utterance
    unsupported_claims: int  # claim text carries a number/negation its quotes lack
    agent_items_on_customer: int  # agent-owned items citing a customer utterance


def check_evidence(transcript: Transcript, extraction: Extraction) -> EvidenceCheck:
    texts = [u.text for u in transcript.utterances]
    quotes = exact = unsupported = on_customer = 0
    for claim in claims(extraction):
        for ref in claim.evidence:
            quotes += 1
            exact += ref.utterance < len(texts) and ref.quote in texts[ref.utterance]
        if not critical_tokens_preserved(claim.text, [e.quote for e in claim.evidence]):
            unsupported += 1
    for item in extraction.action_items:
        if item.owner is Owner.agent and any(
            transcript.utterances[e.utterance].role is Role.customer for e in item.evidence
        ):
            on_customer += 1
    return EvidenceCheck(quotes, exact, unsupported, on_customer)


# A statement "restates an utterance" when one utterance it cites holds this share of its content words.
RESTATEMENT_SHARE = 0.7


def restates_single_utterance(transcript: Transcript, statement: Statement) -> bool:
    """One cited utterance holds >= 70% of the statement's content words (the wording of the pipeline's
    restatement rule: normalized words, no function or role words such as "customer", "said")."""
    from app.pipeline.dedup import content_words

    wanted = content_words(statement.text)
    if not wanted:
        return False
    cited = {ref.utterance for ref in statement.evidence if ref.utterance < len(transcript.utterances)}
    return any(
        len(wanted & content_words(transcript.utterances[index].text)) >= RESTATEMENT_SHARE * len(wanted)
        for index in cited
    )
