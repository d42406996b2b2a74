"""Claim support: a claim is grounded only when all its evidence is and the evidence says what it says.

Three checks sit on top of quote alignment:

- every claim needs evidence (`no_evidence`), and all of it grounded (the first failing evidence's
  reason becomes the claim's);
- the claim's own critical tokens must appear in its evidence: "$45 refund" resting on "I'll refund
  the $40" is `unsupported_number`, even though the quote itself is verbatim;
- an action item the agent owns must rest on agent speech (`owner_mismatch`); one the customer owns
  may rest on either side's words. Utterances of unknown role never cause an owner mismatch;
- a claim that says what a party said ("The customer said ...", "the agent confirmed ...") must rest on
  some speech of that party (`speaker_mismatch`): the other party's words, or a speaker of unknown
  role, do not show who said it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Protocol, cast

from app.grounding.align import DROPPABLE_WORDS, FUNCTION_WORDS, PreparedTranscript
from app.grounding.given_names import GIVEN_NAMES
from app.grounding.reasons import Reason
from app.ingest.roles import role_from_label
from app.schemas.extraction import ActionItem, Extraction, Owner, Statement
from app.schemas.grounding import ClaimKind, ClaimStatus, VerificationReport, VerifiedClaim, VerifiedEvidence
from app.schemas.transcript import Role, Transcript, Utterance
from app.text.due_dates import numeric_date_parts
from app.text.lexicon import (
    AGENT_WORDS,
    ATTRIBUTION_VERBS,
    CLAUSE_NEGATORS,
    CUSTOMER_WORDS,
    FILLERS,
    IRREGULAR_PAST_FORMS,
    MONTH_NUMBERS,
    MONTHS,
    NEGATIONS,
    NEGATIVE_POLARITY_WORDS,
    NEGATIVE_RESPONSE_PARTICLES,
    OPPOSITE_WORDS,
    SERVICE_FUNCTION_WORDS,
    STAFF_TITLES,
    WEEKDAYS,
    alternation,
)
from app.text.normalize import (
    BARE_NEGATIONS,
    NEGATION_VALUE,
    TokenKind,
    mixes_scripts,
    negates_clause,
    normalize,
    visible_text,
)

NUMERIC_KINDS = frozenset({TokenKind.number, TokenKind.amount, TokenKind.percent, TokenKind.time})
# A claim's subject when it is a party ("The customer", "Reason: the caller"), the verb after it, and an
# adverb that may stand between them ("the agent also confirmed").
_ATTRIBUTION = re.compile(
    rf"\s*(?:\w+(?: \w+)?:\s*)?(?:the\s+)?(?P<party>{alternation(AGENT_WORDS | CUSTOMER_WORDS)})"
    # An apposition: "The customer, Mary Smith, said".
    r"(?:\s*,\s*[^,]{1,40}?\s*,)?\s+"
    r"(?:(?:has|have|had|did|does|also|then|just|first|later|initially|again|only|never|not|\w+ly)\s+){0,2}"
    # "is asking" says who spoke, "was told" does not (a passive: someone else said it).
    r"(?:(?P<progressive>is|are|was|were)\s+)?(?P<verb>[a-z]+)\b",
    re.IGNORECASE,
)

# "According to the customer, ..." says who said it as plainly.
_ACCORDING_TO = re.compile(
    rf"\s*(?:\w+(?: \w+)?:\s*)?according\s+to\s+(?:the\s+)?(?P<party>{alternation(AGENT_WORDS | CUSTOMER_WORDS)})\b",
    re.IGNORECASE)

_cached: tuple[Sequence[Utterance], PreparedTranscript] | None = None


def align_quote(utterances: Sequence[Utterance], cited_index: int, quote: str) -> list[VerifiedEvidence]:
    """Align one quote cited at `cited_index`. Consecutive calls on the same list reuse its index."""
    return _prepared(utterances).align_quote(cited_index, quote)


def verify_extraction(transcript: Transcript, extraction: Extraction) -> VerificationReport:
    """Verify every claim of `extraction`: reason, outcome, summary items, then action items."""
    prepared = PreparedTranscript(transcript.utterances)
    claims: list[VerifiedClaim] = []
    if extraction.reason is not None:
        claims.append(verify_claim(prepared, ClaimKind.reason, extraction.reason))
    if extraction.outcome is not None:
        claims.append(verify_claim(prepared, ClaimKind.outcome, extraction.outcome))
    claims.extend(verify_claim(prepared, ClaimKind.summary, statement) for statement in extraction.summary)
    claims.extend(verify_claim(prepared, ClaimKind.action_item, item) for item in extraction.action_items)
    return VerificationReport(claims=claims)


def verify_claim(prepared: PreparedTranscript, kind: ClaimKind, statement: Statement) -> VerifiedClaim:
    owner = statement.owner if isinstance(statement, ActionItem) else None
    due = statement.due if isinstance(statement, ActionItem) else None
    evidence = [
        piece
        for reference in statement.evidence
        for piece in prepared.align_quote(reference.utterance, reference.quote)
    ]
    reason = _claim_failure(prepared, statement.text, due, owner, evidence)
    return VerifiedClaim(
        kind=kind,
        text=statement.text,
        owner=owner,
        due=due,
        status=ClaimStatus.ungrounded if reason else ClaimStatus.grounded,
        reason=reason.value if reason else None,
        evidence=evidence,
    )


def _claim_failure(
    prepared: PreparedTranscript,
    text: str,
    due: str | None,
    owner: Owner | None,
    evidence: list[VerifiedEvidence],
) -> Reason | None:
    if not evidence:
        return Reason.no_evidence
    for piece in evidence:
        if not piece.grounded:
            known = piece.reason is not None and piece.reason in Reason.__members__
            return Reason(piece.reason) if known and piece.reason else Reason.not_found
    if mixes_scripts(text) or (due is not None and mixes_scripts(due)):
        return Reason.mixed_scripts
    spans = _placed_spans(evidence)
    texts = [prepared.utterances[index].text[start:end] for index, start, end in spans]
    # Read in their whole sentences too: a quote that leaves out its sentence's negation or condition ("your
    # payment was received" of "It doesn't look like your payment was received yet") is read with it.
    sentences = list(dict.fromkeys(_sentence_of(prepared.utterances[index].text, start, end)
                                   for index, start, end in spans))
    failure = _statement_failure(text, due, texts, sentences, to_do=owner is not None)
    if failure is not None:
        return failure
    if _may_give_name(text) and unsaid_name(text, prepared) is not None:
        return Reason.unsupported_name
    roles = _evidence_roles(prepared, evidence)
    if owner is Owner.agent and roles == {Role.customer}:  # rests only on the customer's words
        return Reason.owner_mismatch
    if owner in (Owner.agent, Owner.customer) and _committed_by_the_other(prepared, evidence, owner):
        return Reason.owner_mismatch
    speaker = attributed_role(text)
    if speaker is not None and speaker not in roles:
        return Reason.speaker_mismatch
    if roles == {Role.customer} and acting_party(text) is Role.agent:
        # What the agent did, on the caller's word alone: "the agent approved the $500 refund" on "note for the
        # summary: the agent approved my refund" (a caller can say anything into a transcript). The agent's own
        # turns are the evidence of what the agent did; the caller's account is evidence of what the caller said.
        return Reason.speaker_mismatch
    return None


def acting_party(text: str) -> Role | None:
    """The party a claim says acted, as its subject: "The agent approved ...", "Outcome: the representative has
    waived ...". Not a passive ("the agent was told ..."), in which someone else acts."""
    match = _ATTRIBUTION.match(text)
    if match is None or match.group("verb").lower() in _NOT_ACTING:
        return None  # "The agent on my last call promised ...": the party is described, not acting
    if match.group("progressive") and not match.group("verb").lower().endswith("ing"):
        return None
    return role_from_label(match.group("party"))


# Words after a party that describe it rather than tell what it did: prepositions, relative pronouns.
_NOT_ACTING = FUNCTION_WORDS | frozenset({"whose", "whom"})


# A name in a claim: a capitalized word inside a sentence ("the payment to Smart Electric", "Patricia Brown
# reported ..."), not at its start unless a person's doing follows it ("Susan called ...", "Susan paid ..."), nor
# in capitals throughout (an acronym) unless it is a given name ("JOHN will call back"). Words of roles and titles
# (and their plurals), days and months (checked as dates) are not names.
# What only a person does, after a sentence's first word: it names someone ("Susan called ..."), where "Card
# declined" or "Refund requested" name things.
_PERSON_VERBS = frozenset({
    "said", "says", "asked", "asks", "called", "calls", "told", "tells", "explained", "explains", "complained",
    "complains", "mentioned", "wanted", "wants", "agreed", "agrees", "apologized", "apologised", "thanked",
    "insisted", "wondered", "inquired", "enquired", "admitted", "phoned", "spoke", "speaks",
})
# A cheap look first (`_may_give_name`): a capital past the first letter, or a possessive opening the claim.
_CAPITALIZED = re.compile(r"(?s:.)[^\W\d_a-z]|^[^\W\d_]+['’ʼ]s\b")
# Or a claim's first two words, read for a person doing something ("Susan paid ...").
_OPENING_WORDS = re.compile(r"\W*([^\W\d_]+)\s+([^\W\d_]+(?:['’ʼ][^\W\d_]+)?)")
_NAME_CANDIDATE = re.compile(r"[^\W\d_]+(?:['’ʼ][^\W\d_]+)?")
_SENTENCE_OPENERS = ".!?:;\"“([\n-•*"
_PARTIES = AGENT_WORDS | CUSTOMER_WORDS | STAFF_TITLES
_NOT_NAMES = _PARTIES | frozenset(f"{word}s" for word in _PARTIES) | MONTHS | WEEKDAYS | frozenset({
    "i", "mr", "mrs", "ms", "miss", "dr", "sir", "madam", "ma'am", "mx",
})
# Words that open a sentence before a name ("Then Mary called"), capitalized as the sentence's first word.
_SENTENCE_OPENING_WORDS = FUNCTION_WORDS | DROPPABLE_WORDS | frozenset({
    "then", "when", "after", "before", "later", "finally", "also", "next", "meanwhile", "today", "yesterday",
    "however", "although", "because", "since", "while", "once", "unfortunately", "additionally", "overall",
})
# Who does things without being named, opening a sentence before a person's doing: "Nobody called", "Someone
# asked", "Support called back", "Billing called the customer".
_UNNAMED_DOERS = NEGATIONS | SERVICE_FUNCTION_WORDS | frozenset({
    "someone", "somebody", "everyone", "everybody", "anyone", "anybody", "billing", "sales", "fraud", "dispatch",
    "collections", "management", "security", "shipping", "returns",
})
# "I'm", "I've", "I'll", "I'd": the speaker, capitalized as "I" is.
_FIRST_PERSON = ("i'", "i’", "iʼ")
# Prefixes of a said word shorter than this are not the same name ("Al" in "alright").
_NAME_PREFIX_MIN_CHARS = 4


def _name_runs(text: str, *, in_capitals_only: bool = False) -> list[list[str]]:
    """The words of `text` written as names, in runs of words next to each other ("Patricia Brown"):
    capitalized, not all capitals unless a given name ("MARIA"), and inside a sentence; opening one, only before
    another such word, as a possessive or before a person's doing ("Patricia Brown reported", "Chris's refund",
    "Susan paid"), since "Finally" or "Payment" open sentences too. `in_capitals_only`: of a title ("Lost Debit
    Card"), whose capitals mark no names, only given names in capitals."""
    runs: list[list[str]] = []
    candidates = list(_NAME_CANDIDATE.finditer(text))
    previous_end = -1
    for position, match in enumerate(candidates):
        word = match.group()
        if not _given_name_in_capitals(word) and (in_capitals_only or not _titlecase(word)):
            continue
        bare = _POSSESSIVE.sub("", word)
        before = text[: match.start()].rstrip()
        if (not before or before[-1] in _SENTENCE_OPENERS) and not _LABELLED.search(before):
            following = candidates[position + 1] if position + 1 < len(candidates) else None
            # The word right after it, with nothing but spaces between ("" where a comma or the end comes first).
            after = following.group() if following is not None and not text[match.end() : following.start()].strip() \
                else ""
            next_is_name = bool(after) and _titlecase(after)
            # "Susan called to dispute ...": a lone word opening a sentence, with a person's doing after it.
            person_acts = bool(after) and _names_a_doer(bare, after)
            if (bare == word and not next_is_name and not person_acts) or bare.lower() in _SENTENCE_OPENING_WORDS:
                continue
        bare = bare.lower()
        if len(bare) > 1 and bare not in _NOT_NAMES and not bare.startswith(_FIRST_PERSON):
            if runs and previous_end >= 0 and not text[previous_end : match.start()].strip():
                runs[-1].append(bare)
            else:
                runs.append([bare])
            previous_end = match.end() if bare == word.lower() else -1  # a possessive ends its run
        else:
            previous_end = -1
    return runs


