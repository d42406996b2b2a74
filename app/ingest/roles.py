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
from app.text.lexicon import (
    AGENT_WORDS,
    CUSTOMER_WORDS,
    MACHINE_LABEL_ENDINGS,
    MACHINE_SPEAKER_WORDS,
    SERVICE_FUNCTION_AFTER_CUSTOMER_WORDS,
    SERVICE_FUNCTION_WORDS,
    STAFF_TITLES,
)

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

# A speaker who is neither named nor needed to make up the two parties (a third speaker: a transfer, a
# supervisor, a second caller) takes the default side, but as a guess, which carries a warning.
EXTRA_SPEAKER_CONFIDENCE = 0.5
_EXTRAS_NAMED = 5  # in the warning: a 100-voice meeting is not a 100-name line

# Words in a label that carry no meaning for the role ("spk_agent", "Agent 2").
_LABEL_NOISE_WORDS = frozenset({"spk", "speaker", "the"})
# A label of more words is a sentence ("Agent Smith from accounts"), not a role.
MAX_LABEL_WORDS = 3
_COMPANY_STAFF = AGENT_WORDS | STAFF_TITLES


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


def _label_names(words: Sequence[str], names: frozenset[str]) -> bool:
    """Whether the label's last word, or its last two, is one of `names`."""
    return words[-1] in names or (len(words) > 1 and f"{words[-2]} {words[-1]}" in names)


def role_from_label(label: str) -> Role | None:
    """The role a speaker label names outright, if any: "Agent", "CUSTOMER 2", "spk_caller"; the company's
    staff and departments ("Supervisor", "Team Lead", "Customer Service", "Help Desk") are the agent's side;
    a machine ("IVR", "System", "Virtual Agent") is neither party, `Role.unknown`."""
    words = [word for word in re.findall(r"[a-z]+", label.lower()) if word not in _LABEL_NOISE_WORDS]
    if not words or len(words) > MAX_LABEL_WORDS:
        return None
    # A machine is the whole label ("IVR", "System", "Virtual Agent", "Bot 2"), or a label that ends in a word
    # only a machine is ("Customer Support Bot", "Billing IVR"): "System Admin", "Music Teacher" and
    # "Customer Recording" are people.
    if " ".join(words) in MACHINE_SPEAKER_WORDS or _label_names(words, MACHINE_LABEL_ENDINGS):
        return Role.unknown
    if words[0] in CUSTOMER_WORDS:
        # "Customer Service", "Member Services": the department that serves them; "Customer (IT Manager)",
        # "Caller, Manager": a customer with a title of their own.
        if len(words) > 1 and words[1] in SERVICE_FUNCTION_AFTER_CUSTOMER_WORDS:
            return Role.agent
        return Role.customer
    if _label_names(words, _COMPANY_STAFF) or _label_names(words, SERVICE_FUNCTION_WORDS):
        return Role.agent
    if len(words) > 2:
        return None  # "Agent Dana Smith": a sentence-like label names nobody's role by its first word
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


def assign_agent(
    utterances: Sequence[Utterance], agent_speaker: str, *, known: Mapping[str, Role] | None = None
) -> RoleInference:
    """An operator's word: `agent_speaker` is the agent (confidence 1.0). Every other speaker is the customer,
    but for one whose role is stated, by its source (`known`: Call Analytics' SUPERVISOR, a native `role`) or
    its label ("Supervisor", "Caller", "IVR"), which keeps it: naming the agent says nothing against a
    supervisor who barged in (staff: the agent's side), nor makes a machine a party.

    One exception, with a warning: when the stated roles would leave the call without a customer ("Agent"
    named beside a customer labelled "Tech", a staff title), the operator who named the agent is taken to say
    the other speakers are not staff, and those named agent's side become the customer, as before."""
    speakers = list(dict.fromkeys(u.speaker for u in utterances))
    stated = {speaker: (known or {}).get(speaker) or role_from_label(speaker) for speaker in speakers}
    roles: dict[str, Role] = {}
    for speaker in speakers:
        role = stated[speaker]
        roles[speaker] = Role.agent if speaker == agent_speaker else role if role is not None else Role.customer
    warnings: list[str] = []
    staff = [speaker for speaker in speakers if speaker != agent_speaker and roles[speaker] is Role.agent]
    if staff and Role.customer not in roles.values():
        for speaker in staff:
            roles[speaker] = Role.customer
        named = ", ".join(repr(speaker) for speaker in staff)
        warnings.append(f"{named}: on the agent's side by label or source, but taken as the customer: "
                        f"{agent_speaker!r} is the agent (--agent-speaker) and the call has no other customer")
    confidences: dict[str, float | None] = dict.fromkeys(roles, SOURCE_ROLE_CONFIDENCE)
    return RoleInference(_with_roles(utterances, roles, confidences), SOURCE_ROLE_CONFIDENCE, warnings)


