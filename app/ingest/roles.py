"""Agent vs customer: take roles from the source when it names them, infer them when it does not.

Inference reads what each speaker says. Agents greet with the company name, offer help, ask
verification questions, make commitments on the company's behalf ("I'll send you...", "we have
refunded...") and close ("thank you for calling"). Customers state a problem in the first person
("I lost my card", "my order hasn't arrived"). Each cue has a weight; a speaker's agent score is the
sum of agent cues minus customer cues, normalised by how much they said so that a talkative customer
does not out-score a terse agent. The speaker with the highest score is the agent. Speaker order is
deliberately not a cue: who talks first differs between inbound calls, outbound calls and chats.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from app.schemas.transcript import Role, Utterance
from app.text.lexicon import AGENT_WORDS, CUSTOMER_WORDS

# Confidence stored when the source itself names the role, or when an operator names the agent.
SOURCE_ROLE_CONFIDENCE = 1.0
# A speaker with no role in a call where another speaker is named as agent (or customer): the
# complement is almost always right, but a second agent (a transfer) is possible.
COMPLEMENT_ROLE_CONFIDENCE = 0.9
# Inferred roles never claim certainty: 1.0 is reserved for roles the source or an operator states.
MAX_INFERRED_CONFIDENCE = 0.99
# Below this inferred confidence the transcript carries a warning asking for a human check.
LOW_CONFIDENCE_WARNING_BELOW = 0.75
# Score margin (in normalised cue units) at which confidence reaches ~0.88 (tanh(1)/2 + 0.5).
CONFIDENCE_MARGIN_SCALE = 1.5
# Cue evidence is divided by sqrt(utterances) of the speaker: repeated cues still count, but with
# diminishing weight, so a long monologue cannot swamp a short, clearly agent-like opener.
# Only each speaker's first and last utterances are scored (~0.5 ms each): enough to see the
# greeting, the verification and the closing, and a 2,000-utterance call costs no more than a short one.
OPENING_UTTERANCES_SCORED = 40
CLOSING_UTTERANCES_SCORED = 10

# Words in a label that carry no meaning for the role ("spk_agent", "Agent 2").
_LABEL_NOISE_WORDS = frozenset({"spk", "speaker", "the"})


@dataclass(frozen=True, slots=True)
class Cue:
    pattern: re.Pattern[str]
    weight: float  # positive: sounds like the agent; negative: sounds like the customer


def _cues(weight: float, *patterns: str) -> list[Cue]:
    # Patterns are written in lower case and matched against lower-cased text: much faster than
    # re.IGNORECASE, and inference runs over every utterance of every call.
    return [Cue(re.compile(pattern), weight) for pattern in patterns]


# Weights: 3 = nearly decisive on its own, 2 = strong, 1 = suggestive, 0.5 = a tie-breaker.
# Text is lower-cased, and typographic apostrophes become plain ones, before matching.
ROLE_CUES: tuple[Cue, ...] = (
    # --- agent: opening, offering help, closing ---
    *_cues(
        3.0,
        r"\bthanks? (?:you )?(?:so much |very much )?for (?:calling|contacting|reaching out|holding|"
        r"your patience|getting in touch|getting back|coming back|your (?:feedback|message|reply|tweet))",
        r"\b(?:how|what) (?:can|may|could) (?:i|we) (?:help|assist|do for) you",
        r"\bhow (?:can|may) i direct your call",
        r"\bwelcome to\b",
        r"\byou(?:'ve| have) reached\b",
        r"\bthis is \w+(?: \w+)? (?:from|with|at|of) \w+",
        r"\bmy name is \w+,? (?:and )?(?:i(?:'ll| will| am|'m)|how)",
        r"\bis there anything else (?:i|we) can (?:help|assist|do)",
        r"\b(?:happy|glad) to (?:help|assist)",
        r"\b(?:sorry|disappointed|sad|concerned|upset) to (?:hear|see|know|learn|read)\b",
    ),
    *_cues(
        2.0,
        r"\b(?:hello|hi|good (?:morning|afternoon|evening)),? (?:and )?(?:thank|this is|welcome|you)",
        r"^(?:hello|hi),? this is\b",
        r"\b(?:can|could|may) i (?:have|get|confirm|verify|ask for) (?:your|the)\b",
        r"\b(?:what|which) is (?:your|the) (?:account|card|phone|member|order|policy|date of birth|zip)",
        r"\bfor (?:security|verification) (?:purposes|reasons)",
        r"\b(?:verify|confirm) (?:your|the) (?:identity|account|address|date of birth|name|email|number)",
        r"\b(?:let me|i(?:'ll| will)) (?:check|look|pull|see|review|transfer|escalate|connect|get that)",
        r"\b(?:one|a) moment,? please\b|\bbear with me\b|\bplease hold\b",
        r"\b(?:i(?:'ve| have)|we(?:'ve| have)) (?:updated|processed|issued|refunded|credited|sent|reset|"
        r"cancell?ed|scheduled|submitted|ordered|transferred|blocked|unblocked|escalated|reported|"
        r"added|removed|changed|applied|waived|reversed|replaced|activated|responded|passed)\b",
        r"\bi(?:'ll| will) (?:send|email|call you|follow up|process|issue|refund|credit|reset|schedule|"
        r"submit|order|transfer|escalate|update|arrange|note|make sure|reach out|set up|waive|mail|pass)\b",
        r"\byou(?:'ll| will) (?:receive|get|see) (?:a|an|the|your)\b",
        r"\b(?:have a (?:great|nice|good|wonderful|lovely) (?:day|one|evening|weekend|night))",
        r"\b(?:send|shoot|drop) (?:us|me) (?:a )?(?:dm|direct message|private message|pm)\b",
        r"\b(?:dm|message) (?:us|me)\b|\b(?:via|in a|through|by|over) dm\b",
        r"\b(?:i(?:'m| am)|we(?:'re| are)) (?:so |very |really |truly |terribly )?sorry\b",
        r"\b(?:sorry|apologi[sz]e|apologies) (?:for|about) (?:the|any|this|that|your)\b",
        r"\b(?:i|we) (?:do )?(?:apologi[sz]e|understand (?:how|your|that|the)|appreciate (?:your|you|that|the))",
        r"\b(?:our|my) apologies\b",
        r"\bwe(?:'d| would) (?:like|love|be happy|be glad) to\b",
        r"\b(?:our|the) (?:team|specialists?|engineers?|department) (?:will|can|would|are|is)\b",
        r"\bfeel free to\b",
        r"\bhave you (?:tried|been able|had a chance|checked|received)\b",
        r"\b(?:kind|best|warm) regards\b",
        # Chat and social-care agents sign their messages: "^JS", "*TCC", "- Josh", "TY - Kelly".
        r"(?:\^|\*)[a-z]{2,4}\b|\bty ?- ?[a-z]+|[-–] ?[a-z]+\.?(?: \d/\d)?\s*$",
        r"\b(?:can|could) you (?:please )?(?:dm|send|confirm|provide|advise|clarify|share|let (?:me|us) know|"
        r"give (?:me|us)|tell (?:me|us)|check|try|follow)\b",
        r"\bplease (?:could|can) you\b",
    ),
    *_cues(
        1.0,
        r"\b(?:your|the) (?:account|card|order|reservation|booking|ticket|case|claim) (?:number|has been|is now)",
        r"\bi (?:can|could) (?:help|assist|offer|see|confirm|check)\b",
        r"\bwe (?:can|could|will|are able to|do|don't|cannot|can't)\b",
        r"\bis that correct\b|\bdoes that sound (?:good|right)\b|\bdid that help\b",
        r"\b(?:please|kindly) (?:confirm|provide|let us know|reach out|follow|check|try|make sure|advise|"
        r"be (?:assured|advised|informed)|accept)\b",
        r"\bcould you (?:please )?(?:tell|provide|confirm|share|send|let)\b",
        r"\bwe(?:'re| are) (?:sorry|here|happy|glad|looking|unable|not able)\b",
        r"\bthanks? for (?:letting us know|the (?:info|details|update)|your (?:patience|understanding))",
        r"\bhere to help\b|\blet's\b|\blet us know\b|\blet me know\b",
        r"\b(?:i|we)(?:'ll| will) (?:be|get|look|need|have|do|keep|make)\b",
    ),
    *_cues(
        0.5,
        r"\b(?:our|ours|we've|we're|we'll)\b",
        r"\bplease\b",
    ),
    # --- customer: stating a problem, asking for help, complaining ---
    *_cues(
        -3.0,
        r"\bi(?:'m| am) calling (?:about|to|because|for|regarding|in regards)",
        r"\bi (?:need|want|would like|'d like) to (?:cancel|return|report|dispute|close|open an?|"
        r"make a (?:payment|complaint)|speak|talk|book|order|pay|replace|reset|change my|transfer)",
        r"\bcan you help me\b|\bcould you help me\b|\bplease help\b|\bhelp me\b",
        r"\byou (?:guys|people)\b",
    ),
    *_cues(
        -2.0,
        r"\bi (?:lost|forgot|can'?t|cannot|couldn'?t|haven'?t|didn'?t|never|was (?:charged|billed|told))\b",
        r"\bmy (?:card|account|order|package|parcel|phone|bill|payment|flight|bag|luggage|internet|service|"
        r"refund|password|iphone|device|app|delivery|car|reservation|subscription|balance|money|laptop)\b",
        r"\bi (?:have|'ve|got) (?:a|an) (?:problem|issue|question|complaint)",
        r"\bstill (?:not|haven'?t|hasn'?t|no|waiting|nothing)\b",
        r"\bwhat (?:should|do) i do\b|\bwhat can i do\b",
        r"\bthanks? (?:you )?(?:so much |very much |a lot )?for (?:your|the|all (?:your|the)) help\b",
        r"\b(?:ridiculous|unacceptable|terrible|worst|frustrat(?:ed|ing)|annoy(?:ed|ing)|pathetic|useless|"
        r"appalling|disgusting|shocking|rubbish|awful|joke|never again|fix (?:this|it))\b",
        r"\byour (?:staff|driver|service|app|website|site|store|shop|courier|company|team|employees?|support|"
        r"product|network|customer service|system|policy|agents?|drivers?|trains?|flights?)\b",
        r"\b(?:doesn'?t|does not|won'?t|isn'?t|is not|not|stopped|keeps?) (?:work(?:ing)?|load(?:ing)?|"
        r"connect(?:ing)?|crash(?:ing)?|respond(?:ing)?|arriv(?:ed|ing))\b",
        r"\b(?:i|we) (?:want|need|deserve|demand) (?:a|my|our) (?:refund|replacement|compensation|answer)",
    ),
    *_cues(
        -1.0,
        r"\bi (?:want|need|would like|'d like)\b",
        r"\bi (?:bought|ordered|paid|purchased|booked|called|tried|sent|received|got|was|had|just)\b",
        r"\bmy\b",
        r"\bhow (?:do|can) i\b",
        r"\bis there (?:a|any) way\b",
        r"\?\?|!!",
        r"\bwhy (?:is|was|does|did|do|are|can'?t|hasn'?t|isn'?t|won'?t)\b",
    ),
)


class RoleInference(NamedTuple):
    utterances: list[Utterance]
    confidence: float | None  # None when roles are unknown (one speaker, no cues)
    warnings: list[str]


def single_speaker_warning(speaker: str) -> str:
    return f"only one speaker label ({speaker!r}): the transcript may not be diarized"


def role_from_label(label: str) -> Role | None:
    """The role a speaker label names outright ("Agent", "CUSTOMER 2", "spk_caller"), if any."""
    words = [word for word in re.findall(r"[a-z]+", label.lower()) if word not in _LABEL_NOISE_WORDS]
    if not words or len(words) > 2:
        return None
    if words[0] in AGENT_WORDS:
        return Role.agent
    if words[0] in CUSTOMER_WORDS:
        return Role.customer
    return None


def _sampled_by_speaker(utterances: Iterable[Utterance]) -> dict[str, list[Utterance]]:
    """Each speaker's opening and closing utterances: where roles show (greetings, verification,
    commitments, goodbyes). Bounds the cost of inference on very long calls."""
    by_speaker: dict[str, list[Utterance]] = {}
    for utterance in utterances:
        by_speaker.setdefault(utterance.speaker, []).append(utterance)
    budget = OPENING_UTTERANCES_SCORED + CLOSING_UTTERANCES_SCORED
    return {
        speaker: spoken
        if len(spoken) <= budget
        else spoken[:OPENING_UTTERANCES_SCORED] + spoken[-CLOSING_UTTERANCES_SCORED:]
        for speaker, spoken in by_speaker.items()
    }


def agent_scores(utterances: Iterable[Utterance]) -> dict[str, float]:
    """Per speaker: weighted agent cues minus customer cues, divided by sqrt(utterances scored)."""
    scores: dict[str, float] = {}
    for speaker, spoken in _sampled_by_speaker(utterances).items():
        evidence = 0.0
        for utterance in spoken:
            text = utterance.text.lower().replace("\u2019", "'")
            evidence += sum(cue.weight for cue in ROLE_CUES if cue.pattern.search(text))
        scores[speaker] = evidence / math.sqrt(len(spoken))
    return scores


def _confidence_from_margin(margin: float) -> float:
    return min(MAX_INFERRED_CONFIDENCE, round(0.5 + 0.5 * math.tanh(margin / CONFIDENCE_MARGIN_SCALE), 3))


def _with_roles(
    utterances: Sequence[Utterance], roles: Mapping[str, Role], confidences: Mapping[str, float | None]
) -> list[Utterance]:
    return [
        utterance.model_copy(
            update={"role": roles[utterance.speaker], "role_confidence": confidences[utterance.speaker]}
        )
        for utterance in utterances
    ]


def assign_agent(utterances: Sequence[Utterance], agent_speaker: str) -> list[Utterance]:
    """An operator's word: `agent_speaker` is the agent, everyone else the customer."""
    roles = {u.speaker: Role.agent if u.speaker == agent_speaker else Role.customer for u in utterances}
    confidences: dict[str, float | None] = dict.fromkeys(roles, SOURCE_ROLE_CONFIDENCE)
    return _with_roles(utterances, roles, confidences)


