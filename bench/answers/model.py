"""A deterministic stand-in model for benchmarks and answer comparisons: it reads the transcript lines it
is shown and answers with statements quoting them, like a careful model would, so that every run of the
same calls stores the same results.

Every fifth transcript (by line count) also gets one statement whose quote the call never contained, so
the repair round and the flagged-claim path are exercised too. A repair request (no transcript lines in
it) is answered with an empty extraction, which the pipeline rejects as worse: the first answer stands.
"""

from __future__ import annotations

import re
from typing import Any

_LINE = re.compile(r"^\[(?P<index>\d+)\] (?P<role>\w+) \((?P<speaker>[^)]*)\): (?P<text>.+)$")
QUOTE_WORDS = 8
DUE_WORDS = ("today", "tomorrow", "next week", "business days", "this week")
FABRICATED_EVERY = 5


def _statement(index: int, text: str, *, words: int = QUOTE_WORDS) -> dict[str, Any]:
    quote = " ".join(text.split()[:words])
    return {"text": quote, "evidence": [{"utterance": index, "quote": quote}]}


def quoting_answer(user_text: str) -> dict[str, Any]:
    """A valid extraction whose statements quote the transcript lines in `user_text`."""
    lines: list[tuple[int, str, str]] = []
    for raw in user_text.splitlines():
        match = _LINE.match(raw.strip())
        if match and "[" not in match["text"] and len(match["text"].split()) >= 3:
            lines.append((int(match["index"]), match["role"], match["text"]))
    if not lines:
        return {"summary": [], "action_items": []}
    customer = [(i, t) for i, role, t in lines if role == "customer"] or [(i, t) for i, _, t in lines]
    agent = [(i, t) for i, role, t in lines if role == "agent"] or [(i, t) for i, _, t in lines]
    summary = [_statement(*customer[0]), _statement(*agent[len(agent) // 2])]
    if len(customer) > 2:
        summary.append(_statement(*customer[len(customer) // 2], words=QUOTE_WORDS + 4))
    if len(lines) % FABRICATED_EVERY == 0:
        index, text = agent[-1]
        invented = f"{' '.join(text.split()[:4])} and waived the $40 fee"
        summary.append({"text": "The agent waived a $40 fee.", "evidence": [{"utterance": index, "quote": invented}]})
    actions = []
    for index, text in agent:
        lowered = text.lower()
        if "i'll" in lowered or "i will" in lowered or "we will" in lowered:
            due = next((word for word in DUE_WORDS if word in lowered), None)
            actions.append({**_statement(index, text, words=QUOTE_WORDS + 2), "owner": "agent", "due": due})
        if len(actions) == 2:
            break
    return {
        "summary": summary,
        "action_items": actions,
        "reason": _statement(*customer[0], words=5),
        "outcome": _statement(*agent[-1]),
    }