def _extra_speakers(
    extras: Sequence[str], role: Role, roles: dict[str, Role], confidences: dict[str, float | None]
) -> str:
    """Give `extras` (unnamed speakers beyond the two parties) `role`, the side they took before, at
    EXTRA_SPEAKER_CONFIDENCE, and return the warning that says so.

    Not a side from what they say: the cues tell a customer from an agent, not a polite diner ("I'll have
    the soup, please") from a waitress, and DialogSum's three-speaker dialogs came out worse that way."""
    for speaker in extras:
        roles[speaker] = role
        confidences[speaker] = EXTRA_SPEAKER_CONFIDENCE
    named = ", ".join(repr(speaker) for speaker in extras[:_EXTRAS_NAMED])
    if len(extras) > _EXTRAS_NAMED:
        named += f" and {len(extras) - _EXTRAS_NAMED} more"
    return (
        f"more than two speakers: {named} taken as {role.value} with low confidence "
        f"({EXTRA_SPEAKER_CONFIDENCE:.2f}); a third speaker may be a second agent (a transfer, a supervisor) "
        "or a second caller: check the roles"
    )


def infer_roles(
    utterances: Sequence[Utterance], *, known: Mapping[str, Role] | None = None
) -> RoleInference:
    """Give every utterance a role and a confidence.

    `known` maps speaker labels whose role the source states (kept with confidence 1.0), `Role.unknown`
    included: a speaker the source says is neither party stays so. Labels that name a role ("Agent",
    "Caller", "Customer Service", "Supervisor") count as known, and so do labels that name a machine
    ("IVR": unknown). The rest are the parties' complement, or inferred from what they say. Beyond two
    parties, a speaker no label names is an extra: it takes the side it took before (the complement, else
    customer) at EXTRA_SPEAKER_CONFIDENCE, with a warning.
    """
    speakers = list(dict.fromkeys(u.speaker for u in utterances))
    roles: dict[str, Role] = {}
    confidences: dict[str, float | None] = {}
    for speaker in speakers:
        role = (known or {}).get(speaker) or role_from_label(speaker)
        if role is not None:
            roles[speaker] = role
            confidences[speaker] = SOURCE_ROLE_CONFIDENCE
    # The agent and the customer are among the speakers not named as neither party (machines).
    parties = [speaker for speaker in speakers if roles.get(speaker) is not Role.unknown]
    unresolved = [speaker for speaker in parties if speaker not in roles]
    warnings: list[str] = []
    if len(speakers) == 1:
        warnings.append(single_speaker_warning(speakers[0]))

    if len(parties) == 1 and unresolved:
        roles[parties[0]] = Role.unknown
        confidences[parties[0]] = None
        if len(speakers) > 1:
            machines = ", ".join(repr(speaker) for speaker in speakers if speaker != parties[0])
            warnings.append(f"only one speaker label ({parties[0]!r}) besides {machines}, which is neither "
                            "party: the transcript may not be diarized")
    elif unresolved:
        named = {roles[speaker] for speaker in parties if speaker in roles}
        # Scoring costs (~0.5 ms an utterance): not when a lone unnamed speaker takes the complement.
        scores = agent_scores(utterances) if not named or len(unresolved) > 1 else dict.fromkeys(unresolved, 0.0)
        extras: list[str] = []
        # The side an extra speaker takes, as every unnamed speaker did before there were extras.
        extra_role = Role.customer
        if named:
            if len(named) == 1:
                # One side is named: the unnamed speaker most like the other side is it (customer, unless
                # only a customer is named); any further unnamed speaker is an extra.
                complement = extra_role = Role.agent if named == {Role.customer} else Role.customer
                ordered = sorted(unresolved, key=lambda speaker: scores[speaker], reverse=complement is Role.agent)
                roles[ordered[0]] = complement
                confidences[ordered[0]] = COMPLEMENT_ROLE_CONFIDENCE
                extras = ordered[1:]
            else:
                extras = unresolved  # both sides are named
        else:
            ranked = sorted(parties, key=lambda speaker: scores[speaker], reverse=True)
            agent, customer = ranked[0], ranked[-1]
            confidence = _confidence_from_margin(scores[agent] - scores[ranked[1]])
            roles[agent], roles[customer] = Role.agent, Role.customer
            confidences[agent] = confidences[customer] = confidence
            extras = ranked[1:-1]
            if confidence < LOW_CONFIDENCE_WARNING_BELOW:
                warnings.append(
                    f"speaker roles inferred with low confidence ({confidence:.2f}): {agent!r} taken as agent; "
                    "pass the agent's speaker label to override"
                )
        if extras:
            warnings.append(_extra_speakers(extras, extra_role, roles, confidences))

    inferred = [value for speaker in speakers if (value := confidences[speaker]) is not None]
    overall = min(inferred) if inferred else None
    return RoleInference(_with_roles(utterances, roles, confidences), overall, warnings)


def _stored_role(utterance: Utterance) -> bool:
    """Whether the utterance carries a decided role: agent or customer, or unknown with a confidence (a
    machine, or a speaker its source says is neither party); unknown without one is undecided."""
    return utterance.role is not Role.unknown or utterance.role_confidence is not None


def roles_of(utterances: Sequence[Utterance]) -> list[Role]:
    """One role per utterance: the stored one, and for utterances stored without one the rule above.

    Ingestion stores every transcript's roles; readers (the heuristic provider) take them from here, so
    a transcript built elsewhere gets the same answer ingestion would have given, never a second rule.
    """
    if all(_stored_role(utterance) for utterance in utterances):
        return [utterance.role for utterance in utterances]
    known = {utterance.speaker: utterance.role for utterance in utterances if _stored_role(utterance)}
    return [utterance.role for utterance in infer_roles(utterances, known=known).utterances]