def infer_roles(
    utterances: Sequence[Utterance], *, known: Mapping[str, Role] | None = None
) -> RoleInference:
    """Give every utterance a role and a confidence.

    `known` maps speaker labels whose role the source states (kept with confidence 1.0). Labels that
    name a role ("Agent", "Caller") count as known. The rest are inferred from what they say.
    """
    speakers = list(dict.fromkeys(u.speaker for u in utterances))
    roles: dict[str, Role] = {}
    confidences: dict[str, float | None] = {}
    for speaker in speakers:
        role = (known or {}).get(speaker) or role_from_label(speaker)
        if role is not None and role is not Role.unknown:
            roles[speaker] = role
            confidences[speaker] = SOURCE_ROLE_CONFIDENCE
    unresolved = [speaker for speaker in speakers if speaker not in roles]
    warnings: list[str] = []
    if len(speakers) == 1:
        warnings.append(single_speaker_warning(speakers[0]))

    if len(speakers) == 1 and unresolved:
        roles[speakers[0]] = Role.unknown
        confidences[speakers[0]] = None
    elif unresolved and roles:
        # Some speakers are named: the others take the complementary role (customer, unless only a
        # customer is named).
        complement = Role.agent if set(roles.values()) == {Role.customer} else Role.customer
        for speaker in unresolved:
            roles[speaker] = complement
            confidences[speaker] = COMPLEMENT_ROLE_CONFIDENCE
    elif unresolved:
        scores = agent_scores(utterances)
        ranked = sorted(speakers, key=lambda speaker: scores[speaker], reverse=True)
        agent = ranked[0]
        confidence = _confidence_from_margin(scores[agent] - scores[ranked[1]])
        for speaker in speakers:
            roles[speaker] = Role.agent if speaker == agent else Role.customer
            confidences[speaker] = confidence
        if confidence < LOW_CONFIDENCE_WARNING_BELOW:
            warnings.append(
                f"speaker roles inferred with low confidence ({confidence:.2f}): {agent!r} taken as agent; "
                "pass the agent's speaker label to override"
            )

    inferred = [value for speaker in speakers if (value := confidences[speaker]) is not None]
    overall = min(inferred) if inferred else None
    return RoleInference(_with_roles(utterances, roles, confidences), overall, warnings)


def roles_of(utterances: Sequence[Utterance]) -> list[Role]:
    """One role per utterance: the stored one, and for utterances stored without one the rule above.

    Ingestion stores every transcript's roles; readers (the heuristic provider) take them from here, so
    a transcript built elsewhere gets the same answer ingestion would have given, never a second rule.
    """
    if all(utterance.role is not Role.unknown for utterance in utterances):
        return [utterance.role for utterance in utterances]
    known = {utterance.speaker: utterance.role for utterance in utterances if utterance.role is not Role.unknown}
    return [utterance.role for utterance in infer_roles(utterances, known=known).utterances]