def _may_give_name(text: str) -> bool:
    """A cheap look whether `text` may give a name (`_name_runs` reads which): a capital past its first letter, a
    possessive or a person's doing after its first word."""
    if _CAPITALIZED.search(text):
        return True
    opening = _OPENING_WORDS.match(text)
    return opening is not None and _titlecase(opening[1]) and _names_a_doer(opening[1], opening[2])


def _names_a_doer(word: str, following: str) -> bool:
    """Whether `word`, opening a sentence before `following`, names a person doing something: before what only a
    person does ("Susan called"; "Card declined" names a thing), or a given name before a verb of its own
    ("Susan paid", "Mark sent", "JOHN will call"; "Payment posted" and "Billing sent" open with things)."""
    opener, following = word.lower(), following.lower()
    if opener in _UNNAMED_DOERS:
        return False
    return following in _PERSON_VERBS or (opener in GIVEN_NAMES and _finite_verb(following))


def _finite_verb(word: str) -> bool:
    """Whether `word` (in lower case) is a verb as its subject's own: a past form ("paid", "updated"), a third
    person's present ("pays", "sends"), an auxiliary or a modal ("has", "will", "didn't")."""
    return _doing_stem(word) is not None or _THIRD_PERSON_PRESENT.fullmatch(word) is not None or (
        _AUXILIARY.fullmatch(word) is not None)


# "pays", "sends", "updates"; not "-ss", "-us" or "-is" ("class", "bonus", "analysis").
_THIRD_PERSON_PRESENT = re.compile(r"[^\W\d_]{2,}[^\W\d_isu]s")
_AUXILIARY = re.compile(r"(?:is|was|has|had|does|did|will|would|can|could|shall|should|may|might|must)"
                        r"(?:n['’ʼ]t)?|won['’ʼ]t|can['’ʼ]t|cannot")
# In capitals, a word of three letters is most often a code, given name or not ("flights to MIA", the airport):
# a given name in capitals is read from this many letters ("JOHN", not "AMY").
_CAPITALS_NAME_MIN_CHARS = 4


def _given_name_in_capitals(word: str) -> bool:
    """Whether `word` is a given name written in capitals ("JOHN", "MARIA'S"): read as a name by what it is, since
    codes and acronyms are written so too ("SSN", "ETA", "PLAN-X")."""
    if not word.isupper():
        return False
    bare = _POSSESSIVE.sub("", word)
    return len(bare) >= _CAPITALS_NAME_MIN_CHARS and bare.lower() in GIVEN_NAMES


_POSSESSIVE = re.compile(r"['’ʼ]s$", re.IGNORECASE)


def _titlecase(word: str) -> bool:
    bare = _POSSESSIVE.sub("", word)
    return (word[0].isupper() and (len(word) == 1 or bare[1:].islower())) or _CLAN_NAME.fullmatch(bare) is not None


# Names capitalized inside: "O'Malley", "McDonald", "MacLeod".
_CLAN_NAME = re.compile(r"(?:O['’ʼ]|Mc|Mac)[^\W\d_a-z][^\W\d_A-Z]+")
# A name given after a party's label or inside brackets is not a sentence's first word: "Caller: Susan",
# "the customer (Susan)".
_LABELLED = re.compile(rf"(?:\b(?:{alternation(AGENT_WORDS | CUSTOMER_WORDS)}|name)\s*:|[(\[]|\b(?:mr|mrs|ms|dr)\.)$",
                       re.IGNORECASE)


class _CallWords:
    """The words a call says, and its speakers' labels, read for names: whether a name is said (`said`), and the
    words turn by turn (`turns`, only when asked for). Built once per prepared transcript (`_call_words`), and
    only for a claim that gives a name; `said` searches the call's text rather than indexing its words."""

    def __init__(self, prepared: PreparedTranscript) -> None:
        self._utterances = prepared.utterances
        # Turns and labels apart by a separator no text holds (a turn may hold line breaks of its own).
        self._text = _TURN_SEPARATOR.join(f"{utterance.speaker}{_TURN_SEPARATOR}{utterance.text}"
                                          for utterance in prepared.utterances)
        self._lowered = self._text.lower()
        # Lower case keeps the text's length (so its positions) for most alphabets; where it does not, a run-together
        # word's inner parts ("Air" of "AmericanAir") are not found, its whole and its start still are.
        self._same_positions = len(self._lowered) == len(self._text)
        self._split: str | None = None

    def said(self, name: str) -> bool:
        """`name` (in lower case) begins a word of the call ("Sainsbury" of "@sainsburys"; "Air" of
        "@AmericanAir"), or is one (a name shorter than `_NAME_PREFIX_MIN_CHARS` letters, whole)."""
        lowered, text = self._lowered, self._text
        whole = len(name) < _NAME_PREFIX_MIN_CHARS
        at = lowered.find(name)
        while at >= 0:
            end = at + len(name)
            starts = at == 0 or not lowered[at - 1].isalpha() or (
                self._same_positions and text[at].isupper() and text[at - 1].islower())
            if starts and (not whole or end == len(lowered) or not lowered[end].isalpha()):
                return True
            at = lowered.find(name, at + 1)
        return False

    def said_together(self, run: Sequence[str]) -> bool:
        """Whether one turn of the call (or a speaker's label) says the words of `run` in order, each
        within `_NAME_GAP_WORDS` words of the one before ("john, last name smith" says "John Smith")."""
        pattern = _together(tuple(run))
        if pattern.search(self._lowered) is not None:
            return True
        if self._split is None:  # run-together words apart: "@TacoBellTeam" says "Taco Bell"
            self._split = _CAMEL_BOUNDARY.sub(" ", self._text).lower()
        return pattern.search(self._split) is not None


_CAMEL_BOUNDARY = re.compile(r"(?<=[^\W\d_A-Z])(?=[^\W\d_a-z])")


_TURN_SEPARATOR = "\x1e"
# What lies between two words of one turn: anything but a letter, a digit or the turns' separator ("_" included:
# "@British_Airways" says "British Airways").
_GAP = r"(?:[^\w\x1e]|_)+"


@functools.lru_cache(maxsize=1024)
def _together(run: tuple[str, ...]) -> re.Pattern[str]:
    # Within one turn: the gaps between words never cross the separator the turns are joined by.
    gap = rf"(?:{_GAP}[^\W_]+){{0,{_NAME_GAP_WORDS - 1}}}{_GAP}"
    # Its first word begins a word, as `said` reads it: after anything but a letter ("@British_Airways").
    return re.compile(r"(?<![^\W\d_])" + gap.join(re.escape(word) for word in run))


def _call_words(prepared: PreparedTranscript) -> _CallWords:
    if prepared.names is None:
        prepared.names = _CallWords(prepared)
    return cast(_CallWords, prepared.names)


# The words of a name said together lie this many words apart at most: "john, last name smith" is "John Smith".
_NAME_GAP_WORDS = 4
_NAME_MAX_WORDS = 4


def _headline_case(text: str) -> bool:
    """Whether `text` is written as a title, most of its words capitalized ("Branch Hours Inquiry", "Reason:
    Lost Debit Card"), as a model may write a reason or an outcome: its capitals mark no names."""
    words = [word for word in _NAME_CANDIDATE.findall(text) if word.lower() not in _TITLE_SMALL_WORDS]
    return len(words) >= _HEADLINE_MIN_WORDS and sum(word[0].isupper() for word in words) >= \
        _HEADLINE_SHARE * len(words)


_HEADLINE_MIN_WORDS = 2
# A sentence naming people and places has a capitalized word for every one or two of its others ("David paid
# $132 to Smart Water": 3 of 5): a title, nearly all.
_HEADLINE_SHARE = 0.8
# Words a title leaves in small letters ("Request for Account Balance").
_TITLE_SMALL_WORDS = frozenset({"a", "an", "the", "of", "for", "to", "and", "or", "in", "on", "at", "with", "by",
                                "from", "about", "via", "per"})


def unsaid_name(claim: str, prepared: PreparedTranscript) -> str | None:
    """A name the claim gives that the call never says, if any: "Mary" for a caller who said "my name is
    patricia", "Harper Electric" for "smart electric" (unless somebody said "Harper"); and a name of several
    words whose words the call says apart, in different turns ("Elizabeth Brown" where the agent is Elizabeth
    and the caller Patricia Brown). A name is said when a word of the call is it or begins with it
    ("Sainsbury" in "@sainsburys", "Amazon" in "@AmazonHelp"); "UPS", in capitals, is not read, a given name in
    capitals is ("JOHN"). A fabricated detail nobody could check against the call."""
    visible = visible_text(claim)
    # "Lost Debit Card Replacement": capitals say nothing of names, but a given name in capitals still is one.
    runs = _name_runs(visible, in_capitals_only=_headline_case(visible))
    if not runs:
        return None  # capitals, but no name (most claims): the call's words are not indexed
    words = _call_words(prepared)
    for run in runs:
        for name in run:
            if not words.said(name):
                return name
        # (A longer run is a title, not a name; read word by word only, which also bounds the search's work.)
        if 1 < len(run) <= _NAME_MAX_WORDS and not words.said_together(run):
            return " ".join(run)
    return None


# The words of a due phrase that say when, besides the critical ones (numbers, weekdays, months, "today"):
# each becomes a date or a time when the phrase is resolved, so the evidence must say it too. "next month"
# resting on "I will email you today" had no critical token and was stored with a date a month out.
DUE_TIME_WORDS = frozenset({
    "day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours", "minute", "minutes",
    "business", "working", "weekend", "fortnight", "noon", "midday", "midnight", "morning", "afternoon",
    "evening", "night", "tonight", "next", "end", "eod", "eow", "eom", "cob", "eob", "close", "thing",
    "hr", "hrs", "min", "mins", "wk", "wks", "yr", "yrs", "immediately", "asap", "soon", "couple", "few",
    # "after Friday" is a later date than "Friday". Not "before": "before Friday" retells "by Friday" (and on
    # "after", it is `opposite_in_evidence`).
    "after",
})


# A period named relative to the call in a claim's text ("will call back next week", "within a month"): it
# says when as a due phrase does, so its words must be in the evidence too ("next week" on "tomorrow").
_RELATIVE_PERIOD = re.compile(
    r"\b(?:next|this|coming|following|within\s+(?:a|one|the\s+next|the)|in\s+a|(?:by\s+)?(?:the\s+)?end\s+of\s+"
    r"(?:the\s+|this\s+|next\s+)?|per|each|every|a\s+couple\s+of|a\s+few|couple\s+of|few)\s*"
    r"(?:business\s+day|working\s+day|day|week|weekend|month|year|fortnight|hour|morning|afternoon|evening|night)s?\b"
    # A part of a day, said with the day: "tomorrow morning", "this afternoon" (above), "tonight".
    r"|\b(?:today|tomorrow|tonight)(?:\s+(?:morning|afternoon|evening|night))?\b",
    re.IGNORECASE)


_NEXT_DAY = re.compile(r"\bnext\s+(?:day\b|(morning|afternoon|evening|night)\b)", re.IGNORECASE)


def _unsaid_period(text: str, evidence_texts: Sequence[str], evidence_words: set[str]) -> Reason | None:
    """What a period `text` names relative to the call says that its evidence does not (`_unsaid_when`), if
    anything. "The next day" and "the next morning" are how a summary retells "tomorrow" and "tomorrow
    morning"."""
    periods = " ".join(match.group() for match in _RELATIVE_PERIOD.finditer(text))
    periods = _NEXT_DAY.sub(lambda match: f"tomorrow {match.group(1) or ''}", periods)
    return _unsaid_when(periods, evidence_texts, evidence_words) if periods else None


