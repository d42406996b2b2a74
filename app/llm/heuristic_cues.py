"""Cue lexicons of the heuristic provider: what a request, a commitment, a resolution sounds like.

Patterns are matched case-insensitively against single sentences, with ’ and ' treated alike. Weights
are small integers; only their order matters (see `heuristic.py` for the thresholds that use them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FLAGS = re.IGNORECASE


@dataclass(frozen=True)
class CueSet:
    """Weighted cue patterns, plus their union: one scan rules out the sentences that match none."""

    cues: tuple[tuple[re.Pattern[str], int], ...]
    any: re.Pattern[str]


def cue_set(*cues: tuple[re.Pattern[str], int]) -> CueSet:
    union = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in cues), _FLAGS)
    return CueSet(cues=cues, any=union)


def _re(pattern: str) -> re.Pattern[str]:
    # Writing "'" in a pattern accepts the typographic apostrophe too.
    return re.compile(pattern.replace("'", "['’]"), _FLAGS)


# --- the caller's request ------------------------------------------------------------------------

REASON_CUES = cue_set(
    (_re(r"\b(?:the )?reason (?:i'm|i am|for) (?:calling|my call|the call)"), 6),
    (_re(r"\b(?:i'm|i am|i was|we're|we are) (?:calling|ringing|reaching out|contacting you|writing)"
         r"(?: you)? (?:about|because|to|regarding|for|in regards? to|with|since|on behalf)"), 6),
    (_re(r"\bcalling (?:about|because|to|regarding|in regards? to)\b"), 5),
    (_re(r"\b(?:i|we) (?:need|needed|have to|must) (?:to|a|an|some|help|my|the|your|you)\b"), 5),
    (_re(r"\b(?:i|we)(?:'d like|'d love|'m hoping|'re hoping|'m wondering|'m trying|'re trying|'ve been trying|"
         r"'m looking|'re looking| (?:um |uh )?(?:want|wanted|would like|would love|wanna|wish|was hoping|"
         r"am hoping|are hoping|was wondering|am wondering|am trying|are trying|was trying|were trying|"
         r"have been trying|am looking|are looking))\b"), 5),
    (_re(r"\b(?:i|we|i've|we've|i have|we have) (?:just )?(?:lost|forgot|forgotten|misplaced|can't|cannot|"
         r"couldn't|didn't|haven't|hadn't|never|still|keep|noticed|received|got|ordered|booked|bought|"
         r"paid|was charged|were charged|got charged|been charged|been billed|was billed|moved|cancell?ed|"
         r"tried|broke|dropped|had|left)\b"), 4),
    (_re(r"\b(?:is|are|was|were|isn't|aren't|wasn't|weren't|keeps?|kept|has|have|stopped|started)"
         r"(?: not| been| still| just| completely| totally)* (?:working|loading|connecting|charging|recording|"
         r"showing|down|out|broken|crashing|missing|wrong|late|delayed|cancell?ed|stuck|frozen|locked|"
         r"blocked|declined|failing|failed|damaged|disconnected|dropping|slow|overcharged|double[- ]charged)\b"),
     4),
    (_re(r"\b(?:not|n't|never|no longer) (?:work|working|load|loading|connect|connecting|received|arrived|"
         r"show|showing|recogni[sz]e|recording|charging|turn|turning|open|opening|go through|accept)"), 4),
    (_re(r"\b(?:problem|issue|trouble|error|outage|overcharg\w*|double charg\w*|charged twice|refund|dispute|"
         r"complaint|broken|damaged|stolen|fraud\w*|wrong|missing|late|delay\w*|cancel\w*|replace\w*|"
         r"appointment|reschedul\w*|password|balance|bill|payment|claim|transfer|checks?|checkbook|"
         r"hours|open|upgrade|downgrade|subscription|renewal|charge|card)\b"), 2),
    (_re(r"\b(?:can|could|would|will) (?:you|i|we|someone|somebody) (?:please )?(?:help|tell|check|send|cancel|"
         r"change|update|reset|fix|give|transfer|look|explain|refund|replace|order|move|reschedule|book|get|"
         r"have|make|pay|set|schedule|close|open|remove|add|stop|block|unlock|lock)\b"), 4),
    (_re(r"\bhelp (?:me|us|with)\b"), 3),
    (_re(r"\b(?:don't|do not|can't|cannot) (?:understand|figure out|work out|see why)|\b(?:twice|double|"
         r"(?:two|three|four|several) times) (?:what|as much|the)|\b(?:much |way )?(?:higher|more) than "
         r"(?:usual|normal|expected)|\btoo (?:high|much|expensive)\b"), 3),
    (_re(r"\b(?:accident|crash|collision|report (?:a|an)|backed into|hit my|leak\w*|flood\w*|burst|"
         r"prescription|refill|reschedul\w*|rebook\w*|cancel\w* (?:my|the|our)|was cancell?ed|"
         r"got cancell?ed)\b"), 2),
    (_re(r"\b(?:how|why|when|where|what|which|is there|do you|does|is it|are you)\b[^.!]*\?"), 2),
    (_re(r"\b(?:how|why|when|where|what|which)\b(?: \w+){0,3} (?:i|my|me|we|our)\b"), 1),
)

# Customer sentences that are never the reason: identification, courtesy, fragments of a number.
NOT_A_REASON = _re(
    r"^(?:(?:hi|hello|hey|good (?:morning|afternoon|evening)|yes|yeah|yep|no|nope|okay|ok|sure|thanks?|"
    r"thank you|bye|goodbye|alright|right|perfect|great|cool|um|uh|mhm|hmm)\b[\s,.!]*)+$"
    r"|^(?:my name is|this is|it's spelled|the (?:number|account number|card number) is|"
    r"my (?:date of birth|dob|birthday|zip|zip code|postcode|post code|phone number|number|email|e-mail|"
    r"address|account number|card number|member id|policy number|last four|ssn|social) is)\b"
    r"|^(?:no|nope|nah|that's|that is|that was|that'll|that will)\b.*\b(?:all|it|everything)\b[\s,.!]*"
    r"(?:thank|thanks|today|for now|bye|$)"
    r"|^(?:[\d\s,.\-/]|zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|and|dash|point)+$"
)
# Words spoken before the request inside one unpunctuated run: "hi my name is john garcia i need ...".
REASON_PREFIX = re.compile(
    r"(?:(?:hi|hello|hey|good (?:morning|afternoon|evening))(?-i:\s+[A-Z][a-z]+)?\b[,!.]?\s*"
    r"|(?:yes|yeah|okay|ok|um|uh|uhm|so|and|but|well|oh|alright|thanks|thank you|<unk>)\b[,.]?\s*"
    r"|(?:my name is|this is|i['’]m|i am)(?:\s+[\w<>~-]+){1,3}?\s+"
    r"(?=(?:i|my|and|so|can|could|we|um|uh)\b))",
    re.IGNORECASE,
)

# --- what the agent did or found --------------------------------------------------------------------

_DONE_VERBS = (
    r"(?:processed|cancell?ed|sent|ordered|issued|reset|updated|changed|refunded|credited|applied|waived|"
    r"reversed|removed|added|scheduled|booked|rebooked|moved|transferred|paid|activated|reactivated|unlocked|"
    r"blocked|frozen|froze|fixed|resolved|restored|submitted|approved|confirmed|set up|placed|mailed|shipped|"
    r"replaced|requested|opened|created|filed|logged|noted|escalated|extended|renewed|upgraded|downgraded|"
    r"verified|corrected|adjusted|released|emailed|texted|posted|dispatched|arranged|raised|closed)"
)
RESOLVED_CUES = cue_set(
    (_re(rf"\b(?:i|we)(?:'ve| have)? (?:just |now |already |successfully |also |gone ahead and |went ahead and )*"
         rf"{_DONE_VERBS}\b"), 5),
    (_re(rf"\b(?:has|have|'s) (?:now |already |just |successfully |also )*been (?:successfully |fully )?"
         rf"{_DONE_VERBS}\b"), 5),
    (_re(rf"\b(?:is|are) (?:now )?(?:all )?{_DONE_VERBS}\b"), 3),
    (_re(r"\b(?:that's|that is|it's|it is) (?:all )?(?:done|taken care of|sorted|fixed|working)|"
         r"\bshould (?:be )?work(?:ing)? (?:now|again)\b|\b(?:is|are) (?:now )?(?:active|working|back (?:up|"
         r"online|on))\b"), 5),
    # "You're all set" closes most calls, resolved or not: a weaker signal than a named action.
    (_re(r"\b(?:you're|you are) (?:all set|good to go|all good)|\ball set\b"), 3),
    (_re(r"\b(?:your (?:current |available |account |checking |savings )*balance is|(?:we're|we are|the branch "
         r"is|branch is|we're) open|open (?:from|until|till)|hours are|close[sd]? at|the (?:amount|total|due "
         r"date|balance) is|it will cost|the fee is)\b"), 4),
)
ESCALATED_CUES = cue_set(
    (_re(r"\b(?:transfer|transferring|connect|connecting|put|putting|patch|patching)(?: you)?(?: over| "
         r"through| right)? (?:to|with) (?:a|an|the|our|my)\b"), 6),
    (_re(r"\bescalat(?:e|ed|ing|ion)\b"), 6),
    # Naming where it goes makes the sentence the better outcome evidence.
    (_re(r"\bescalat\w*(?: (?:this|it|that|your \w+))? to (?:a|an|the|our|my)\b"), 2),
    (_re(r"\b(?:supervisor|manager|second[- ]level|tier (?:2|two)|specialist team|fraud (?:team|department)|"
         r"claims (?:team|department)|technical (?:team|support)|engineering team|back office)\b"), 2),
)
PENDING_CUES = cue_set(
    (_re(r"\b(?:will be|should be|is being|are being) (?:processed|reviewed|in touch|contacting|sent|mailed|"
         r"delivered|credited|refunded|restored|fixed|investigated|looked at|assessed|shipped)\b"), 3),
    (_re(r"\b(?:under review|for review|being reviewed|being processed|in progress|look into|looking into|"
         r"investigat\w+|follow up|follow-up|get back to you|call you back|reach out|be in touch|pending)\b"), 3),
    (_re(r"\bonce (?:we|i|they|the \w+(?: \w+)?) (?:have|has|receive|get|hear|see|approve)|\b(?:we|i)(?:'ll| will) "
         r"(?:review|recalculate|reassess|assess|investigate|look into|make a decision)|\bmake a decision\b"), 3),
    (_re(r"\b(?:ticket|case|reference|claim|confirmation|tracking) (?:number|id|#)\b"), 2),
)
UNRESOLVED_CUES = cue_set(
    (_re(r"\b(?:unfortunately|i'm (?:not able|unable)|i am (?:not able|unable)|we (?:can't|cannot|are unable|"
         r"aren't able)|i (?:can't|cannot)|there's nothing|there is nothing)\b"), 2),
)
FINDING_CUES = cue_set(
    (_re(r"\b(?:i can see|i see (?:that|here|a|an|the)|it looks like|it appears|looking at (?:your|the)|"
         r"according to (?:our|my|the) records|there(?:'s| is| was) (?:an? |some )?(?:outage|issue|problem|"
         r"charge|hold|fee|error|delay)|the reason (?:is|was|for)|that(?:'s| is) because)\b"), 3),
)

# Courtesy lines that carry no content, even when a cue matches ("have a great day").
AGENT_SMALL_TALK = _re(
    r"^(?:(?:thank you|thanks)(?: (?:so|very) much)?(?: for (?:calling|holding|your patience|waiting|"
    r"contacting us|reaching out|that))?|have a (?:great|nice|good|lovely|wonderful) (?:day|one|evening|"
    r"weekend)|is there anything else.*|(?:(?:i'm|i am|we're|we are) )?(?:so |very |really )?sorry\b[^.!?]{0,60}|"
    r"(?:my |our )?apologies\b[^.!?]{0,60}|i apologi[sz]e\b[^.!?]{0,60}|(?:how )?(?:can|may) i help.*|"
    r"you're welcome|no problem|my pleasure|"
    r"(?:hi|hello|good (?:morning|afternoon|evening))\b.*|(?:this is|my name is|it's) \w+(?: \w+)?)[\s.!?]*$"
)
ANYTHING_ELSE = _re(r"\b(?:anything else|something else)\b")
CUSTOMER_DONE = _re(
    r"^(?:(?:no|nope|nah|that's it|that is it|that's all|that is all|that was it|that's everything|"
    r"i think that's|i'm good|i'm all set|all good)\b)"
)

# --- commitments and requests -------------------------------------------------------------------

# Verbs that make a future "I'll ..." a follow-up rather than something done while the caller waits.
FOLLOW_UP_VERBS = (
    r"(?:send|sending|email|emailing|e-mail|mail|mailing|text|texting|call|calling|ring|phone|contact|"
    r"contacting|reach|follow|following|process|processing|refund|refunding|credit|crediting|issue|issuing|"
    r"ship|shipping|schedule|scheduling|book|booking|arrange|arranging|escalate|escalating|submit|"
    r"submitting|file|filing|open|opening|create|creating|raise|raising|update|updating|waive|waiving|"
    r"reverse|reversing|forward|forwarding|notify|notifying|let|review|reviewing|investigate|investigating|"
    r"look into|looking into|get back|be in touch|be reaching|be sending|be calling|be contacting|"
    r"reimburse|expedite|cancel|cancelling|canceling|reset|mark|add|remove|apply|applying|note|flag|"
    r"replace|order|dispatch|deliver|post|push|keep|monitor|check back|reactivate|restore|set up|recalculate|"
    r"adjust|correct|reissue|re-issue|resend|re-send|refer|transfer|return|confirm|"
    r"make sure|have|get|put|request|courier|fax|pay|move|reschedule|rebook)"
)
# Verbs that need a due phrase or "back" to count: "I'll check" is usually done on the spot.
WEAK_FOLLOW_UP_VERBS = frozenset({"have", "get", "put", "keep", "let", "make sure", "check back", "move"})

AGENT_COMMITMENT = _re(
    rf"\b(?:i|we)(?:'ll| will| shall|'m going to| am going to|'re going to| are going to|'m gonna| am gonna|"
    rf"'re gonna| can also| will also|'ll also|'ll be able to| will be able to)"
    rf"(?: also| then| just| now| personally| definitely| certainly| go ahead and| make sure to| need to| "
    rf"have to| um| uh| like)* (?P<verb>{FOLLOW_UP_VERBS})\b"
)
AGENT_WILL_HAPPEN = _re(
    r"\b(?:you'll|you will|you should|you'd|you can expect to|you're going to|expect to)"
    r"(?: also| then)? (?:receive|get|see|hear|be (?:receiving|getting|contacted|called|emailed|notified|"
    r"refunded|credited|charged))\b"
    r"|\b(?:it|this|that|they|the (?:\w+ ){0,2}\w+|your (?:\w+ ){0,2}\w+)"
    r"(?:'ll| will| should)(?: also)? (?:be (?:\w+ )?(?:arriving|arrive|sent|mailed|shipped|delivered|credited|"
    r"refunded|processed|reversed|posted|reflected|restored|fixed|resolved|repaired|replaced|reactivated|"
    r"removed|waived|applied|updated|reviewed|back up|back online|emailed|issued|cancell?ed|closed|"
    r"rescheduled|confirmed|ready|available|visible)|arrive|show up|appear|reflect|post|come back)\b"
)
THIRD_PARTY_WILL = _re(
    r"\b(?P<who>(?:a|an|the|our|your|one of our|my)\s+(?:[\w-]+\s+){0,2}?"
    r"(?:technician|tech|engineer|adjuster|adjustor|inspector|specialist|supervisor|manager|courier|driver|"
    r"doctor|nurse|pharmacist|dentist|physician|surgeon|representative|team|department|carrier|airline|"
    r"landlord|bank|insurer|installer|plumber|electrician|crew|office|provider|pharmacy|lab|clinic|"
    r"merchant|seller|vendor|store|warehouse)"
    r"|someone(?: from (?:our|the|your) (?:[\w-]+ ){0,2}(?:team|department|office))?)"
    r"(?:'ll| will| should| is going to| are going to| is gonna)(?: also| then)? (?P<verb>[\w-]+)\b"
)
# Third parties that are still "the company": an item they own is owned by the agent's side.
COMPANY_SIDE = _re(r"\b(?:our|one of our|someone from our)\b")
COMPANY_UNIT = _re(r"\b(?:team|department|office|desk|center|centre)\b")
CUSTOMER_SIDE = _re(r"\b(?:your|my)\b")

CUSTOMER_REQUEST = _re(
    r"\b(?:please|kindly|if you could|if you can|can you|could you|would you|you'll need to|you will need to|"
    r"you need to|you have to|you'll have to|you will have to|you'll want to|you should|you must|"
    r"i need you to|i'll need you to|i will need you to|we need you to|we'll need you to|we will need you to|"
    r"make sure (?:you|to)|be sure to|don't forget to|remember to|can i have you|i'd ask you to|"
    r"i'd recommend|we recommend|i recommend|i suggest|i'd suggest|go ahead and)"
    r"(?: just| also| please| then| simply| kindly| go ahead and)* (?P<verb>[\w-]+)\b"
)
# What a caller can be asked to do after the call (not "confirm your date of birth" right now).
CUSTOMER_FOLLOW_UP_VERBS = frozenset(
    {
        "send", "email", "e-mail", "upload", "mail", "fax", "bring", "fill", "complete", "sign", "return",
        "submit", "call", "ring", "reply", "respond", "attach", "forward", "contact", "visit", "log", "keep",
        "take", "photograph", "print", "drop", "monitor", "watch", "restart", "reboot", "unplug", "update",
        "install", "reinstall", "download", "follow", "dm", "message", "reach", "check", "review", "gather",
        "collect", "provide", "ship", "pack", "schedule", "book", "arrive", "come", "go", "stop", "pay",
        "activate", "register", "text", "retain", "save", "look", "try", "note", "write", "post", "report",
        "get", "arrange",
        "file", "confirm", "allow", "expect", "wait", "hold", "let", "use", "clear", "uninstall", "test",
        "read", "see", "reset", "change",
    }
)  # fmt: skip
# Requests about the call itself ("please hold", "could you confirm your address"): not action items
# unless a due phrase or an after-call marker says otherwise.
IMMEDIATE_REQUEST_VERBS = frozenset(
    {"get", "hold", "confirm", "verify", "repeat", "spell", "wait", "read", "give", "tell", "let", "see", "look",
     "check", "try", "go", "allow", "expect", "reset", "change", "use"}
)  # fmt: skip
AFTER_CALL_MARKER = _re(
    r"\b(?:after (?:the|this|we|you)|once you|when you get|later|tonight|tomorrow|within|by |next|before|"
    r"back to us|to us|us at|us a|us the|us your|us with|to our|online|portal|website|app\b|link|form|"
    r"receipt|photos?|pictures?|documents?|copy|proof|statement|invoice|dm|direct message|private message|"
    r"if (?:it|that|the|you|this))"
)
CUSTOMER_SELF_COMMITMENT = _re(
    rf"\b(?:i|we)(?:'ll| will|'m going to| am going to|'m gonna| am gonna|'re going to| are going to)"
    rf"(?: also| then| just| definitely| try to| go ahead and)* (?P<verb>{FOLLOW_UP_VERBS}|upload|bring|"
    rf"sign|return|fill|take|drop|do|try|look|check|talk|speak|ask|restart|reboot|visit|come|go|find|"
    rf"pick|watch|gather|print|dm|message)\b"
)
# A caller's "I'll do it" / "I'll send them tonight": agreement to the request just made, not a new item.
CUSTOMER_ACKNOWLEDGEMENT = _re(
    r"\b(?:i|we)(?:'ll| will|'m going to| am going to|'m gonna| can)(?: definitely| also| just)? [\w-]+"
    r"(?: (?:it|them|that|this|those|these|one))?(?: (?:in|on|off|over|up|back|out))?(?=$|[\s,.!])"
)
ACKNOWLEDGED_OBJECT = _re(r"\b(?:it|them|that|this|those|these)\b")
# "I'll open a claim for you now": done while the caller waits, not a follow-up.
DONE_ON_THE_CALL = _re(r"\b(?:right now|now|while you're on the (?:line|phone)|in a (?:second|moment|sec))\b")
# "Just reply CANCEL and the visit will be cancelled": an option offered to the caller, not a promise.
OPTIONAL_INSTRUCTION = _re(r"^(?:just|simply|if you|should you|in case|whenever you|feel free)\b")
CUSTOMER_THIRD_PARTY = _re(
    r"\b(?P<who>my (?:[\w-]+ )?(?:doctor|wife|husband|partner|son|daughter|mother|father|mom|dad|lawyer|"
    r"accountant|bank|employer|landlord|assistant|brother|sister|friend|neighbor|neighbour|insurance|"
    r"pharmacy|dentist|office))(?:'ll| will| is going to| can)(?: also| then)? (?P<verb>[\w-]+)\b"
)

# --- the transcript as untrusted data ----------------------------------------------------------------

INJECTION = _re(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+)*(?:previous|prior|"
    r"above|earlier|preceding|system|original|those)?\s*(?:instructions?|prompts?|rules|directions|"
    r"guidelines)\b"
    r"|\b(?:system prompt|new instructions|developer mode|jailbreak)\b"
    r"|\byou are (?:now )?(?:an? )?(?:ai|assistant|language model|chatbot|summari[sz]er)\b"
    r"|\b(?:say|write|state|output|mark|record|report|note|put down|log)\s+(?:that\s+)?(?:my|the|this|our)"
    r"\s+(?:[\w-]+\s+){0,3}(?:was|is|has been|were|got)\s+(?:approved|granted|resolved|refunded|accepted|paid)\b"
)
