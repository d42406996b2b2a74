"""Role resolution for the heuristic provider: who is the agent and who is the customer.

Utterances whose role the source gave are trusted. For the rest, each speaker label is scored by its
name ("Agent", "Caller"...) and by what it says (agents greet with the company name, ask "how can I
help", close with "anything else"; customers say "I'm calling about", "my account"). When nothing
tells two speakers apart, the first to speak is taken as the agent: contact-center calls open with
the agent's greeting.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from app.schemas.transcript import Role, Utterance

_AGENT_LABEL = re.compile(
    r"\b(agent|rep|representative|operator|advisor|adviser|associate|support|service|staff|"
    r"specialist|consultant|receptionist|assistant|csr|ivr|bot)\b",
    re.IGNORECASE,
)
_CUSTOMER_LABEL = re.compile(r"\b(customer|caller|client|user|member|patient|guest|consumer)\b", re.IGNORECASE)

_AGENT_CONTENT = re.compile(
    r"\b(how (?:can|may) i (?:help|assist)|what can i do for you|thank(?:s| you) for (?:calling|contacting|"
    r"reaching out|your patience|holding)|is there anything else|anything else i can|my name is \w+[,.]? "
    r"(?:and i|how)|this is \w+ (?:from|with|at)|you(?:'ve| have) reached|can i (?:have|get) your|"
    r"(?:may|can) i (?:have|get|confirm|verify)|for security|verify your|i can see (?:that|your|here)|"
    r"let me (?:check|pull|look|see|verify|transfer)|i(?:'ll| will) (?:transfer|send|process|email)|"
    r"have a (?:great|nice|good) (?:day|one|evening)|sorry (?:to hear|for the)|i apologi[sz]e)",
    re.IGNORECASE,
)
_CUSTOMER_CONTENT = re.compile(
    r"\b(i(?:'m| am) calling|calling (?:about|because|to|regarding)|i need|i want|i(?:'d| would) like|"
    r"my (?:account|card|bill|order|internet|phone|password|claim|appointment|flight|subscription|"
    r"refund|balance|policy)|i (?:lost|forgot|can't|cannot|didn't|haven't|never|was charged)|"
    r"can you help|help me|it(?:'s| is) not working|doesn't work)",
    re.IGNORECASE,
)

# Below this margin of agent-vs-customer evidence, a speaker's content is not taken as telling.
_MIN_CONTENT_MARGIN = 1
# Confidence attached to roles this module guesses (kept below what a labelled source would carry).
GUESSED_ROLE_CONFIDENCE = 0.6


def resolve_roles(utterances: Sequence[Utterance]) -> list[Role]:
    """One role per utterance: the given role when known, otherwise a guess per speaker label."""
    unknown_speakers = [u.speaker for u in utterances if u.role is Role.unknown]
    if not unknown_speakers:
        return [u.role for u in utterances]

    known_by_speaker: dict[str, Role] = {}
    for u in utterances:
        if u.role is not Role.unknown:
            known_by_speaker.setdefault(u.speaker, u.role)

    guesses = _guess_speaker_roles(utterances, known_by_speaker)
    roles: list[Role] = []
    for u in utterances:
        if u.role is not Role.unknown:
            roles.append(u.role)
        else:
            roles.append(known_by_speaker.get(u.speaker) or guesses.get(u.speaker, Role.unknown))
    return roles


def _guess_speaker_roles(utterances: Sequence[Utterance], known: dict[str, Role]) -> dict[str, Role]:
    order: list[str] = []
    score: dict[str, int] = defaultdict(int)  # > 0 leans agent, < 0 leans customer
    for u in utterances:
        if u.speaker not in order:
            order.append(u.speaker)
        score[u.speaker] += len(_AGENT_CONTENT.findall(u.text)) - len(_CUSTOMER_CONTENT.findall(u.text))

    guesses: dict[str, Role] = {}
    for speaker in order:
        if speaker in known:
            continue
        if _AGENT_LABEL.search(speaker) and not _CUSTOMER_LABEL.search(speaker):
            guesses[speaker] = Role.agent
        elif _CUSTOMER_LABEL.search(speaker) and not _AGENT_LABEL.search(speaker):
            guesses[speaker] = Role.customer

    undecided = [s for s in order if s not in known and s not in guesses]
    if not undecided:
        return guesses
    taken = set(known.values()) | set(guesses.values())
    if len(order) == 1:
        # A single voice (a mono recording without diarization): classify nothing rather than guess.
        return guesses
    # Rank undecided speakers by how agent-like they sound; ties keep speaking order, so the opener wins.
    ranked = sorted(undecided, key=lambda s: (-score[s], order.index(s)))
    for speaker in ranked:
        if Role.agent not in taken and (
            score[speaker] >= _MIN_CONTENT_MARGIN or speaker == ranked[0]
        ):
            guesses[speaker] = Role.agent
            taken.add(Role.agent)
        elif score[speaker] <= -_MIN_CONTENT_MARGIN or Role.customer not in taken:
            guesses[speaker] = Role.customer
            taken.add(Role.customer)
        else:
            # A third voice (a supervisor joining, a second caller): side with the nearer profile.
            guesses[speaker] = Role.agent if score[speaker] > 0 else Role.customer
    return guesses