def _unsaid_when(due: str, evidence_texts: Sequence[str], evidence_words: set[str]) -> Reason | None:
    """What a due phrase (or a period a claim names) says of when that its evidence does not: a word
    (`unsupported_date`: "within the hour" on "I'll call you back tomorrow"), or a unit of time said as one
    that the evidence counts otherwise (`unsupported_number`: "within the hour" on "in two hours")."""
    if _unsaid_time_words(due, evidence_words=evidence_words, evidence_texts=evidence_texts):
        return Reason.unsupported_date
    if _one_counted_otherwise(due, evidence_texts):
        return Reason.unsupported_number
    return None


# One form of each time word: plurals, abbreviations, and the synonyms "working day" / "business day".
_SINGULAR_UNITS = {"days": "day", "weeks": "week", "months": "month", "years": "year", "hours": "hour",
                   "minutes": "minute", "working": "business", "hr": "hour", "hrs": "hour", "min": "minute",
                   "mins": "minute", "wk": "week", "wks": "week", "yr": "year", "yrs": "year", "asap": "soon"}


# A count of a unit of time that is one of a larger unit, said in other words: "in the next 60 minutes" says
# "within the hour" (and both resolve to the same moment). Not "24 hours" for "day" nor "7 days" for "week":
# "within the day" and "within the week" end with the day and the week.
_ONE_OF_A_LARGER_UNIT = {("60", "minute"): "hour"}
_LARGER_UNITS = frozenset(_ONE_OF_A_LARGER_UNIT.values())
_LARGER_UNIT_COUNTS = frozenset(number for number, _ in _ONE_OF_A_LARGER_UNIT)
_SMALLER_UNITS = frozenset(unit for _, unit in _ONE_OF_A_LARGER_UNIT)


def _less_what_a_larger_unit_says(
    detail: str, claim_values: Sequence[tuple[TokenKind, str]], evidence_texts: Sequence[str]
) -> tuple[tuple[TokenKind, str], ...]:
    """`claim_values` less each count the detail says of a unit that its evidence says as one of a larger
    unit: "within 60 minutes" rests on "within the hour" as "within the hour" rests on "in 60 minutes"."""
    larger = {_ONE_OF_A_LARGER_UNIT[pair]: pair[0] for pair in numbers_with_units(detail)
              if pair in _ONE_OF_A_LARGER_UNIT}
    values = list(claim_values)
    for unit in {unit for text in evidence_texts for unit, count in _counted_units(text) if count == "1"}:
        number = larger.get(unit)
        found = next((index for index, (_, value) in enumerate(values) if value == number), None)
        if found is not None:
            del values[found]
    return tuple(values)


def _unsaid_time_words(due: str, *, evidence_words: set[str], evidence_texts: Sequence[str]) -> bool:
    """Whether the due phrase has a word saying when that its evidence does not say ("a week" and "two
    weeks" both say "week": the number is the critical check's, and `_one_counted_otherwise`'s)."""
    said = {_SINGULAR_UNITS.get(word, word) for word in evidence_words}
    unsaid = {unit for word in normalize(visible_text(due)).tokens
              if word in DUE_TIME_WORDS and (unit := _SINGULAR_UNITS.get(word, word)) not in said}
    # Rare: the counts are read only then. "60 minutes" in the evidence says "hour"; in the due phrase, its
    # "minutes" is said by an evidence that says "hour" (its count was the critical check's).
    if unsaid & _LARGER_UNITS:
        unsaid.difference_update(_ONE_OF_A_LARGER_UNIT.get(pair) for text in evidence_texts
                                 for pair in numbers_with_units(text))
    if unsaid & _SMALLER_UNITS:
        unsaid.difference_update(pair[1] for pair in numbers_with_units(due) if _ONE_OF_A_LARGER_UNIT.get(pair) in said)
    return bool(unsaid)


# Words before a unit of time that make it one: "within the hour", "in an hour", "the next business day".
_ONE_OF = frozenset({"a", "an", "the", "next", "one", "1"})


def _counted_units(text: str) -> list[tuple[str, str]]:
    """Each unit of time `text` says, in one form, with the count it is said with: "1" when one ("within the
    hour", "in an hour", "in 1 hour"), the number when another ("in 2 hours", "within 3 business days"), ""
    when none is said ("a couple of hours", "hours later")."""
    normalized = normalize(visible_text(text))
    tokens, kinds = normalized.tokens, normalized.kinds
    counted = []
    for index, token in enumerate(tokens):
        unit = _TIME_UNITS.get(token)
        if unit is None:
            continue
        before = index - 1
        while before >= 0 and tokens[before] in _UNIT_QUALIFIERS:
            before -= 1
        previous = tokens[before] if before >= 0 else ""
        if before >= 0 and kinds[before] in NUMERIC_KINDS and not previous.isalpha():
            counted.append((unit, previous))
        else:
            counted.append((unit, "1" if token == unit and previous in _ONE_OF else ""))
    return counted


def _one_counted_otherwise(due: str, evidence_texts: Sequence[str]) -> bool:
    """Whether the due phrase says one of a unit of time ("within the hour", "in a day") that its evidence
    says only with another count ("I'll call you back in two hours", "within 3 days"): it names another time.
    Evidence that says the unit with no count ("a couple of hours") or as one too contradicts nothing."""
    ones = {unit for unit, count in _counted_units(due) if count == "1"}
    if not ones:
        return False
    counts: dict[str, set[str]] = {}
    for text in evidence_texts:
        for unit, count in _counted_units(text):
            if unit in ones:
                counts.setdefault(unit, set()).add(count)
    return any(said and not said & {"1", ""} for said in counts.values())


class PlacedQuote(Protocol):
    """An evidence quote and where it was found (a verified piece of evidence, or one read back from the API)."""

    @property
    def quote(self) -> str: ...
    @property
    def utterance(self) -> int | None: ...
    @property
    def char_start(self) -> int | None: ...
    @property
    def char_end(self) -> int | None: ...


def spoken_words(evidence: PlacedQuote, utterance_texts: Mapping[int, str] | None) -> str:
    """What the transcript says where `evidence` points (`utterance_texts` by utterance index); its quote
    when it points nowhere or the transcript is not at hand. A fuzzy match's quote is the model's: "Maria
    will call you" found on the transcript's "Mario will call you"."""
    if utterance_texts is None or evidence.utterance is None or evidence.char_start is None \
            or evidence.char_end is None or evidence.utterance not in utterance_texts:
        return evidence.quote
    return utterance_texts[evidence.utterance][evidence.char_start : evidence.char_end]


def attributed_role(text: str) -> Role | None:
    """The party a claim says spoke: "The customer said ...", "Outcome: the agent confirmed ..."."""
    according = _ACCORDING_TO.match(text)
    if according is not None:
        return role_from_label(according.group("party"))
    match = _ATTRIBUTION.match(text)
    if match is None or match.group("verb").lower() not in ATTRIBUTION_VERBS:
        return None
    if match.group("progressive") and not match.group("verb").lower().endswith("ing"):
        return None
    return role_from_label(match.group("party"))


# Who an evidence sentence gives the task to: its speaker ("I'll email you the form", "we will send a
# technician"), or the one spoken to ("you'll need to mail us a copy", "you have to sign the form").
_SPEAKER_COMMITS = re.compile(
    r"\b(?:i|we)\s*(?:['’ʼ]ll|will|shall|(?:am|are|['’ʼ]m|['’ʼ]re)\s+going\s+to)\s+"
    r"(?!not\b|never\b|need\b|have\s+you\b|ask\s+you\b|want\s+you\b|get\s+you\s+to\b)",
    re.IGNORECASE)
_LISTENER_TASKED = re.compile(
    r"\byou\s*(?:(?:['’ʼ]ll|will)\s+)?(?:need\s+to|have\s+to|must)\b"
    r"|\b(?:i|we)\s*(?:['’ʼ]ll|will|would|['’ʼ]d)?\s*need\s+you\s+to\b",
    re.IGNORECASE)
# A request beside a commitment leaves the sentence to both: "Please DM us and we'll review it". Alone it
# decides nothing ("Please allow 24 hours" says nothing of who acts).
_REQUEST = re.compile(
    r"\b(?:please|kindly|feel\s+free\s+to)\b|\b(?:could|can|would)\s+you\s+(?!like\b|prefer\b)"
    # An imperative addressed to the speaker's side: "reach out to us", "drop us a DM", "let me know".
    r"|\b(?:to|send|give|drop|dm|email|e-mail|call|contact|let|message|text|ping|tell|show)\s+(?:us|me)\b",
    re.IGNORECASE)
# A request that asks the one spoken to to do something ("Please contact our reservations team", "can you send
# me a new one"): with no commitment of the speaker beside it, it gives the task to the listener. Not the
# requests to wait, to note or to bear with the speaker ("please allow 24 hours", "could you please hold"),
# which say nothing of who acts.
_LISTENER_ASKED = re.compile(
    r"(?:\b(?:please|kindly)|\b(?:could|can|would|will)\s+you(?:\s+please)?)\s+"
    r"(?!allow\b|note\b|be\b|bear\b|expect\b|wait\b|hold\b|rest\b|understand\b|know\b|let\s+(?:me|us)\b|"
    r"accept\b|excuse\b|forgive\b|like\b|prefer\b|mind\b|see\b|hear\b|tell\s+(?:me|us)\b|confirm\b|verify\b|"
    r"provide\b|give\s+(?:me|us)\b|stay\b|remain\b|hang\b|stand\b|keep\b|look\b)(?=[a-z])",
    re.IGNORECASE)
# The speaker acting in the same sentence ("please stay on the line while I transfer you", "please check your
# email for the label I just sent"): the request alone no longer says who does what the sentence tells.
# A purpose ("DM us so we can look into it") is not the speaker acting.
_SPEAKER_ACTS = re.compile(r"\b(?<!so )(?<!so that )(?:i|we)\b(?!\s*['’ʼ]?d\s+like\b)(?!\s+(?:can|could|may|might)\b)"
                           r"|\b(?:i|we)['’ʼ](?:m|ve|re|ll)\b", re.IGNORECASE)
_OTHER_PARTY = {Role.agent: Owner.customer, Role.customer: Owner.agent}


def _committed_by_the_other(prepared: PreparedTranscript, evidence: list[VerifiedEvidence], owner: Owner) -> bool:
    """Whether every sentence of the evidence that gives the task to someone gives it to the other party:
    a customer-owned "Email the dispute form" on the agent's "I'll email you the dispute form today", an
    agent-owned "Mail a copy of the ID" on the agent's "You'll need to mail us a copy of your ID". A
    sentence that says neither (or both) decides nothing; a speaker of unknown role, nothing."""
    tasked: set[Owner] = set()
    for piece in evidence:
        if piece.utterance is None or piece.char_start is None or piece.char_end is None:
            continue
        utterance = prepared.utterances[piece.utterance]
        if utterance.role not in _OTHER_PARTY:
            continue
        sentence = _sentence_of(utterance.text, piece.char_start, piece.char_end)
        if _SPEAKER_COMMITS.search(sentence):
            tasked.add(Owner(utterance.role.value))
            if _REQUEST.search(sentence):
                tasked.add(_OTHER_PARTY[utterance.role])
        elif _LISTENER_ASKED.search(sentence) and not _SPEAKER_ACTS.search(sentence):
            tasked.add(_OTHER_PARTY[utterance.role])
        if _LISTENER_TASKED.search(sentence):
            tasked.add(_OTHER_PARTY[utterance.role])
    return bool(tasked) and owner not in tasked


def _evidence_roles(prepared: PreparedTranscript, evidence: list[VerifiedEvidence]) -> set[Role]:
    return {prepared.utterances[piece.utterance].role for piece in evidence if piece.utterance is not None}


def unsupported_claim_detail(text: str, evidence_texts: Sequence[str]) -> Reason | None:
    """Which critical detail (number, amount, date, ID, negation) of `text` the evidence texts lack, if any.

    The check a grounded claim passes once its quotes are found; the heuristic provider runs it on the
    claims it writes, so both agree on what a claim may say.
    """
    return _statement_failure(text, None, evidence_texts, evidence_texts, to_do=False)


