"""The words Postcall's text functions agree on: what negates, what only answers, what is a filler, a
number, a month, a weekday, an amount, and which token kinds are critical.

The verifier (app.grounding), the heuristic provider's claim guard and due finder (app.llm.heuristic*),
the due-date resolver (app.text.due_dates), personal-data detection (app.privacy.pii) and role
inference read these lists, so a word means the same to all of them. Words here are lower case with
straight apostrophes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum


class TokenKind(Enum):
    word = "word"
    number = "number"
    amount = "amount"
    percent = "percent"
    time = "time"
    date = "date"
    id = "id"
    negation = "negation"


# The kinds where a one-token difference changes what was said ("$30" vs "$40", "will" vs "won't"): a
# quote or a claim may only carry them when the transcript does.
CRITICAL_KINDS = frozenset(
    {
        TokenKind.number,
        TokenKind.amount,
        TokenKind.percent,
        TokenKind.time,
        TokenKind.date,
        TokenKind.id,
        TokenKind.negation,
    }
)

# --- negations and response particles -------------------------------------------------------------

NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor"})
# Single words that negate what follows in the same clause ("never flying with you again", "I will not").
CLAUSE_NEGATORS = frozenset({"not", "never", "cannot"})
# Words that make evidence negative even without "not": a claim "could not log in" may rest on "the login
# failed". For the claim-level negation check only, never to compare quotes.
NEGATIVE_POLARITY_WORDS = frozenset(
    {"unable", "fail", "failed", "fails", "failing", "refuse", "refused", "refuses", "refusing", "declined",
     "declines", "declining", "denied", "denies", "denying", "without"}
)
# A negative answer to the other party ("anything else?" - "no thank you that was it"). Said first in a
# turn and followed by the answer, it negates nothing in that answer.
NEGATIVE_RESPONSE_PARTICLES = frozenset({"no", "nope", "nah"})
# Words that may open the answer after a response particle. "no" before anything else is read as a
# determiner that negates it ("no fees apply", "no problem"): quoting the rest would flip it.
ANSWER_OPENERS = frozenset(
    {
        "thank", "thanks", "that", "that's", "thats", "i", "i'm", "im", "i've", "it", "it's", "its", "we",
        "we're", "you", "you're", "sir", "ma'am", "maam", "please", "actually", "sorry", "okay", "ok",
        "all", "everything", "just", "the", "this", "he", "she", "they", "there", "there's",
    }
)  # fmt: skip

# --- attribution ----------------------------------------------------------------------------------

# Words that name a party: in a speaker label ("Agent", "CUSTOMER", "Caller 2", "spk_agent") or as the
# subject of a claim ("the caller said").
AGENT_WORDS = frozenset(
    {"agent", "representative", "rep", "operator", "advisor", "adviser", "associate", "csr", "assistant"}
)
CUSTOMER_WORDS = frozenset({"customer", "caller", "client", "user", "member", "patient", "guest", "consumer", "cust"})

# Speaker labels only (app/ingest/roles.py), read by the label's last words as English compounds are
# ("Customer Service Representative" is a representative):
# - titles of the company's staff besides AGENT_WORDS ("Supervisor", "Team Lead", "Account Manager"). Kept
#   apart from AGENT_WORDS because the verifier reads those as a claim's subject too ("the agent said");
#   "lead" alone is a sales prospect, so only "team lead" names staff;
STAFF_TITLES = frozenset(
    {
        "supervisor", "manager", "specialist", "technician", "tech", "advocate", "consultant", "coordinator",
        "officer", "expert", "banker", "teller", "dispatcher", "concierge", "team lead", "team leader",
    }
)  # fmt: skip
# - the company's functions: a label ending in one names the department that answers ("Customer
#   Service", "Member Services", "Help Desk", "Tech Support"), and so does a customer word followed by
#   one ("Customer Care Dana"): a department named after whom it serves is the agent's side, not the
#   customer's. "help" only after a customer word ("Customer Help"): alone it is what a caller asks for;
SERVICE_FUNCTION_WORDS = frozenset(
    {
        "service", "services", "support", "care", "success", "relations", "desk", "helpdesk", "helpline",
        "team", "experience", "center", "centre", "department", "dept",
    }
)  # fmt: skip
SERVICE_FUNCTION_AFTER_CUSTOMER_WORDS = SERVICE_FUNCTION_WORDS | {"help"}
# - machines, neither party ("IVR", "System", "Virtual Agent", "Hold Message"): the whole label. "auto",
#   "virtual" and "hold" only in their phrases ("Auto Claims" is a department).
MACHINE_SPEAKER_WORDS = frozenset(
    {
        "ivr", "system", "bot", "chatbot", "robot", "automated", "recording", "announcement", "voicemail",
        "tts", "music", "auto attendant", "virtual agent", "virtual assistant", "hold message", "hold music",
        "on hold",
    }
)  # fmt: skip
# - of those, the words only a machine is, that may end a longer label ("Customer Support Bot", "Billing IVR");
#   the others ("system", "recording", "music") name a machine only as the whole label ("System Admin" and
#   "Customer Recording" are people).
MACHINE_LABEL_ENDINGS = frozenset({"bot", "chatbot", "ivr", "virtual agent", "virtual assistant", "auto attendant"})

# Verbs that attribute speech or a stance to a party ("the customer said", "the agent confirmed"): a claim
# that opens with one rests on that party's words.
ATTRIBUTION_VERBS = frozenset(
    {
        "say", "says", "said", "ask", "asks", "asked", "tell", "tells", "told", "call", "calls", "called",
        "report", "reports", "reported", "state", "states", "stated", "mention", "mentions", "mentioned",
        "explain", "explains", "explained", "request", "requests", "requested", "want", "wants", "wanted",
        "need", "needs", "needed", "complain", "complains", "complained", "confirm", "confirms",
        "confirmed", "agree", "agrees", "agreed", "decline", "declines", "declined", "refuse", "refuses",
        "refused", "promise", "promises", "promised", "offer", "offers", "offered", "apologize",
        "apologizes", "apologized", "apologise", "apologises", "apologised", "thank", "thanks", "thanked",
        "note", "notes", "noted", "claim", "claims", "claimed", "reply", "replies", "replied", "answer",
        "answers", "answered", "insist", "insists", "insisted", "wonder", "wonders", "wondered",
        "requesting", "asking", "saying", "telling", "stating", "explaining", "complaining", "wanting",
        "acknowledge", "acknowledges", "acknowledged", "decide", "decides", "decided", "inquire", "inquires",
        "inquired", "inquiring", "enquire", "enquires", "enquired", "enquiring", "demand", "demands",
        "demanded", "demanding", "admit", "admits", "admitted", "deny", "denies", "denied", "indicate",
        "indicates", "indicated", "describe", "describes", "described",
    }
)  # fmt: skip

# --- fillers and non-speech ----------------------------------------------------------------------

# Hesitations that carry no content. "like", "you know" and "I mean" are deliberately absent: they are
# content as often as filler ("I'd like to", "do you know my balance"), and the fuzzy stage already
# tolerates an omitted filler phrase.
FILLERS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "ahh", "hmm", "hm", "mm", "mmm"})

# What may stand before a response particle at the start of a turn without making it mid-clause.
TURN_OPENERS = frozenset({"oh", "well", *FILLERS})

# Non-speech markers some ASR engines and corpora put in the text. A known list, not any bracketed
# word: "[3/3]" or "[tested]" are text.
NON_SPEECH_MARKERS = (
    "noise", "laughter", "laugh", "laughs", "inaudible", "unintelligible", "crosstalk", "music", "silence",
    "unk", "cough", "breath", "breathing", "applause", "foreign", "pause", "static", "background", "sound",
    "overlap", "overlapping", "blank_audio", "no_speech",
)  # fmt: skip

# --- numbers --------------------------------------------------------------------------------------

UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
# "fourty" is a common misspelling in transcripts.
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
# Zero to nineteen: the words a spoken number below twenty is one of.
SMALL_NUMBERS = {**UNITS, **TEENS}
NUMBER_WORDS = frozenset({*UNITS, *TEENS, *TENS, *SCALES})
# Digits as they are read out one by one ("four one oh two"): "oh" is zero only there.
SPOKEN_DIGITS = {**{word: str(value) for word, value in UNITS.items()}, "oh": "0"}
# Spoken ordinals become numbers only in a date ("march third", "the third of march") or before a period
# of time ("the second week"): elsewhere "first" and "second" are ordinary words ("first of all", "one
# second please").
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
    "thirtieth": 30,
}  # fmt: skip
ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
# Periods an ordinal counts ("the second week", "the 3rd business day"): the ordinal is then a number.
ORDINAL_PERIODS = frozenset({"day", "week", "month", "year", "quarter", "business", "working", "weekend"})

# A spoken cardinal below a hundred, as a regular expression: "twenty one", "twenty-one", "sixty", "five".
SPOKEN_CARDINAL_PATTERN = (
    "(?:(?:" + "|".join(TENS) + ")(?:[- ](?:"
    + "|".join(word for word in UNITS if word != "zero") + "))?|"
    + "|".join(sorted((word for word in SMALL_NUMBERS if word != "zero"), key=len, reverse=True)) + ")"
)

# --- dates and amounts ----------------------------------------------------------------------------

MONTH_NUMBERS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12, "jan": 1, "feb": 2, "mar": 3, "apr": 4,
    "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
MONTHS = frozenset(MONTH_NUMBERS)
# Each month word as its full name: "Dec" and "December" are the same date.
MONTH_FULL_NAMES = {word: ("january", "february", "march", "april", "may", "june", "july", "august",
                           "september", "october", "november", "december")[number - 1]
                    for word, number in MONTH_NUMBERS.items()}  # fmt: skip
# Month names that are also ordinary words: a date only when a number stands next to them.
AMBIGUOUS_MONTHS = frozenset({"may", "march", "mar", "jan", "jun", "aug", "sep", "oct", "nov", "dec"})
# Monday first: a weekday's position is Python's `date.weekday()`.
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Words that name a day of the week, for the verifier: "weekend" is as much a date as "Saturday".
WEEKDAYS = frozenset({*WEEKDAY_NAMES, "weekend"})
RELATIVE_DAYS = frozenset({"today", "tomorrow", "yesterday", "tonight"})

CURRENCY_SYMBOLS: dict[str, str] = {"$": "dollars", "€": "euros", "£": "pounds"}
CURRENCY_WORDS = frozenset({"dollars", "cents", "euros", "pounds"})
TIME_MARKERS = frozenset({"am", "pm", "oclock"})
# Units of time, as written after a number ("24 hours", "35 mins"): glued to it ("24hours") they are still
# a number and its unit, not an identifier.
TIME_UNIT_WORDS = frozenset(
    {
        "second", "seconds", "sec", "secs", "minute", "minutes", "min", "mins", "hour", "hours", "hr", "hrs",
        "day", "days", "week", "weeks", "wk", "wks", "month", "months", "year", "years", "yr", "yrs",
    }
)  # fmt: skip
# Words after which four digits from 0000 to 2359 are a time of day ("at 1430", "until 0900").
CLOCK_PREPOSITIONS = frozenset({"at", "by", "from", "until", "till"})


def alternation(words: Iterable[str]) -> str:
    """A regular-expression group matching any of `words`, longest first (so "sept" wins over "sep")."""
    return "(?:" + "|".join(re.escape(word) for word in sorted(words, key=lambda word: (-len(word), word))) + ")"


# Words that say the opposite of each other about what happened in a call: a claim saying one where its
# evidence says only the other ("the refund was approved" on "your refund has been denied", "debit card"
# on "credit card") is contradicted, not paraphrased.
OPPOSITE_WORDS: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(one), frozenset(other))
    for one, other in (
        (("approve", "approved", "approves", "approving", "approval"),
         ("deny", "denied", "denies", "denying", "reject", "rejected", "rejects", "rejecting", "rejection",
          "decline", "declined", "declines", "declining")),
        (("accept", "accepted", "accepts", "accepting"), ("reject", "rejected", "rejects", "refuse", "refused")),
        (("credit",), ("debit",)),
        (("increase", "increased", "increases", "increasing"), ("decrease", "decreased", "decreases",
                                                                 "decreasing", "reduce", "reduced", "lower",
                                                                 "lowered")),
        (("upgrade", "upgraded", "upgrades", "upgrading"), ("downgrade", "downgraded", "downgrades",
                                                             "downgrading")),
        (("activate", "activated", "activates", "activating"), ("deactivate", "deactivated", "deactivates",
                                                                 "deactivating")),
        (("enable", "enabled", "enables", "enabling"), ("disable", "disabled", "disables", "disabling")),
        (("lock", "locked", "locks", "locking"), ("unlock", "unlocked", "unlocks", "unlocking")),
        (("block", "blocked", "blocks", "blocking"), ("unblock", "unblocked", "unblocks", "unblocking")),
        (("savings",), ("checking",)),
        (("succeeded", "successful", "successfully"), ("failed", "unsuccessful")),
        (("before",), ("after",)),
    )
)



# The past forms of common irregular verbs, by their base form: "sent" is a doing of "send" as "waived" is of
# "waive" (the verifier reads whether a claim says done what its evidence only promises).
IRREGULAR_PAST_FORMS: dict[str, str] = {
    past: base
    for base, pasts in (
        ("send", ("sent",)), ("resend", ("resent",)), ("give", ("gave", "given")), ("get", ("got", "gotten")),
        ("make", ("made",)), ("pay", ("paid",)), ("repay", ("repaid",)), ("take", ("took", "taken")),
        ("sell", ("sold",)), ("buy", ("bought",)), ("bring", ("brought",)), ("write", ("wrote", "written")),
        ("find", ("found",)), ("keep", ("kept",)), ("lend", ("lent",)), ("spend", ("spent",)), ("build", ("built",)),
        ("begin", ("began", "begun")), ("freeze", ("froze", "frozen")), ("choose", ("chose", "chosen")),
        ("hold", ("held",)), ("withdraw", ("withdrew", "withdrawn")), ("break", ("broke", "broken")),
        ("forgive", ("forgave", "forgiven")), ("show", ("shown",)), ("mistake", ("mistook", "mistaken")),
        ("overpay", ("overpaid",)), ("unfreeze", ("unfroze", "unfrozen")),
    )
    for past in pasts
}