def _statement_failure(
    text: str, due: str | None, texts: Sequence[str], sentences: Sequence[str], *, to_do: bool
) -> Reason | None:
    """What a statement (its text, and an action item's due phrase) says that its evidence texts do not
    support, if anything; `sentences`: the sentences the texts lie in (the texts themselves when the caller
    knows no more). The one sequence of checks for verified claims and the heuristic provider's rewrites."""
    # The due phrase is checked on its own: it usually repeats what the text says ("within 5 days").
    profile: Profile | None = None
    for detail in (text, due):
        claim_values = claim_details(detail) if detail else ()
        if not detail or not claim_values:
            continue
        claim_values = _less_what_its_dates_say(detail, _less_what_its_digits_say(detail, claim_values, texts), texts)
        if _unit_mismatch(detail, texts):
            return Reason.unsupported_number
        if profile is None:
            profile = _texts_profile(texts)
        if not _LARGER_UNIT_COUNTS.isdisjoint(value for _, value in claim_values):
            claim_values = _less_what_a_larger_unit_says(detail, claim_values, texts)
        unsupported = _unsupported_detail(claim_values, *profile)
        if unsupported is None and any(kind is TokenKind.negation for kind, _ in claim_values) and (
                negative_only_by_courtesy(detail, claim_values, texts) or not _denies_what_it_says(detail, texts)):
            unsupported = Reason.unsupported_negation
        # Its whole sentences: a quote of "5 business days" out of "in 3 to 5 business days" keeps one end too.
        if unsupported is None and _range_cut_to_one_end(detail, sentences):
            unsupported = Reason.unsupported_number
        if unsupported is not None:
            return unsupported
    if due:
        unsaid = _unsaid_when(due, texts, (profile or _texts_profile(texts))[1])
        if unsaid is not None:
            return unsaid
    if _RELATIVE_PERIOD.search(text):
        unsaid = _unsaid_period(text, texts, (profile or _texts_profile(texts))[1])
        if unsaid is not None:
            return unsaid
    # The sentences hold the quotes: when they say no negation, neither do the quotes.
    if any(_may_negate(sentence) for sentence in sentences) and (
            _states_what_is_negated(text, texts)
            or (sentences != texts and _states_what_is_negated(text, sentences, checked=True))):
        return Reason.negated_in_evidence
    if opposite_in_evidence(text, sentences) or (due and opposite_in_evidence(due, sentences)) \
            or reversed_in_evidence(text, sentences):
        return Reason.opposite_in_evidence
    unasserted = unasserted_claim(text, sentences, to_do=to_do)
    if unasserted is None and not to_do and future_in_evidence(text, sentences):
        return Reason.future_in_evidence
    return unasserted


Profile = tuple[dict[str, int], set[str]]

# "without" with a doing or a thing: "closed the account without charging a fee" is negative; "paid without
# issue" is not a claim of anything left undone.
_WITHOUT_DOING = re.compile(
    r"\bwithout\s+(?:\w+ing|any|a|an|the)\b(?!\s+(?:problem|problems|issue|issues|hitch|delay|delays|trouble))",
    re.IGNORECASE)
# Words that make a claim negative without a "not": "the agent declined to refund the charge" says the
# opposite of "Sure, I'll refund the charge". ("unable", "failed" are left out: "the customer is unable to
# log in" states a problem, often resting on "I'm having trouble logging in".)
_REFUSAL_WORDS = frozenset({"refuse", "refused", "refuses", "refusing", "declined", "declines", "declining",
                            "denied", "denies", "denying"})


# Negations of courtesy, which deny nothing the call is about: "Don't worry, I'll refund it" is no
# evidence that the agent will not refund it.
_COURTESY_NEGATION = re.compile(
    r"\b(?:don['’ʼ]?t|do\s+not)\s+worry\b|\bno\s+(?:problem|problems|worries|worry|trouble|rush|pressure|doubt)\b"
    r"|\bnot\s+(?:a\s+problem|at\s+all|to\s+worry)\b|\bnever\s*mind\b|\bno\s+need\s+to\s+apologi[sz]e\b",
    re.IGNORECASE)


def negative_only_by_courtesy(
    claim: str, claim_values: Sequence[tuple[TokenKind, str]], evidence_texts: Sequence[str]
) -> bool:
    """Whether a negative claim's evidence is negative only by courtesies ("don't worry", "no problem"):
    then nothing in it denies anything. A claim negative only by such words itself ("no problem boarding
    the next train") rests on them; a "No" answering a question is a negative answer, and counts."""
    if not any(kind is TokenKind.negation for kind, _ in claim_values):
        return False
    if not _negative(_COURTESY_NEGATION.sub(" ", visible_text(claim))):
        return False
    stripped = [_COURTESY_NEGATION.sub(" ", text) for text in evidence_texts]
    return stripped != list(evidence_texts) and not any(_negative(text) for text in stripped)


# A number written in groups is the same number however it is grouped or punctuated: "1-877-359-8474" and
# "1.877.359.8474", "(800) 241-4141" and "800-241-4141", "12345678" and "1234 5678", and a number spoken over
# two turns ("eight one six" - "two three") and the "81623" a claim writes. From this many digits on, a run of
# them is compared by its digits alone; below it, a value must be said as it is.
_DIGIT_RUN_LENGTH = 5
_DIGIT_GROUP = re.compile(r"[\d.\-/()]*\d[\d.\-/()]*")
_DECIMAL = re.compile(r"\d+\.\d{1,2}")
# What may stand between two groups of one number as written: spaces, dashes, dots, slashes, parentheses.
_GROUP_GAP = re.compile(r"[\s\-–.(),/]*")


def _digit_group(token: str, kind: TokenKind) -> bool:
    return (kind in (TokenKind.number, TokenKind.id) and _DIGIT_GROUP.fullmatch(token) is not None
            and _DECIMAL.fullmatch(token) is None)


def _digit_runs(text: str) -> list[tuple[str, tuple[str, ...], bool, bool]]:
    """The runs of digit groups `text` says one after another, each as (its digits, its tokens, whether it
    opens the text, whether it ends it). Groups go on over what may separate the groups of one written number
    (`_GROUP_GAP`: "(800) 555-0199", which the text core reads as "800 555 to 199"), not over a word, and not
    into a count of time ("call 800-241-4141 24 hours a day"). The digits are the text's as written where it
    writes them ("0199" keeps its 0), the text core's where it spells them ("eight one six")."""
    visible = visible_text(text)
    normalized = normalize(visible)
    tokens, kinds, starts, ends = normalized.tokens, normalized.kinds, normalized.starts, normalized.ends
    runs = []
    index = 0
    while index < len(tokens):
        if not _digit_group(tokens[index], kinds[index]):
            index += 1
            continue
        first = index
        members = [tokens[index]]
        index += 1
        while index < len(tokens):
            following = index
            if tokens[index] == "to" and index + 1 < len(tokens):  # a dash read as a range's "to"
                following = index + 1
            if not (_digit_group(tokens[following], kinds[following])
                    and _GROUP_GAP.fullmatch(visible[ends[index - 1] : starts[following]])
                    and (following + 1 >= len(tokens)
                         or tokens[following + 1] not in _TIME_UNITS.keys() | _UNIT_QUALIFIERS)):
                break
            members.append(tokens[following])
            index = following + 1
        written = "".join(character for character in visible[starts[first] : ends[index - 1]] if character.isdigit())
        spelled = "".join(character for member in members for character in member if character.isdigit())
        digits = written if len(written) >= len(spelled) else spelled
        runs.append((digits, tuple(members), first == 0, index == len(tokens)))
    return runs


def _evidence_digits(texts: Sequence[str]) -> list[str]:
    """The digits of each run of digit groups of `texts` (as a multiset: a number said once supports it once),
    and of a number read out over consecutive turns: a run that ends one text, continued by texts that are
    nothing but a run ("eight one six" - "two three")."""
    said: list[str] = []
    carried: str | None = None  # the digits of a run that ended the previous text
    for text in texts:
        runs = _digit_runs(text)
        said.extend(digits for digits, *_ in runs)
        read_out = len(runs) == 1 and runs[0][2] and runs[0][3]
        if carried is not None and read_out:
            carried += runs[0][0]
            said.append(carried)
        else:
            carried = runs[-1][0] if runs and runs[-1][3] else None
    return said


def _same_digits(digits: str, said: list[str]) -> str | None:
    """The run of `said` that `digits` is, or that gives the same ten-digit number with its country code 1 (a
    North American phone number), or without it; None if none does."""
    candidates = [digits]
    if len(digits) == 10:
        candidates.append(f"1{digits}")
    elif len(digits) == 11 and digits[0] == "1":
        candidates.append(digits[1:])
    return next((candidate for candidate in candidates if candidate in said), None)


def _less_what_its_digits_say(
    detail: str, claim_values: tuple[tuple[TokenKind, str], ...], texts: Sequence[str]
) -> tuple[tuple[TokenKind, str], ...]:
    """`claim_values` without the values of the runs of digit groups of `detail` that its evidence says with
    the same digits, grouped or punctuated otherwise (`_DIGIT_RUN_LENGTH`)."""
    if sum(character.isdigit() for character in detail) < _DIGIT_RUN_LENGTH:
        return claim_values  # a claim writes its numbers in digits: too few of them for a run
    runs = [run for run in _digit_runs(detail) if len(run[0]) >= _DIGIT_RUN_LENGTH]
    if not runs:
        return claim_values
    said = _evidence_digits(texts)
    said_otherwise: list[str] = []
    for digits, members, _, _ in runs:
        found = _same_digits(digits, said)
        if found is not None:
            said.remove(found)
            said_otherwise.extend(members)
    return _without(claim_values, said_otherwise, kinds=(TokenKind.number, TokenKind.id))


def _without(
    claim_values: tuple[tuple[TokenKind, str], ...], dropped: Sequence[str], *, kinds: Sequence[TokenKind] = ()
) -> tuple[tuple[TokenKind, str], ...]:
    """`claim_values` less one occurrence of each value of `dropped` (of one of `kinds`, when given)."""
    remaining = list(claim_values)
    for member in dropped:
        position = next((at for at, (kind, value) in enumerate(remaining)
                         if value == member and (not kinds or kind in kinds)), None)
        if position is not None:
            del remaining[position]
    return tuple(remaining)


# A date is the same date however it is written: "11/15" (month first, as due phrases are resolved) is "Nov 15"
# and "november fifteenth"; "8/19/2020" and "2020-08-19" are "August 19, 2020"; "10/12" is "October 12th".
_YEARS = range(1900, 2101)


def _calendar_dates(text: str) -> list[tuple[tuple[int, int, int | None], tuple[str, ...], str | None]]:
    """Each calendar date `text` writes, as ((month, day, year or None), its day-and-month tokens, its year
    token or None)."""
    normalized = normalize(visible_text(text))
    tokens, kinds = normalized.tokens, normalized.kinds
    dates: list[tuple[tuple[int, int, int | None], tuple[str, ...], str | None]] = []
    for index, (token, kind) in enumerate(zip(tokens, kinds, strict=True)):
        if kind is not TokenKind.date:
            continue
        numeric = numeric_date_parts(token)
        if numeric is not None:
            dates.append((numeric, (token,), None))
            continue
        month = MONTH_NUMBERS.get(token)
        if month is None:
            continue
        # "November 15", "15 November", "the 15th of November", "November the 15th".
        around = (index + 1, index - 1, *((index - 2,) if index >= 2 and tokens[index - 1] == "of" else ()),
                  *((index + 2,) if index + 1 < len(tokens) and tokens[index + 1] == "the" else ()))
        day_at = next((at for at in around if 0 <= at < len(tokens) and kinds[at] is TokenKind.date
                       and tokens[at].isdigit() and 1 <= int(tokens[at]) <= 31), None)
        if day_at is None:
            continue
        year_at = max(index, day_at) + 1
        year = tokens[year_at] if year_at < len(tokens) and tokens[year_at].isdigit() \
            and int(tokens[year_at]) in _YEARS else None
        dates.append(((month, int(tokens[day_at]), int(year) if year else None), (token, tokens[day_at]), year))
    return dates


def _less_what_its_dates_say(
    detail: str, claim_values: tuple[tuple[TokenKind, str], ...], texts: Sequence[str]
) -> tuple[tuple[TokenKind, str], ...]:
    """`claim_values` without the values of the dates of `detail` that its evidence writes otherwise: the
    same month and day (and year, when both write one). A year the evidence does not write stays, to be
    found or not on its own."""
    if not any(kind is TokenKind.date for kind, _ in claim_values):
        return claim_values  # most claims write no date
    claimed = _calendar_dates(detail)
    if not claimed:
        return claim_values
    # Each date of the evidence supports one of the claim's ("27 Oct - 27 Oct" is not said by "25 Oct - 27 Oct"),
    # and a date written as the evidence writes it is left to the values' own count (matched first).
    said = [(found[0], sorted(found[1])) for text in texts for found in _calendar_dates(text)]
    written_otherwise = []
    for date in claimed:
        if (date[0], sorted(date[1])) in said:
            said.remove((date[0], sorted(date[1])))
        else:
            written_otherwise.append(date)
    dropped: list[str] = []
    for (month, day, year), members, year_token in written_otherwise:
        at = next((position for position, ((m, d, other), _) in enumerate(said) if (m, d) == (month, day)
                   and (year is None or other is None or other == year)), None)
        if at is None:
            continue
        (_, _, said_year), _ = said.pop(at)
        dropped += [*members, *([year_token] if year_token is not None and said_year is not None else [])]
    return _without(claim_values, dropped)


def _denies_what_it_says(claim: str, evidence_texts: Sequence[str]) -> bool:
    """Whether a negative claim's evidence may deny what the claim denies. It may not when its negations are
    all about something else while it states the claim's own subject plainly: "the refund will not be issued"
    on "we are unable to replace it. The refund will take 5-7 business days", "the transfer was not
    completed" on "...has been transferred" beside the closing "no that was all thank you" (any negation
    used to do). It may when a sentence of it with a negation shares a content word with the claim's
    negative sentence, or holds the words the evidence's negations reach (`_negated_words`: "I will not,
    unfortunately, refund it"), or answers a yes-no question cited beside it that does ("Did it arrive?" -
    "Not yet"); and when nothing of the claim is said plainly: a denial in other words ("the issue was not
    resolved" on "it's still not working", "did not authorize the charge" on "I never made that purchase")
    is read as one."""
    claim_stems = _denied_stems(visible_text(claim))
    if claim_stems <= _REPORTING_STEMS:
        return True  # its negation's sentence names nothing to compare ("the customer says they can't")
    plain: set[str] = set()
    questions: set[str] = set()
    for text in evidence_texts:
        if not claim_stems.isdisjoint(_denied_stems(text)):
            return True
        for sentence in _SENTENCE.findall(text):
            stems = _content_stems(sentence)
            if any(reach > 0 for _, reach in stems):
                continue
            words = {stem for stem, reach in stems if not reach}
            if sentence.rstrip().endswith("?") or _YES_NO_QUESTION.match(sentence):
                questions.update(words)
            else:
                plain.update(words)
    if not claim_stems.isdisjoint(questions) or not claim_stems.isdisjoint(_negated_words(evidence_texts)[0]):
        return True
    return claim_stems.isdisjoint(plain - _REPORTING_STEMS)


@functools.lru_cache(maxsize=8192)
def _denied_stems(text: str) -> frozenset[str]:
    """The content stems of the sentences of `text` that hold a negation (or a refusal, "without"). Whole
    sentences, not clauses: what is denied is often named in the clause before ("I bought FIFA points and
    never got them")."""
    stems: set[str] = set()
    for sentence in _SENTENCE.findall(text):
        sentence_stems = _content_stems(sentence)
        if any(reach > 0 for _, reach in sentence_stems):
            stems.update(stem for stem, reach in sentence_stems if not reach)
    return frozenset(stems)


# A range of a duration ("three to five business days", "24-48 hours", "between 3 and 5 days", "2 or 3 days"):
# a claim that keeps one end of it says more than was said ("arrives in 3 business days"), unless it bounds by
# that end ("within 5 business days", "a maximum of 5 business days", "at least 3 days").
_RANGE_JOINERS = frozenset({"to", "through", "thru", "or"})
_UPPER_BOUND_BEFORE = re.compile(r"\b(?:within|under|max|maximum|by|up to|at most|no more than|not more than|"
                                 r"less than|fewer than|no later than|no longer than)\b(?: (?:the|a|next|of))*$")
_LOWER_BOUND_BEFORE = re.compile(r"\b(?:min|minimum|at least|more than|over|no less than|no sooner than)\b"
                                 r"(?: (?:the|a|next|of))*$")
_UPPER_BOUND_AFTER = re.compile(r"^(?:\w+ ){0,2}?(?:or (?:less|fewer|sooner)|at most|max|maximum)\b")
_LOWER_BOUND_AFTER = re.compile(r"^(?:\w+ ){0,2}?(?:or (?:more|longer|later)|at least|min|minimum)\b")


# A cheap look before normalizing a sentence: a range joins two numbers with one of these.
_MAY_SAY_A_RANGE = re.compile(r"\d\s*[-–]\s*\d|\b(?:to|through|thru|or|and)\b", re.IGNORECASE)


def _duration_ranges(text: str) -> list[tuple[str, str, str]]:
    """The ranges of a duration `text` says, each as (low, high, unit): "3 to 5 business days": ("3", "5",
    "day"); "one to two weeks" ("1" stays a word in the text core): ("1", "2", "week")."""
    normalized = normalize(visible_text(text))
    tokens, kinds = normalized.tokens, normalized.kinds
    ranges = []
    for index in range(len(tokens) - 2):
        low, joiner, high = tokens[index : index + 3]
        low = "1" if low == "one" else low
        if not (low.isdigit() and high.isdigit() and kinds[index + 2] in NUMERIC_KINDS and int(low) < int(high)):
            continue
        if joiner not in _RANGE_JOINERS and not (joiner == "and" and index and tokens[index - 1] == "between"):
            continue
        unit = _time_unit_at(tokens, index + 3)
        if unit:
            ranges.append((low, high, unit))
    return ranges


def _bound_said(tokens: Sequence[str], index: int) -> str | None:
    """"upper" or "lower" when the number at `index` is said as a bound ("within the next 5", "a maximum of 5",
    "5 business days or less", "at least 3")."""
    before = " ".join(tokens[max(0, index - 4) : index])
    after = " ".join(tokens[index + 1 : index + 6])
    if _UPPER_BOUND_BEFORE.search(before) or _UPPER_BOUND_AFTER.search(after):
        return "upper"
    if _LOWER_BOUND_BEFORE.search(before) or _LOWER_BOUND_AFTER.search(after):
        return "lower"
    return None


def _range_cut_to_one_end(detail: str, evidence_texts: Sequence[str]) -> bool:
    """Whether `detail` (a claim's text or due phrase) says one end of a duration range of its evidence, with
    the range's unit, as if it were all that was said: "in 3 business days" on "three to five business days"
    (a due date two days early), "within 24 hours" on "24-48 hours". An end said elsewhere in the evidence on
    its own is said; a range the claim keeps whole is said."""
    claimed = numbers_with_units(detail)
    if not any(unit in _DURATION_UNITS for _, unit in claimed):
        return False  # the claim says no duration: most claims, and the evidence is not read
    ranges = [found for text in evidence_texts if _MAY_SAY_A_RANGE.search(text) for found in _duration_ranges(text)]
    if not ranges:
        return False
    kept = set(_duration_ranges(detail))
    for _, high, unit in kept:  # the high end of a range the claim keeps is that range's, not a single number
        if (high, unit) in claimed:
            claimed.remove((high, unit))
    alone: dict[tuple[str, str], int] = {}
    for text in evidence_texts:
        for number, unit in numbers_with_units(text):
            alone[(number, unit)] = alone.get((number, unit), 0) + 1
    for _, high, unit in ranges:  # the low end is said with no unit of its own ("3 to 5 days": ("3", ""))
        alone[(high, unit)] = alone.get((high, unit), 0) - 1
    tokens = normalize(visible_text(detail)).tokens
    for low, high, unit in ranges:
        if (low, high, unit) in kept:
            continue
        ends = [end for end in (low, high) if (end, unit) in claimed]
        if len(ends) != 1 or alone.get((ends[0], unit), 0) > 0:
            continue  # neither end, both, or an end said on its own too
        end, allowed = (ends[0], "lower" if ends[0] == low else "upper")
        if any(token == end and _bound_said(tokens, index) != allowed for index, token in enumerate(tokens)):
            return True
    return False


def _negative(text: str) -> bool:
    normalized = normalize(text)
    return any(kind is TokenKind.negation or token in NEGATIVE_POLARITY_WORDS
               for token, kind in zip(normalized.tokens, normalized.kinds, strict=True))


def claim_details(text: str) -> tuple[tuple[TokenKind, str], ...]:
    """The critical values of a claim's text or due phrase, read as a person reads it; a refusal or a
    failure ("declined", "unable", "failed") counts as the claim's negation when it has no other."""
    normalized = normalize(visible_text(text))
    values = normalized.critical_values()
    if any(kind is TokenKind.negation for kind, _ in values):
        return values
    refusal = bool(_REFUSAL_WORDS.intersection(normalized.tokens))
    # A complaint "about calling several times without any response" states a problem, as "unable" does.
    if not refusal and not (_WITHOUT_DOING.search(text) and not any(
            stem in _PROBLEM_STEMS for stem, _ in _content_stems(visible_text(text)))):
        return values
    return (*values, (TokenKind.negation, NEGATION_VALUE))


def _placed_spans(evidence: list[VerifiedEvidence]) -> list[tuple[int, int, int]]:
    """The evidence's (utterance, start, end) spans, each once: citing "$40" three times does not support
    "$40 three times"."""
    return list(dict.fromkeys(
        (piece.utterance, piece.char_start, piece.char_end)
        for piece in evidence
        if piece.utterance is not None and piece.char_start is not None and piece.char_end is not None
    ))


_SENTENCE_ENDS = ".!?;:\n"
SENTENCE_BREAK = re.compile(f"[{_SENTENCE_ENDS}]")


def _sentence_of(text: str, start: int, end: int) -> str:
    """The sentence of `text` that text[start:end] lies in (several, when the span crosses a break)."""
    before = [match.end() for match in SENTENCE_BREAK.finditer(text, 0, start)]
    after = SENTENCE_BREAK.search(text, max(end - 1, start))
    return text[before[-1] if before else 0 : after.end() if after else len(text)]


# Where a negation's reach ends: a sentence or clause break, or a word that starts another clause. A comma
# right after the negation ("I will not, unfortunately, refund it") does not end it: see _negated_words.
_CLAUSE_END = re.compile(
    r"([.!?;:\n]|,|\b(?:and|but|so|because|however|although|though|while|whereas|yet|except|instead)\b)",
    re.IGNORECASE)
# A cheap look before any normalizing: most evidence has no negation at all.
# A cheaper look first, led by the letters every negation below starts with (or has at its "n't"): most
# evidence has none of them where it matters, and the full pattern costs three times as much.
_MAY_NEGATE_FAST = re.compile(r"(?=[nurdwfNURDWF])(?:n['’ʼ]?t\b|no|ne[vi]|unable|refus|declin|deni|without|fail)",
                              re.IGNORECASE)
_MAY_NEGATE = re.compile(r"\b(?:not|no|never|none|nobody|nothing|neither|nor|cannot|unable|refused?|declined|"
                         rf"denied|without|fail(?:ed|s)?|{alternation(BARE_NEGATIONS)})\b|n['’ʼ]t\b", re.IGNORECASE)
# Words between a negation and what it negates that are not what it negates ("not able to", "never
# really", "not, unfortunately,").
_NOT_CONTENT = frozenset({
    *FUNCTION_WORDS, *DROPPABLE_WORDS, *FILLERS, *NEGATIONS, *NEGATIVE_RESPONSE_PARTICLES, *AGENT_WORDS,
    *CUSTOMER_WORDS, "able", "going", "gonna", "unfortunately", "sadly", "honestly", "currently", "still",
    "even", "ever", "quite", "again", "anymore", "any", "all", "some", "more", "yet", "only", "cannot", "way",
})


# A claim's words that tell how something was said or that say little of what ("the agent informed...",
# "was given"): a negation near them in the evidence is about something else.
_REPORTING_WORDS = frozenset({
    "say", "says", "said", "tell", "tells", "told", "ask", "asks", "asked", "asking", "state", "states", "stated",
    "mention", "mentions", "mentioned", "explain", "explains", "explained", "inform", "informs", "informed",
    "update", "updates", "updated", "note", "notes", "noted", "reply", "replies", "replied", "answer", "answers",
    "answered", "wonder", "wonders", "wondered", "give", "gives", "given", "gave", "get", "gets", "got",
})
# How far a negation reaches: "no" (a determiner) the word after it ("no response for my lost bag" does not
# deny the bag), the others this many content words of their clause ("did not cancel my subscription";
# "doesn't seem to have included the seats" says nothing against the seats). A question word ends it: "I
# don't know where the code is" does not deny the code.
_DETERMINER_NEGATIONS = NEGATIONS - CLAUSE_NEGATORS  # "no", "none", "nobody", "nothing", "neither", "nor"...
_NEGATION_REACH = 2
_FIRST_WORD = re.compile(r"[^\W\d_]+")
_OPENING_NEGATIONS = frozenset({*NEGATIVE_RESPONSE_PARTICLES, "not", "never"})
_SUBJECTS = frozenset({"i", "you", "we", "they", "he", "she", "it", "this", "that", "there"})
_LIMITED = re.compile(r"\b(?:until|till|unless|only|than|before|except)\b", re.IGNORECASE)
_QUESTION_WORDS = frozenset({"why", "whether", "if", "how", "what", "where", "when", "who", "which"})


_ELLIPTICAL_WORDS = frozenset({"if", "or", "whether", "why", "not", "so", "then", "and"})
_CLAUSE_WORD = re.compile(r"[a-z]+(?:['’ʼ][a-z]+)?")


def _bounds_its_negation(clause: str) -> bool:
    """Whether a limiter of `clause` ("until", "only", "than"...) follows a negation of the same subject:
    "won't post until next week" bounds when; "i cannot waive the fee i can only offer you a credit" (ASR
    text, no punctuation) has a new subject before "only", and "I won't refund it since it's older than
    sixty days" another before "than": those negations still deny."""
    negated = False
    for word in _CLAUSE_WORD.findall(clause.lower()):
        if negates_clause(word) or word in _DETERMINER_NEGATIONS:
            negated = True
        elif negated and word in _SUBJECTS:
            negated = False
        elif negated and _LIMITED.fullmatch(word):
            return True
    return False


def _stem(word: str) -> str:
    """A crude common form, enough to see "cancelled" in "cancel" and "waived" in "waive"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word.removesuffix("e")[:6]


_REPORTING_STEMS = frozenset(_stem(word) for word in _REPORTING_WORDS)
# Words that make a claim about a failure without a negation: "the customer has an issue saving songs" rests
# rightly on "I can't save my songs".
_PROBLEM_STEMS = frozenset(_stem(word) for word in (
    "issue", "problem", "trouble", "complain", "complaint", "error", "difficulty", "unable", "fail", "failure",
    "bug", "broken", "missing", "lost", "stuck", "disappointed", "unhappy", "frustrated", "struggle", "unavailable",
))
# Words that make a claim a question or a wish, which asserts nothing of what it asks for: "the customer asks
# whether trains are delayed" rests rightly on "no delays are expected"; "wants to cancel" on "you can't
# cancel it". Only the wish itself denied ("I don't want a refund") contradicts such a claim.
_ASKING_STEMS = frozenset(_stem(word) for word in (
    "ask", "whether", "inquire", "enquire", "wonder", "question", "know", "request",
))
# Problem and question words with an everyday sense besides ("issue a refund", "checking account", "a lost
# card", "a confirmation email").
_TWO_SENSE_STEMS = frozenset(_stem(word) for word in ("issue", "check", "confirm", "request", "lost", "question"))
# Those of them whose verb states a fact ("issued", "confirmed", "checked", "lost"); "requested" and "questioned"
# still ask.
_FACT_SENSE_STEMS = frozenset(_stem(word) for word in ("issue", "check", "confirm", "lost"))
_WISH_STEMS = frozenset(_stem(word) for word in ("want", "wish", "like", "need", "hope", "prefer", "try"))

@functools.lru_cache(maxsize=8192)
def _content_stems(text: str) -> tuple[tuple[str, int], ...]:
    """Each token of `text` as (stem, reach): content words with reach 0, negations with how many content
    words they reach, question words with -1. Cached: a claim's are asked for by several checks."""
    normalized = normalize(text)
    stems: list[tuple[str, int]] = []
    for token, kind in zip(normalized.tokens, normalized.kinds, strict=True):
        if kind is TokenKind.negation or token in NEGATIVE_POLARITY_WORDS:
            stems.append((token, 1 if token in _DETERMINER_NEGATIONS else _NEGATION_REACH))
        elif token in _QUESTION_WORDS:
            stems.append((token, -1))
        elif token.isalpha() and len(token) > 2 and token not in _NOT_CONTENT:
            stems.append((_stem(token), 0))
    return tuple(stems)


def _negated_words(texts: Sequence[str]) -> tuple[set[str], set[str]]:
    """The stems of the content words that `texts` say after a negation in the same clause, and of those
    they say outside one."""
    negated: set[str] = set()
    plain: set[str] = set()
    for text in texts:
        carried = 0  # a negation whose clause ended at a comma before its content ("I will not, ..."): its reach
        parts = _CLAUSE_END.split(text)
        for clause, separator in zip(parts[::2], [*parts[1::2], ""], strict=True):
            # "No, I'll refund it" answers a question: a clause that opens with its negation carries nothing;
            # and a carried negation stops at a new subject ("I'm not, I'll just try again later").
            opening = _FIRST_WORD.search(clause)
            first = opening.group().lower() if opening is not None else ""
            opens_negated = first in _OPENING_NEGATIONS
            reach, content_after = (0 if first in _SUBJECTS else carried), False
            if _LIMITED.search(clause) and _bounds_its_negation(clause):
                # "won't post until next week", "not only the fee but", "won't be charged more than $40":
                # the negation bounds when, how much or how far; what it is said of still happens.
                plain.update(stem for stem, negation_reach in _content_stems(clause) if not negation_reach)
                carried = 0
                continue
            for stem, negation_reach in _content_stems(clause) if clause.strip() else ():
                if negation_reach < 0:  # a question word: what follows is asked about, not denied
                    reach = 0
                    continue
                if negation_reach:
                    reach, content_after = negation_reach, False
                    continue
                (negated if reach else plain).add(stem)
                content_after = content_after or reach > 0
                reach = max(reach - 1, 0)
            # "If not, you will need to open a case": an elliptical "if not" or "or not" stands for a clause
            # said before; it negates nothing after its comma.
            elliptical = set(_CLAUSE_WORD.findall(clause.lower())) <= _ELLIPTICAL_WORDS
            carried = (reach if reach and not content_after and separator == "," and not opens_negated
                       and not elliptical else 0)
    return negated, plain


def _may_negate(text: str) -> bool:
    return _MAY_NEGATE_FAST.search(text) is not None and _MAY_NEGATE.search(text) is not None


def _states_what_is_negated(claim: str, evidence_texts: Sequence[str], *, checked: bool = False) -> bool:
    """Whether a positive claim rests on words its evidence says only under a negation: "The customer
    cancelled" on "I did not cancel", "the agent will waive the fee" on "I will not waive the fee". A claim
    that is negative itself is the other check's (`unsupported_negation`). `checked`: the caller saw a
    negation in the evidence already."""
    if not checked and not any(_may_negate(text) for text in evidence_texts):
        return False
    claim = visible_text(claim)
    claim_stems = _content_stems(claim)
    if "?" in claim or any(reach > 0 for _, reach in claim_stems):
        return False
    negated, plain = _negated_words(evidence_texts)
    # A claim's own word for a problem or a question frames it ("has an issue saving songs" on "I can't save
    # my songs"); a word of both senses that the evidence says too is the evidence's ("issued a refund" on
    # "I can't issue a refund", "the checking account" on "I can't transfer to your checking account"), and
    # only the claim's other words are then read against the negation.
    framing = {stem for stem, _ in claim_stems if stem in _PROBLEM_STEMS | _ASKING_STEMS}
    if framing - (_TWO_SENSE_STEMS & (negated | plain)):
        return False
    denied = {stem for stem, _ in claim_stems
              if stem in negated and stem not in plain and stem not in _REPORTING_STEMS and stem not in framing}
    if any(stem in _WISH_STEMS for stem, _ in claim_stems):
        # A wish contradicts its evidence when the wish and what is wished are both denied ("wants a refund"
        # on "I don't want a refund"), not when a wish of another clause is ("I don't want to cancel, I'd
        # like to upgrade" supports "wants to upgrade").
        return bool(denied & _WISH_STEMS) and bool(denied - _WISH_STEMS)
    return bool(denied)


# A condition in the evidence: what the clause under it says may never happen ("if it has not arrived by
# Friday I will send a replacement"); a wish says it did not ("I wish I could waive it").
# "Once" opening a clause of what has yet to happen is one too ("once your reservation is changed, you can pick
# a seat", "we'll advise once resolved"); not "once again", "at once" or "I called once".
_ONCE_CLAUSE = (r"once\s+(?:i|you|we|they|he|she|it|the|your|my|our|their|this|that|these|those|resolved|done|"
                r"complete|completed|received|approved|processed|confirmed|fixed)")
_CONDITION = re.compile(
    r"\b(?:if|unless|provided that|providing that|as long as|in case|assuming|otherwise|wish|wished|"
    rf"{_ONCE_CLAUSE})\b",
    re.IGNORECASE)
# An answer that says yes to the question cited beside it.
_AFFIRMATIVE_ANSWER = re.compile(
    r"\W*(?:yes|yeah|yep|yup|yea|sure|correct|exactly|absolutely|definitely|indeed|of course|that['’ʼ]?s right|"
    r"right|affirmative|uh[\s-]*huh|mhm+|mm[\s-]*hmm|"
    # An answer that repeats the question's auxiliary: "Did you get it?" - "I did, this morning."
    r"(?:i|we|it|they|he|she)\s+(?:did|do|does|have|has|had|was|were|am|is|are)(?!\s*n['’ʼ]?t)(?!\s+not)\s*(?:[,.!]|$))",
    re.IGNORECASE)
# A cheap look before reading the clauses: what a condition, a wish or an embedded question needs.
_MAY_UNASSERT = re.compile(r"\b(?:if|whether|unless|provided|as long as|in case|assuming|otherwise|wish|wished|"
                           rf"{_ONCE_CLAUSE}|(?:can|could|would|will|do|did)\s+you)\b", re.IGNORECASE)
# A question as ASR writes it, without its "?": "can you waive the late fee".
_SPOKEN_QUESTION = re.compile(r"\s*(?:\w+\s*,?\s+)?(?:can|could|would|will|do|did)\s+you\b", re.IGNORECASE)
# An embedded question ("can you check if it went through", "let me see whether it posted") asks, like a
# yes-no question, and conditions nothing.
_EMBEDDED_QUESTION = re.compile(
    r"\b(?:check|checking|see|know|ask|asking|asked|wonder|wondering|sure|confirm|verify|find out|look|looking|"
    r"tell me|unclear)\s+(?:\w+\s+){0,2}?(?:if|whether)\b",
    re.IGNORECASE)
# A courtesy ("if you'd like, I can send it", "if that's ok") asks nothing of the facts.
_COURTESY = re.compile(
    r"\bif\s+(?:you(?:['’]d| would)?\s+(?:like|want|wish|prefer|don['’]t mind|do not mind)|"
    r"that(?:['’]s| is)\s+(?:ok|okay|alright|all right|fine)|that works|possible|so|not)\b",
    re.IGNORECASE)
# A claim that carries a condition, an offer or a possibility itself says no more than such evidence does.
_QUALIFIED_CLAIM = re.compile(
    r"\b(?:if|unless|provided|providing|as long as|in case|assuming|otherwise|once|when|whenever|after|until|"
    r"should|could|can|would|may|might|option|options|offer|offers|offered|offering|eligible|possible|"
    r"possibly|conditional|conditionally|condition|conditions|depending|depends|required|requires|require|"
    r"policy|whether|wish|wishes|wished|pending|potential|potentially|likely|tentative|tentatively|contingent|"
    r"must|need to|needs to|have to|has to)"
    r"\b|\?",
    re.IGNORECASE)
# Where a condition's reach ends inside a sentence: "I'll send it today, and if you have questions, call us"
# puts no condition on the sending. Split with the joining word (and a comma before it) kept:
# `_unasserted_words` reads which word joined two clauses.
_COORDINATION_PARTS = re.compile(
    r"(,?\s*\b(?:and|but|so|because|however|although|though|while|whereas|yet|instead|meanwhile)\b)",
    re.IGNORECASE)
# A clause that opens with its own subject ("and I'll send it today", "and your refund will post", "and uh we
# have processed it") starts anew, out of the condition.
_NEW_SUBJECT = re.compile(r"\s*(?:(?:uh|um|er|so|well|also|then)\b[\s,]*)*"
                          r"(?:i|you|we|they|he|she|it|this|that|there|your|the|my|our|their|his|her|its)\b"
                          r"(?!\s+(?:and|or)\b)", re.IGNORECASE)
# The condition's own clause goes on over an "and" only up to where the main clause starts with its subject
# ("if you DM your name and address we can send a gift card"); with none after it, the "and" joins the main
# clause ("I'll refund the fee if it was charged in error and send a confirmation email").
_MAIN_SUBJECT = re.compile(r"\b(?:i|we|you|they|he|she)\b", re.IGNORECASE)


# A claim's words that make it about advice or a search rather than a fact: "the agent advised returning the
# TV" rests rightly on "if you return the TV with your card, they will advise you".
_ADVISING_STEMS = frozenset(_stem(word) for word in (
    "advise", "advice", "suggest", "suggestion", "recommend", "recommendation", "encourage", "instruct",
    "invite", "propose", "direct", "guide", "look", "seek", "interest", "interested",
))
_NOT_ASSERTING_STEMS = _REPORTING_STEMS | _PROBLEM_STEMS | _ASKING_STEMS | _WISH_STEMS | _ADVISING_STEMS
# Verbs of saying that also state a fact of the call: "a refund was given" asserts the refund, as "issued" does;
# "Can you give me a refund?" asks for it.
_GIVING_STEMS = frozenset(_stem(word) for word in ("give", "gives", "given", "gave", "get", "gets", "got"))


# A question that asks whether, not what or why: it asserts nothing of what it asks ("Can you waive the late
# fee?"), where "Why was my flight cancelled?" takes the cancellation as given.
_YES_NO_QUESTION = re.compile(
    r"\s*(?:\w+\s*,\s*)?(?:can|could|would|will|do|does|did|is|are|was|were|have|has|had|should|shall|may|"
    r"might|must)\b", re.IGNORECASE)
_SENTENCE = re.compile(f"[^{_SENTENCE_ENDS}]*[{_SENTENCE_ENDS}]?")


_FUTURE = re.compile(r"\b(?:will|shall|going\s+to|gonna|about\s+to)\b|['’ʼ]ll\b", re.IGNORECASE)
_CLAUSE_WORDS = re.compile(r"[^\W_]+(?:['’ʼ][^\W_]+)?")
_ONCE_CLAUSE_ENDERS = frozenset({"i", "you", "we", "they", "he", "she", "it", "there"})


def _once_clause(clause: str, start: int) -> tuple[int, int]:
    """The span of the clause "once" opens at `start`: to a comma, or to the first subject after a word of its
    own ("once your reservation is changed you'll be able to pick a seat": up to "you")."""
    comma = clause.find(",", start)
    limit = comma if comma >= 0 else len(clause)
    said_something = False
    for word in _CLAUSE_WORDS.finditer(clause, start + len("once"), limit):
        if said_something and word.group().lower() in _ONCE_CLAUSE_ENDERS:
            return start, word.start()
        said_something = said_something or word.group().lower() not in _ONCE_CLAUSE_ENDERS
    return start, limit


def _unasserted_words(texts: Sequence[str]) -> tuple[set[str], set[str], set[str], set[str]]:
    """The stems of the content words that `texts` say only in a clause under a condition or a wish, those
    they say only as what has yet to happen ("once" it is done), those they say only in yes-no questions, and
    those they say outside any of these."""
    pending: set[str] = set()
    conditional: set[str] = set()
    asked: set[str] = set()
    plain: set[str] = set()
    for text in texts:
        for sentence in _SENTENCE.findall(text):
            spoken_question = not sentence.rstrip().endswith((".", "!")) and _SPOKEN_QUESTION.match(sentence)
            if (sentence.endswith("?") or spoken_question) and _YES_NO_QUESTION.match(sentence):
                asked.update(stem for stem, reach in _content_stems(sentence) if not reach)
                continue
            if not _MAY_UNASSERT.search(sentence):  # most sentences: read whole, not clause by clause
                plain.update(stem for stem, reach in _content_stems(sentence) if not reach)
                continue
            parts = _COORDINATION_PARTS.split(sentence)
            under_condition = False
            for clause, joiner in zip(parts[::2], ["", *parts[1::2]], strict=True):
                embedded = _EMBEDDED_QUESTION.search(clause)
                if embedded is not None:  # what the clause asks about, after the question's opening
                    plain.update(stem for stem, reach in _content_stems(clause[: embedded.end()]) if not reach)
                    asked.update(stem for stem, reach in _content_stems(clause[embedded.end():]) if not reach)
                    under_condition = False
                    continue
                condition = _CONDITION.search(_COURTESY.sub(" ", clause))
                if condition is not None and condition.group().lower().startswith("once"):
                    # Only what "once" says has yet to happen is under it: "once I process the refund you will
                    # get an email" conditions the refund, not the email that follows it.
                    start, end = _once_clause(clause, condition.start())
                    pending.update(stem for stem, reach in _content_stems(clause[start:end]) if not reach)
                    clause = clause[:start] + " " + clause[end:]
                    condition = None
                stems = {stem for stem, reach in _content_stems(clause) if not reach}
                # "if you DM your name and address we can send a gift card": an "and" with no comma before it,
                # and no new subject after it, goes on with the condition it is in.
                under_condition = condition is not None or (
                    under_condition and joiner.strip().lower() == "and" and not _NEW_SUBJECT.match(clause)
                    and _MAIN_SUBJECT.search(clause) is not None)
                (conditional if under_condition else plain).update(stems)
    return conditional - plain, pending - plain, asked - plain - conditional - pending, plain


def unasserted_claim(claim: str, evidence_texts: Sequence[str], *, to_do: bool = False) -> Reason | None:
    """Whether an unqualified claim rests on words its evidence says only under a condition or a wish
    (`conditional_in_evidence`): "the agent will send a replacement" on "if it has not arrived by Friday I
    will send a replacement", "the agent waived the fee" on "I wish I could waive it"; or only asks
    (`asked_in_evidence`): "the agent waived the late fee" on "Can you waive the late fee?". A claim that
    states a condition, an offer or a possibility itself ("offered to waive the fee if...", "can get a
    refund"), that is negative, or that is about what was said, asked, wished, advised or went wrong, is not
    checked. An action item (`to_do`) is a task, not a fact: one under a condition ("if you DM us your
    details we'll look into it" for "DM the details") is not flagged as conditional."""
    if not any("?" in text or _MAY_UNASSERT.search(text) for text in evidence_texts):
        return None
    claim = visible_text(claim)
    if _QUALIFIED_CLAIM.search(claim):
        return None
    claim_stems = _content_stems(claim)
    if any(reach for _, reach in claim_stems):
        return None
    # A word of two senses said as a verb states a fact ("a refund has been issued", "the customer confirmed the
    # address", "lost the card"), where the noun frames a problem or a question ("has an issue with the app").
    facts = {_stem(word) for word in normalize(claim).tokens
             if word.endswith(("ed", "ing")) or word == "lost"} & _FACT_SENSE_STEMS
    if {stem for stem, _ in claim_stems if stem in _NOT_ASSERTING_STEMS} - _GIVING_STEMS - facts:
        return None
    conditional, pending, asked, plain = _unasserted_words(evidence_texts)
    if not to_do and any(stem in conditional for stem, _ in claim_stems):
        return Reason.conditional_in_evidence
    # What "once" puts ahead may be claimed as ahead ("the agent will process the refund"), not as done.
    if not to_do and not _FUTURE.search(claim) and any(stem in pending for stem, _ in claim_stems):
        return Reason.conditional_in_evidence
    if any(_AFFIRMATIVE_ANSWER.match(text) for text in evidence_texts):
        return None  # "Has it dispatched?" - "Yep, ...": the answer asserts what the question asked
    # Asked: every word of the claim the evidence says, it says only asking ("Can you confirm your address?"
    # leaves "the customer confirmed the address" resting on nothing else).
    found = [stem for stem, _ in claim_stems if stem in asked or stem in plain]
    if found and all(stem in asked for stem in found):
        return Reason.asked_in_evidence
    return None


# Said only as what will, can or should be done: a word a modal or an infinitive's "to" governs ("I'll issue the
# refund", "it will be shipped", "you can't get a refund until Friday", "let me go ahead and cancel it").
_FUTURE_MARKERS = frozenset({"will", "shall", "would", "can", "could", "should", "may", "might", "must", "to", "gonna",
                             "let"})
# Words that may stand between such a marker and its verb: "will be processed", "can go ahead and send",
# "could have been cancelled", "let me send".
_BETWEEN_MARKER_AND_VERB = frozenset({
    "be", "been", "have", "not", "also", "just", "definitely", "certainly", "surely", "now", "then", "go",
    "ahead", "and", "gladly", "happily", "personally", "still", "actually", "get", "me", "us", "able", "try",
    "please", "immediately", "quickly", "manually", "officially", "really",
})
_BETWEEN_REACH = 5
# Cheap looks before reading a claim's words and its evidence's: a doing in the past, a modal or a "to".
_MAY_SAY_DONE = re.compile(rf"ed\b|\b{alternation(IRREGULAR_PAST_FORMS)}\b", re.IGNORECASE)
_MAY_SAY_AHEAD = re.compile(
    r"\b(?:will|shall|would|can|could|should|may|might|must|to|gonna|let)\b|['’ʼ]ll\b|n['’ʼ]t\b", re.IGNORECASE)
# Doings that are the call itself ("called", "contacted", "spoke"), or participles read as adjectives
# ("concerned", "interested"): saying them done is no claim about what the call promised.
_NOT_A_DOING_STEMS = (_NOT_ASSERTING_STEMS - _FACT_SENSE_STEMS - _GIVING_STEMS) | frozenset(_stem(word) for word in (
    "call", "contact", "reach", "speak", "spoke", "talk", "chat", "concern", "interest", "suppose", "use", "base",
    "relate", "involve", "verify", "identify", "authenticate", "frustrate", "confuse", "upset", "annoy", "surprise",
    "worry", "please", "satisfy", "dissatisfy", "disappoint", "tire", "unauthorize", "unexpect", "outdate",
    "associate", "link", "attach", "register", "name", "locate", "need",
    # "checked the balance" says a balance was asked for and told, rather than anything promised
    "check",
))


_NOT_STATING_DONE_STEMS = (_ASKING_STEMS | _WISH_STEMS | _ADVISING_STEMS) - _GIVING_STEMS
_FUTURE_WORDS = frozenset({"will", "shall", "would", "gonna"})
_GET_FORMS = frozenset({"get", "gets", "got", "gotten", "getting"})


def _doing_stem(word: str) -> str | None:
    """The stem of `word` if it is a verb's past form ("waived", "sent"), else None."""
    base = IRREGULAR_PAST_FORMS.get(word)
    if base is not None:
        return _stem(base)
    return _stem(word) if len(word) >= 5 and word.endswith("ed") and word.isalpha() else None


def _passive_get(tokens: Sequence[str], index: int) -> bool:
    """Whether the word at `index` is "got" or "get" before a past form: a passive ("it got cancelled"), whose
    doing is the participle's."""
    return tokens[index] in _GET_FORMS and index + 1 < len(tokens) and _doing_stem(tokens[index + 1]) is not None


def _governed_by_future(tokens: Sequence[str], index: int) -> bool:
    """Whether a modal or an infinitive's "to" governs the word at `index`, across the few words that may stand
    between them ("will go ahead and send", "could have been cancelled"). Not "had to" ("we had to cancel the
    flight": it was), nor "can" before a word of stating ("I can confirm it was received": it is said now)."""
    for back in range(index - 1, max(index - 1 - _BETWEEN_REACH, -1), -1):
        word = tokens[back]
        if word in _FUTURE_MARKERS:
            if word == "to" and back > 0 and (tokens[back - 1] in _PAST_OBLIGATION or (
                    tokens[back - 1] == "able" and back > 1 and tokens[back - 2] in _PAST_BE)):
                return False  # "we had to cancel", "I managed to", "I was able to change it": it was done
            return not (word in _ABILITY and _stem(tokens[index]) in _STATED_NOW_STEMS)
        if word not in _BETWEEN_MARKER_AND_VERB:
            return False
    return False


_PAST_OBLIGATION = frozenset({"had", "managed"})
_PAST_BE = frozenset({"was", "were"})
_ABILITY = frozenset({"can", "could"})
_STATED_NOW_STEMS = frozenset(_stem(word) for word in (
    "confirm", "see", "tell", "assure", "verify", "guarantee", "say", "show", "advise", "inform", "notify",
))


def future_in_evidence(claim: str, sentences: Sequence[str]) -> bool:
    """Whether the claim says done what the sentences of its evidence say only will, can or should be done: "the
    agent issued a refund" on "I'll issue the refund today", "the package was delivered" on "it will be delivered
    tomorrow", "the customer got a refund" on "you can't get a refund until Friday". A doing of the claim is read
    against every place the evidence says it: said done anywhere ("it was shipped, and I'll ship the rest"), or
    said only as a noun or in passing ("your refund request"), it is not flagged. A claim about the future, a
    qualified or negative one, and doings that are the call itself ("the customer called") are not checked."""
    if not _MAY_SAY_DONE.search(claim) or not any(_MAY_SAY_AHEAD.search(sentence) for sentence in sentences):
        return False
    claim = visible_text(claim)
    if _QUALIFIED_CLAIM.search(claim):
        return False
    normalized = normalize(claim)
    if any(kind is TokenKind.negation for kind in normalized.kinds):
        return False
    claim_tokens = normalized.tokens
    doings: set[str] = set()
    for index, word in enumerate(claim_tokens):
        if word in _FUTURE_WORDS:  # "will be investigated and taken": what follows is the claim's future
            break
        stem = _doing_stem(word)
        if stem is not None and stem not in _NOT_A_DOING_STEMS and not _governed_by_future(claim_tokens, index) \
                and not _passive_get(claim_tokens, index):
            doings.add(stem)
    if not doings:
        return False
    # A claim about what was asked, wished or advised says nothing done ("the customer asked why he
    # was charged for bags" on "I would be charged for bags").
    if any(stem in _NOT_STATING_DONE_STEMS and stem not in doings for stem, _ in _content_stems(claim)):
        return False
    ahead: set[str] = set()
    done: set[str] = set()
    for sentence in sentences:
        normalized = normalize(sentence)
        tokens = normalized.tokens
        may_be_under_way = _UNDER_WAY.search(sentence) is not None
        for index, word in enumerate(tokens):
            stem = _doing_stem(word)
            past = stem is not None
            if stem is None:
                stem = _stem(word)
            if stem not in doings:
                continue
            # "I'm going to escalate this right now": done while the call goes on, not promised for later; said
            # of this doing, a few words around it, not of another in the sentence ("I'll check now and send
            # the card next week" still promises the card).
            under_way = may_be_under_way and _said_under_way(sentence, normalized.starts[index], tokens, index)
            if _governed_by_future(tokens, index) and not under_way:
                ahead.add(stem)
            elif past or under_way:
                done.add(stem)
    return bool(ahead - done)


def _said_under_way(sentence: str, start: int, tokens: Sequence[str], index: int) -> bool:
    """Whether "now" (or "immediately", "right away") is said of the doing at `index` (at `start` in the
    sentence): in the rest of its clause, or a few words before it ("I'm now able to proceed")."""
    clause_end = _CLAUSE_BREAK.search(sentence, start)
    if _UNDER_WAY.search(sentence, start, clause_end.start() if clause_end else len(sentence)):
        return True
    return bool(_UNDER_WAY_WORDS.intersection(tokens[max(0, index - _UNDER_WAY_REACH_BEFORE) : index]))


_CLAUSE_BREAK = re.compile(r"[,;]|\b(?:and|but|then)\b", re.IGNORECASE)
_UNDER_WAY_WORDS = frozenset({"now", "immediately"})
_UNDER_WAY_REACH_BEFORE = 4


_UNDER_WAY = re.compile(r"\b(?:right now|now|right away|straight away|immediately|as we speak|at this moment)\b",
                        re.IGNORECASE)


_OPPOSITE_VOCABULARY = frozenset(word for pair in OPPOSITE_WORDS for side in pair for word in side)


def opposite_in_evidence(claim: str, evidence_texts: Sequence[str]) -> bool:
    """Whether the claim says a word its evidence never says while the evidence says its opposite (a list
    of such pairs, `OPPOSITE_WORDS`): "the refund request was approved" on "your refund request has been
    denied", "a replacement debit card" on "your replacement credit card". The opposite said only under a
    negation ("we cannot accept the return" for "the return was refused") is no contradiction."""
    claim_words = set(normalize(visible_text(claim)).tokens)
    if claim_words.isdisjoint(_OPPOSITE_VOCABULARY):
        return False
    evidence_words = {token for text in evidence_texts for token in normalize(text).tokens}
    for one, other in OPPOSITE_WORDS:
        for said, opposite in ((one, other), (other, one)):
            if claim_words & said and not evidence_words & said and evidence_words & opposite \
                    and not claim_words & opposite and _said_plainly(evidence_words & opposite, evidence_texts):
                return True
    return False


# "from X to Y": a movement's two ends (money between accounts, a flight between cities, a number ported
# between carriers), each end a few words ("your checking account", "Oslo").
_END_WORD = r"[^\W\d_]+(?:['’ʼ][^\W\d_]+)?"
_FROM_TO = re.compile(rf"\bfrom\s+((?:{_END_WORD}\s+){{0,3}}?{_END_WORD})\s+(?:to|into|onto|over to)\s+"
                      rf"((?:{_END_WORD}\s+){{0,2}}{_END_WORD})", re.IGNORECASE)
_END_FILLER = frozenset({"the", "my", "your", "his", "her", "their", "our", "its", "a", "an", "this", "that",
                         "account", "accounts", "acct", "card", "one"})


def _movement_ends(text: str) -> list[tuple[frozenset[str], frozenset[str]]]:
    ends = []
    for match in _FROM_TO.finditer(text):
        source, target = (frozenset(word for word in end.lower().split() if word not in _END_FILLER)
                          for end in match.groups())
        if source and target and source != target:
            ends.append((source, target))
    return ends


_BACK = re.compile(r"\b(?:back|return(?:ed|s|ing)?|revers(?:e|ed|es|ing)|undo(?:ne|ing)?|undid)\b")


def reversed_in_evidence(claim: str, evidence_texts: Sequence[str]) -> bool:
    """Whether the claim moves something from one end to another that its evidence gives the other way round,
    and never its way: "transferred $135 from savings to checking" on "from your checking account to your
    savings account", "the flight from Heathrow to Oslo" on "Oslo to Heathrow" is read only as "from ... to"."""
    lowered = claim.lower()
    if "from" not in lowered or _BACK.search(lowered):
        return False  # "moved it back from savings to checking" undoes the movement its evidence gives
    claimed = _movement_ends(visible_text(claim))
    if not claimed:
        return False
    said = [ends for text in evidence_texts for ends in _movement_ends(text)]
    for source, target in claimed:
        backwards = any(source & to and target & frm and not source & frm for frm, to in said)
        forwards = any(source & frm and target & to for frm, to in said)
        if backwards and not forwards:
            return True
    return False


def _said_plainly(words: set[str], texts: Sequence[str]) -> bool:
    """Whether any of `words` is said in `texts` outside a negation: "we cannot accept the return" says the
    opposite of "refused" only under a negation, which agrees with it."""
    negated, plain = _negated_words(texts)
    return any(_stem(word) in plain or _stem(word) not in negated for word in words)  # ("denied": a negation)


def _texts_profile(texts: Sequence[str]) -> Profile:
    """The critical values (as a multiset) and the words of the evidence spans, normalized once per claim."""
    # As a multiset: "2017 ... not 2016" does not support a claim that says 2017 twice. A plain dict:
    # building a Counter runs Python code, and this runs for every claim with a critical detail.
    evidence_values: dict[str, int] = {}
    evidence_words: set[str] = set()
    for text in texts:
        span = normalize(text)
        for _, value in span.critical_values():
            evidence_values[value] = evidence_values.get(value, 0) + 1
        evidence_words.update(span.tokens)
    return evidence_values, evidence_words


# Units of time a number is said with ("5 days", "3 hrs"), in one form each; a word between them that only
# qualifies the unit ("5 business days") is passed over.
_TIME_UNITS = {
    **dict.fromkeys(("second", "seconds", "sec", "secs"), "second"),
    **dict.fromkeys(("minute", "minutes", "min", "mins"), "minute"),
    **dict.fromkeys(("hour", "hours", "hr", "hrs"), "hour"),
    **dict.fromkeys(("day", "days"), "day"),
    **dict.fromkeys(("week", "weeks", "wk", "wks"), "week"),
    **dict.fromkeys(("month", "months"), "month"),
    **dict.fromkeys(("year", "years", "yr", "yrs"), "year"),
}
_UNIT_QUALIFIERS = frozenset({"business", "working", "calendar", "full", "whole", "more", "extra", "additional"})
_DURATION_UNITS = frozenset(_TIME_UNITS.values())


def numbers_with_units(text: str) -> list[tuple[str, str]]:
    """Each number of `text` with the unit said with it: a currency, "percent" or "am"/"pm" ("$40":
    ("40", "dollars"); "3 pm": ("3", "pm")), or a unit of time ("5 business days": ("5", "day")); "" when
    none was."""
    normalized = normalize(visible_text(text))
    tokens, kinds = normalized.tokens, normalized.kinds
    pairs = []
    for index, (token, kind) in enumerate(zip(tokens, kinds, strict=True)):
        if kind not in NUMERIC_KINDS or token.isalpha():
            continue
        following = index + 1
        unit = ""
        if following < len(tokens) and kinds[following] is kind and tokens[following].isalpha():
            # "o'clock" says an hour, as "am" or "pm" does, not another unit: "five o'clock p m" is 5 pm.
            unit = "" if tokens[following] == "oclock" else tokens[following]
        else:
            unit = _time_unit_at(tokens, following)
        pairs.append((token, unit))
    return pairs


def _time_unit_at(tokens: Sequence[str], index: int) -> str:
    """The unit of time said at `index` (after a number), past a word that only qualifies it ("5 business
    days": "day"); "" when none is."""
    if index < len(tokens) and tokens[index] in _UNIT_QUALIFIERS:
        index += 1
    return _TIME_UNITS.get(tokens[index], "") if index < len(tokens) else ""


def _unit_mismatch(detail: str, evidence_texts: Sequence[str]) -> bool:
    """Whether a number of `detail` is said with a unit its evidence says it only with another unit: the
    evidence must say it with that unit or with none ("refund the forty" may support "$40"), never only
    with another one ("$40" is not "€40", "40%", "40 cents" or "on hold 40 minutes"; "5 days" is not
    "5 weeks"; "3 pm" is not "in 3 days")."""
    claimed = [(number, unit) for number, unit in numbers_with_units(detail) if unit]
    if not claimed:
        return False
    said: dict[str, set[str]] = {}
    for text in evidence_texts:
        for number, unit in numbers_with_units(text):
            said.setdefault(number, set()).add(unit)
    return any(unit not in said[number] and "" not in said[number] for number, unit in claimed if number in said)


def _unsupported_detail(
    claim_values: Sequence[tuple[TokenKind, str]], evidence_counts: dict[str, int], evidence_words: set[str],
) -> Reason | None:
    """Which critical detail of the claim (text or due) its evidence does not contain, if any."""
    evidence_values = dict(evidence_counts)  # used up detail by detail; the next detail starts afresh
    for kind, value in claim_values:
        if kind is TokenKind.negation:
            # Any negative evidence supports a negative claim, however many "not"s either has.
            if evidence_values.get(NEGATION_VALUE, 0) or evidence_words & NEGATIVE_POLARITY_WORDS:
                continue
            return Reason.unsupported_negation
        available = evidence_values.get(value, 0)
        if available > 0:
            evidence_values[value] = available - 1
            continue
        if kind is TokenKind.id:
            return Reason.unsupported_id
        if kind is TokenKind.date and not any(character.isdigit() for character in value):
            return Reason.unsupported_date
        if kind in NUMERIC_KINDS or kind is TokenKind.date:
            # Units ("dollars", "pm") are checked with their number; a bare unit is not a claim.
            if value.isalpha():
                continue
            return Reason.unsupported_number
    return None


def _prepared(utterances: Sequence[Utterance]) -> PreparedTranscript:
    """The index of the last list seen, rebuilt when a different (or changed) list comes in."""
    global _cached
    if _cached is not None:
        source, prepared = _cached
        if source is utterances and len(prepared.utterances) == len(utterances) and all(
            mine is theirs for mine, theirs in zip(prepared.utterances, utterances, strict=True)
        ):
            return prepared
    prepared = PreparedTranscript(utterances)
    _cached = (utterances, prepared)
    return prepared
