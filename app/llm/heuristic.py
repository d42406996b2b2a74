"""The `heuristic` provider: offline, deterministic, extractive.

It reads the transcript sentence by sentence and looks for what an after-call note records:
- the reason: the caller's first substantive request or problem ("I'm calling about", "I lost my card",
  "can you send me a new one");
- the outcome: an agent's escalation ("I'm transferring you"), resolution ("has been cancelled",
  "you're all set") or pending follow-up ("a technician will visit");
- action items: the agent's commitments ("I'll email you the form by Friday"), what the caller is asked
  to do after the call ("please email us the photos"), and what third parties will do, each with the
  due phrase as said;
- a summary of 2 to 5 statements built from those.

Every claim quotes a verbatim span of the utterance it cites, and its wording is the quoted clause
rewritten in the third person, so it carries no number, amount or negation its evidence lacks (checked
by `critical_tokens_preserved`, the verifier's own claim check; a claim that fails it falls back to quoting
the speaker).
Transcript text is untrusted: utterances that try to instruct the extractor are never used as evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.ingest.roles import roles_of
from app.llm.base import ExtractionProvider, ProviderResult
from app.llm.heuristic_cues import (
    ACKNOWLEDGED_OBJECT,
    AFTER_CALL_MARKER,
    AGENT_COMMITMENT,
    AGENT_SMALL_TALK,
    AGENT_WILL_HAPPEN,
    ANYTHING_ELSE,
    COMPANY_SIDE,
    COMPANY_UNIT,
    CUSTOMER_ACKNOWLEDGEMENT,
    CUSTOMER_DONE,
    CUSTOMER_FOLLOW_UP_VERBS,
    CUSTOMER_REQUEST,
    CUSTOMER_SELF_COMMITMENT,
    CUSTOMER_SIDE,
    CUSTOMER_THIRD_PARTY,
    DONE_ON_THE_CALL,
    ESCALATED_CUES,
    FINDING_CUES,
    IMMEDIATE_REQUEST_VERBS,
    INJECTION,
    NOT_A_REASON,
    OPTIONAL_INSTRUCTION,
    PENDING_CUES,
    REASON_CUES,
    REASON_PREFIX,
    RESOLVED_CUES,
    THIRD_PARTY_WILL,
    UNRESOLVED_CUES,
    WEAK_FOLLOW_UP_VERBS,
    CueSet,
    cue_set,
)
from app.llm.heuristic_text import (
    Sentence,
    clause_span,
    critical_tokens_preserved,
    find_due,
    quote_span,
    sentence_case,
    split_sentences,
    third_person,
    words,
)
from app.llm.prompt import PromptTemplate
from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement
from app.schemas.transcript import Role, Transcript
from app.schemas.usage import Usage

# Bump when the algorithm's output can change for the same input (it is stored on every run).
HEURISTIC_MODEL_VERSION = "heuristic-v3"

# A reason candidate needs at least this cue weight; below it the first substantive line is used.
MIN_REASON_SCORE = 4
# Reason candidates are looked for in this leading share of the call (callers say why early).
REASON_WINDOW_SHARE = 0.6
# ... but always in at least this many customer sentences, for calls with a long agent preamble.
MIN_REASON_SENTENCES = 6
# Bonus for an early reason, scaled by how early in the window it is.
EARLY_REASON_BONUS = 2.0
# A follow-up sentence joins the reason when it is a request this close behind it.
REASON_FOLLOW_UP_SENTENCES = 2
# A customer line shorter than this (in words) is not a substantive fallback reason.
MIN_SUBSTANTIVE_WORDS = 4
# Outcome cues late in the call weigh more: the resolution is what the call ended with.
LATE_OUTCOME_BONUS = 1.5
# Outcome candidates below this weight (after the lateness bonus) are not used.
MIN_OUTCOME_SCORE = 3.0
MAX_SUMMARY_STATEMENTS = 5
# A finding ("I can see ...") shorter than this many words is too vague for the summary.
MIN_FINDING_WORDS = 6
MIN_SUMMARY_STATEMENTS = 2
MAX_ACTION_ITEMS = 8
# How many items back a caller's "I'll do it" looks for the request it agrees to.
ACKNOWLEDGEMENT_REACH = 2
# Two items whose content words overlap this much (Jaccard) are the same item restated.
DUPLICATE_ITEM_OVERLAP = 0.5

_FILLER_PREFIX = re.compile(
    r"^(?:(?:so|um+|uh+|uhm+|erm|er|ah|<unk>|well|yeah|yes|yep|okay|ok|oh|and|but|alright|all right|right|hmm+|"
    r"actually|"
    r"basically|also|now|great|perfect|sure|absolutely|certainly|of course)\b[,.!]?\s+)+",
    re.IGNORECASE,
)
_LEADING_REQUEST_QUESTION = re.compile(
    r"^(?:please\s+)?(?:can|could|would|will)\s+(?:you|someone|somebody)\s+(?:please\s+)?(?P<rest>.+?)[?.!]*$",
    re.IGNORECASE,
)
_HOW_DO_I = re.compile(
    r"^(?:how|where|when)\s+(?:do|can|should|would)\s+(?:i|we)\s+(?P<rest>.+?)[?.!]*$", re.IGNORECASE
)
_NEGATED_PLURAL_VERB = re.compile(
    r"\b(the (?:agent|company|customer)) (don't|don’t|haven't|haven’t|aren't|aren’t|weren't|weren’t)\b"
)
_REPEATED_SUBJECT = re.compile(r"^(the (?:agent|company) )(.+?) and \1")
_SINGULAR_NEGATION = {"don't": "doesn't", "haven't": "hasn't", "aren't": "isn't", "weren't": "wasn't"}
# "I'm calling because ...", "I am just calling about ...": the caller's reason, said of them in the past.
_CALLING_ABOUT = re.compile(
    r"^(?:i'?m|i’m|i am|i was)\s+(?:just\s+|actually\s+)?calling\s+(?P<why>because|about|to|regarding|for)\s+",
    re.IGNORECASE,
)
PRONOUN_SUBJECT = re.compile(r"(?:it|this|that|they)\b", re.IGNORECASE)
_QUESTION_OPENER = re.compile(
    r"^(?:can|could|would|will|do|does|did|is|are|was|were|have|has|what|when|where|which|who|why|how|may|"
    r"shall|should|any|anything)\b",
    re.IGNORECASE,
)
# Capitalised only because they open a sentence; lowered when the sentence becomes a clause.
_ORDINARY_OPENERS = frozenset(
    {
        "my", "our", "the", "this", "that", "these", "those", "it", "it's", "its", "we", "we've", "we're",
        "there", "there's", "just", "still", "now", "getting", "got", "been", "simple", "quick", "please",
        "since", "after", "before", "when", "why", "what", "how", "where", "can", "could", "is", "are",
        "was", "were", "do", "does", "did", "have", "has", "had", "glad", "thanks", "thank", "your", "you",
        "you've", "you're", "no", "not", "nothing", "neither", "nobody", "never", "every", "all", "some",
        "any", "one", "two", "a", "an", "also", "again", "yesterday", "today", "tonight", "last", "trying",
        "tried", "ordered", "bought", "paid", "called", "waiting", "received", "booked", "cancelled",
        "as", "if", "once", "unfortunately", "sorry", "let", "let's", "here", "here's", "currently",
    }
)  # fmt: skip
_STOP_WORDS = frozenset(
    {
        "a", "an", "the", "to", "of", "for", "and", "or", "on", "in", "at", "by", "with", "your", "my", "our",
        "their", "you", "i", "we", "it", "this", "that", "is", "are", "be", "will", "ll", "'ll", "can", "just",
        "also", "please", "customer", "agent", "company",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence with the resolved role of its speaker, its position in the call (0 to 1), and the
    sentence-level facts every detector asks about, computed once."""

    sentence: Sentence
    role: Role
    position: float
    question: bool
    small_talk: bool
    may_promise: bool  # holds a future marker ("I'll", "will", "going to"): may carry a commitment
    may_request: bool  # holds a request marker ("please", "you'll need to"): may ask something of the caller


def _unit(sentence: Sentence, role: Role, position: float) -> _Unit:
    lower = sentence.text.lower().replace("’", "'")
    return _Unit(
        sentence=sentence,
        role=role,
        position=position,
        question=is_question(sentence.text),
        small_talk=AGENT_SMALL_TALK.search(sentence.text) is not None,
        may_promise=_FUTURE_HINT.search(lower) is not None,
        may_request=_REQUEST_HINT.search(lower) is not None,
    )


# Literal markers without which the commitment / request patterns cannot match. Testing them once per
# sentence spares most sentences the full patterns, which keeps a call to a few milliseconds.
_FUTURE_HINT = re.compile(r"'ll|will|shall|going to|gonna|should|expect|'d|can ")
_REQUEST_HINT = re.compile(
    r"please|kindly|if you|can you|could you|would you|need to|have to|want to|should|must|need you|"
    r"make sure|be sure|forget to|remember to|can i have|ask you|recommend|suggest|go ahead"
)


@dataclass(slots=True)
class _Quote:
    utterance: int
    start: int
    end: int


@dataclass(slots=True)
class _Claim:
    text: str
    quotes: list[_Quote]
    owner: Owner | None = None
    due: str | None = None
    anchor: int = 0  # utterance index, for ordering
    keywords: frozenset[str] = field(default_factory=frozenset)
    third_party: bool = False  # someone other than the agent on the call still has to act
    request: bool = False  # the agent asked the customer to do this
    acknowledges: bool = False  # the customer agreeing to a request ("I'll send them tonight")
    who: str | None = None  # the third party named as acting ("the returns team", "a technician")
    status_of: _Claim | None = None  # an outcome that says where this open item stands


class HeuristicProvider(ExtractionProvider):
    """Offline extraction by cue patterns. Deterministic; needs no key, sends nothing anywhere."""

    name = "heuristic"
    sends_data_offsite = False
    supports_repair = False

    @property
    def model(self) -> str:
        return HEURISTIC_MODEL_VERSION

    def extract(self, transcript: Transcript, prompt: PromptTemplate) -> ProviderResult:
        # The prompt is for language models; the rules here are its offline counterpart.
        del prompt
        return ProviderResult(extraction=extract_heuristic(transcript), usage=Usage())


def extract_heuristic(transcript: Transcript) -> Extraction:
    """The heuristic extraction of one transcript (pure function of its utterances)."""
    return _Extractor(transcript).run()


class _Extractor:
    def __init__(self, transcript: Transcript) -> None:
        self.texts = [u.text for u in transcript.utterances]
        roles = roles_of(transcript.utterances)
        count = len(transcript.utterances)
        self.units: list[_Unit] = []
        for utterance, role in zip(transcript.utterances, roles, strict=True):
            if _may_instruct(utterance.text) and INJECTION.search(utterance.text):
                # Text addressed to the extractor is not evidence of anything that happened on the call.
                continue
            position = utterance.index / max(count - 1, 1)
            for sentence in split_sentences(utterance.index, utterance.text):
                self.units.append(_unit(sentence, role, position))
        self.customer = [u for u in self.units if u.role in (Role.customer, Role.unknown)]
        self.agent = [u for u in self.units if u.role in (Role.agent, Role.unknown)]
        self._cue_scores: dict[tuple[int, int], tuple[float, int]] = {}

    def _score(self, unit: _Unit, cues: CueSet) -> tuple[float, int]:
        """`_best_cue` of a unit's sentence, memoized: outcome and summary ask about the same sentences."""
        key = (id(unit), id(cues))
        cached = self._cue_scores.get(key)
        if cached is None:
            cached = self._cue_scores[key] = _best_cue(unit.sentence.text, cues)
        return cached

    def run(self) -> Extraction:
        reason = self._reason()
        items = self._action_items()
        outcome = self._outcome(items)
        summary = self._summary(reason, outcome, items)
        return Extraction(
            summary=[self._statement(c) for c in summary],
            action_items=[self._action_item(c) for c in items],
            reason=self._statement(reason) if reason else None,
            outcome=self._statement(outcome) if outcome else None,
        )

    # --- reason ---------------------------------------------------------------------------------

    def _reason(self) -> _Claim | None:
        window = [u for u in self.customer if u.position <= REASON_WINDOW_SHARE]
        if len(window) < MIN_REASON_SENTENCES:
            window = self.customer[:MIN_REASON_SENTENCES]
        scored: list[tuple[float, int, _Unit, int]] = []
        for order, unit in enumerate(window):
            score, cue_start = self._score(unit, REASON_CUES)
            if score <= 0:
                continue
            request = unit.sentence.text[_request_start(unit.sentence.text, cue_start) :]
            if NOT_A_REASON.search(_strip_filler(request)):
                continue
            bonus = EARLY_REASON_BONUS * (1.0 - order / max(len(window), 1))
            scored.append((score + bonus, -order, unit, cue_start))
        best = max(scored, key=lambda s: (s[0], s[1]), default=None)
        if best is None or best[0] < MIN_REASON_SCORE:
            fallback = self._first_substantive(window)
            if fallback is None:
                return None
            primary, cue_start = fallback, 0
        else:
            _, _, primary, cue_start = best

        pieces = [(primary, cue_start)]
        follow = self._reason_follow_up(primary)
        if follow is not None:
            pieces.append(follow)
        parts: list[str] = []
        quotes: list[_Quote] = []
        for unit, start in pieces:
            quote = self._reason_quote(unit, start)
            quotes.append(quote)
            parts.append(_describe_customer(self._quote_text(quote)))
        text = "The customer " + " and ".join(parts)
        return self._guarded(_Claim(sentence_case(text), quotes, anchor=primary.sentence.utterance), "customer")

    def _first_substantive(self, window: Sequence[_Unit]) -> _Unit | None:
        for unit in window:
            stripped = _strip_filler(unit.sentence.text)
            if len(words(stripped)) >= MIN_SUBSTANTIVE_WORDS and not NOT_A_REASON.search(stripped):
                return unit
        return None

    def _reason_follow_up(self, primary: _Unit) -> tuple[_Unit, int] | None:
        index = self.customer.index(primary)
        for unit in self.customer[index + 1 : index + 1 + REASON_FOLLOW_UP_SENTENCES]:
            text = unit.sentence.text
            if NOT_A_REASON.search(_strip_filler(text)):
                continue
            score, cue_start = self._score(unit, REASON_CUES)
            if score >= MIN_REASON_SCORE and not _similar(_content_words(text), _content_words(primary.sentence.text)):
                return unit, cue_start
        return None

    def _reason_quote(self, unit: _Unit, cue_start: int) -> _Quote:
        sentence = unit.sentence
        start = _request_start(sentence.text, cue_start)
        absolute_cue = sentence.start + cue_start
        trimmed = Sentence(sentence.utterance, sentence.position, sentence.start + start, sentence.end,
                           sentence.text[start:])
        q_start, q_end = quote_span(trimmed, absolute_cue, absolute_cue + 1)
        return self._tight_quote(sentence.utterance, q_start, q_end)

    # --- outcome --------------------------------------------------------------------------------

    def _outcome(self, items: Sequence[_Claim]) -> _Claim | None:
        """Escalated, else pending (a review, a third party still to act), else resolved, else pending on
        a promise or a request made of the caller, else unresolved, else closed by the caller."""
        escalated = self._best_agent_sentence(ESCALATED_CUES)
        if escalated is not None:
            return self._labelled_outcome("Escalated", *escalated)
        handed_off = next((i for i in items if i.third_party), None)
        if handed_off is not None:
            return self._promise_outcome(handed_off)
        pending = self._best_agent_sentence(PENDING_CUES)
        if pending is not None:
            return self._labelled_outcome("Pending follow-up", *pending, items)
        resolved = self._best_agent_sentence(RESOLVED_CUES)
        if resolved is not None:
            return self._labelled_outcome("Resolved", *resolved)
        # No resolution said aloud, but the call ended on the agent's promise: that is pending too.
        promise = next((i for i in items if i.owner is Owner.agent), None)
        if promise is not None:
            return self._promise_outcome(promise)
        # Or on something the caller was asked to do ("please DM us your account number").
        request = next((i for i in items if i.request), None)
        if request is not None:
            return self._promise_outcome(request)
        unresolved = self._best_agent_sentence(UNRESOLVED_CUES)
        if unresolved is not None:
            return self._labelled_outcome("Unresolved", *unresolved)
        return self._closing_outcome()

    def _best_agent_sentence(self, cues: CueSet) -> tuple[_Unit, int] | None:
        """The agent sentence with the strongest cue, later sentences winning ties (the call's end state)."""
        best: tuple[float, float, _Unit, int] | None = None
        for unit in self.agent:
            if unit.role is Role.customer or unit.small_talk or unit.question:
                continue
            score, cue_start = self._score(unit, cues)
            if score <= 0:
                continue
            weighted = score + LATE_OUTCOME_BONUS * unit.position
            if best is None or (weighted, unit.position) >= (best[0], best[1]):
                best = (weighted, unit.position, unit, cue_start)
        if best is None or best[0] < MIN_OUTCOME_SCORE:
            return None
        return best[2], best[3]

    def _labelled_outcome(self, label: str, unit: _Unit, cue_start: int, items: Sequence[_Claim] = ()) -> _Claim:
        quote = self._clause_quote(unit, cue_start)
        twin = next((i for i in items if any(_same_span(quote, q) for q in i.quotes[:1])), None)
        if twin is not None and label != "Escalated":
            return self._promise_outcome(twin)  # the item says it already: the outcome says where it stands
        body = _describe_agent(self._quote_text(quote))
        claim = _Claim(sentence_case(f"{label}: {body}"), [quote], anchor=unit.sentence.utterance)
        return self._guarded(claim, "agent", label=label)

    def _promise_outcome(self, item: _Claim) -> _Claim:
        """Where the call stands when an open item is its end state: who has to act next. The item itself
        is stated once, as the action item, not repeated as the outcome."""
        if item.request:
            text = "Pending the customer's next step"
        elif item.who:
            text = f"Pending follow-up by {item.who}"
        else:
            text = "Pending the company's follow-up"
        return _Claim(text, item.quotes[:1], anchor=item.anchor, keywords=item.keywords, status_of=item)

    def _closing_outcome(self) -> _Claim | None:
        """'Anything else?' answered 'no, that's all': the caller's need was met, by their own word."""
        for position, unit in enumerate(self.units):
            if unit.role is not Role.agent or not ANYTHING_ELSE.search(unit.sentence.text):
                continue
            for reply in self.units[position + 1 : position + 4]:
                if reply.role is Role.customer and CUSTOMER_DONE.search(_strip_filler(reply.sentence.text)):
                    quote = self._tight_quote(reply.sentence.utterance, reply.sentence.start, reply.sentence.end)
                    return _Claim("Call closed: the customer had what they needed", [quote],
                                  anchor=reply.sentence.utterance)
        return None

    # --- action items ---------------------------------------------------------------------------

    def _action_items(self) -> list[_Claim]:
        items: list[_Claim] = []
        for index, unit in enumerate(self.units):
            text = unit.sentence.text
            if unit.role in (Role.agent, Role.unknown):
                items.extend(self._agent_side_items(index, unit, text))
            if unit.role in (Role.customer, Role.unknown):
                items.extend(self._customer_side_items(index, unit, text))
        return _deduplicate(_fold_acknowledgements(items))[:MAX_ACTION_ITEMS]

    def _agent_side_items(self, index: int, unit: _Unit, text: str) -> list[_Claim]:
        found: list[_Claim] = []
        asked = unit.question
        future = unit.may_promise
        for match in THIRD_PARTY_WILL.finditer(text) if future else ():
            who = match.group("who")
            company_side = COMPANY_SIDE.search(who) or (COMPANY_UNIT.search(who) and not CUSTOMER_SIDE.search(who))
            owner = Owner.agent if company_side else Owner.other
            item = self._item(index, unit, match.start(), owner, "agent")
            item.third_party = True
            item.who = _third_party_name(who)
            found.append(item)
        if future and not asked:
            for match in AGENT_COMMITMENT.finditer(text):
                verb = match.group("verb").lower()
                later = text[match.end() :]
                if find_due(later) is None and (verb in WEAK_FOLLOW_UP_VERBS or DONE_ON_THE_CALL.search(later)):
                    continue
                if any(_overlaps(match.start(), claim, unit) for claim in found):
                    continue
                found.append(self._item(index, unit, match.start(), Owner.agent, "agent"))
            for match in AGENT_WILL_HAPPEN.finditer(text):
                if OPTIONAL_INSTRUCTION.search(_strip_filler(text)):
                    break
                # "it'll appear in the app" says nothing on its own; with a due phrase it is a promise.
                if PRONOUN_SUBJECT.match(text, match.start()) and find_due(text[match.end() :]) is None:
                    continue
                if any(_overlaps(match.start(), claim, unit) for claim in found):
                    continue
                found.append(self._item(index, unit, match.start(), Owner.agent, "agent"))
        requested = unit.may_request
        for match in CUSTOMER_REQUEST.finditer(text) if requested else ():
            verb = match.group("verb").lower()
            if verb not in CUSTOMER_FOLLOW_UP_VERBS:
                continue
            tail = text[match.end() :]
            # "Can you confirm your address?" is asked and answered on the call: not an action item.
            said_for_later = find_due(tail) is not None or AFTER_CALL_MARKER.search(tail) is not None
            if (verb in IMMEDIATE_REQUEST_VERBS or asked) and not said_for_later:
                continue
            if any(_overlaps(match.start(), claim, unit) for claim in found):
                continue
            found.append(self._item(index, unit, match.start(), Owner.customer, "agent", request=True))
        # A promise by a speaker whose role stayed unknown is not put on the agent: nothing says it was theirs.
        return [c for c in found if c.owner is not Owner.agent or unit.role is Role.agent]

    def _customer_side_items(self, index: int, unit: _Unit, text: str) -> list[_Claim]:
        if unit.question or not unit.may_promise:
            return []
        found: list[_Claim] = []
        for match in CUSTOMER_SELF_COMMITMENT.finditer(text):
            item = self._item(index, unit, match.start(), Owner.customer, "customer")
            acknowledgement = CUSTOMER_ACKNOWLEDGEMENT.match(text, match.start())
            item.acknowledges = acknowledgement is not None and bool(
                ACKNOWLEDGED_OBJECT.search(text[match.start("verb") : acknowledgement.end()])
            )
            found.append(item)
        for match in CUSTOMER_THIRD_PARTY.finditer(text):
            found.append(self._item(index, unit, match.start(), Owner.other, "customer"))
        return found

    def _item(
        self, index: int, unit: _Unit, cue_start: int, owner: Owner, speaker: str, *, request: bool = False
    ) -> _Claim:
        sentence = unit.sentence
        quote = self._clause_quote(unit, cue_start)
        quotes = [quote]
        quoted = self._quote_text(quote)
        due_span = find_due(quoted)
        due: str | None = quoted[due_span[0] : due_span[1]] if due_span else None
        if due is None:
            # "I'll send the form. You should have it by Friday." The due phrase is often said next.
            following = self._next_in_utterance(index)
            if following is not None and not AGENT_COMMITMENT.search(following.sentence.text):
                due_span = find_due(following.sentence.text)
                if due_span is not None:
                    due = following.sentence.text[due_span[0] : due_span[1]]
                    quotes.append(self._tight_quote(following.sentence.utterance, following.sentence.start,
                                                    following.sentence.end))
        if request:
            body = _describe_request(quoted)
        elif speaker == "customer":
            body = _describe_customer_item(quoted)
        else:
            body = _describe_agent(quoted)
        claim = _Claim(
            sentence_case(body),
            quotes,
            owner=owner,
            due=due,
            request=request,
            anchor=sentence.utterance,
            keywords=_content_words(quoted),
        )
        return self._guarded(claim, speaker)

    def _next_in_utterance(self, index: int) -> _Unit | None:
        if index + 1 >= len(self.units):
            return None
        current, following = self.units[index], self.units[index + 1]
        return following if following.sentence.utterance == current.sentence.utterance else None

    # --- summary --------------------------------------------------------------------------------

    def _summary(self, reason: _Claim | None, outcome: _Claim | None, items: list[_Claim]) -> list[_Claim]:
        """A short narrative in the call's order: the problem, what the agent found or did, where the call
        ended and its next step. Facts are joined two (or three) to a statement, so no statement restates
        the reason, the outcome or an action item on its own: those are stated once, in their own fields."""
        used = {(q.utterance, q.start) for c in (reason, outcome) if c for q in c.quotes}
        pieces: list[list[_Claim]] = [[reason]] if reason else []
        pieces += [[finding] for finding in self._agent_findings(used)[:3]]
        if outcome is not None and outcome.status_of is not None:
            pieces.append([outcome, outcome.status_of])  # "Pending follow-up by X: X will ..."
        else:
            if outcome is not None:
                pieces.append([outcome])
            # Dated promises first, then the company's and third parties' before the caller's.
            ranked = sorted(items, key=lambda i: (i.due is None, i.owner is Owner.customer, i.anchor))
            step = next((i for i in ranked if not any((q.utterance, q.start) in used for q in i.quotes)), None)
            if step is not None and pieces:
                pieces.append([step])
        if len(pieces) == 1:
            reply = self._first_agent_reply(used)
            if reply is not None:
                pieces.append([reply])
        groups = [pieces[i : i + 2] for i in range(0, len(pieces), 2)]
        if len(groups) > 1 and len(groups[-1]) == 1:
            last = groups.pop()
            groups[-1] += last
        return [_joined([part for piece in group for part in piece]) for group in groups][:MAX_SUMMARY_STATEMENTS]

    def _agent_findings(self, used: set[tuple[int, int]]) -> list[_Claim]:
        """What the agent found or did along the way ("I can see an outage", "I've cancelled the card")."""
        findings: list[_Claim] = []
        for unit in self.agent:
            if unit.role is not Role.agent or unit.small_talk or unit.question:
                continue
            score, cue_start = self._score(unit, _FINDING_OR_DONE_CUES)
            if score <= 0:
                continue
            quote = self._clause_quote(unit, cue_start)
            if (quote.utterance, quote.start) in used:
                continue
            quoted = self._quote_text(quote)
            # "I can see that request" says nothing; "I've opened the claim" does, however short.
            if len(words(quoted)) < MIN_FINDING_WORDS and self._score(unit, RESOLVED_CUES)[0] == 0:
                continue
            body = _describe_agent(quoted)
            findings.append(self._guarded(_Claim(sentence_case(body), [quote], anchor=quote.utterance), "agent"))
            used.add((quote.utterance, quote.start))
        return findings

    def _first_agent_reply(self, used: set[tuple[int, int]]) -> _Claim | None:
        for unit in self.agent:
            if unit.role is not Role.agent or unit.small_talk:
                continue
            stripped = _strip_filler(unit.sentence.text)
            if len(words(stripped)) < MIN_SUBSTANTIVE_WORDS:
                continue
            quote = self._tight_quote(unit.sentence.utterance, unit.sentence.start, unit.sentence.end)
            if (quote.utterance, quote.start) in used:
                continue
            body = _describe_agent(self._quote_text(quote))
            return self._guarded(_Claim(sentence_case(body), [quote], anchor=quote.utterance), "agent")
        return None

    # --- quoting and output ---------------------------------------------------------------------

    def _clause_quote(self, unit: _Unit, cue_start: int) -> _Quote:
        absolute = unit.sentence.start + cue_start
        start, end = clause_span(unit.sentence, absolute)
        return self._tight_quote(unit.sentence.utterance, start, end)

    def _tight_quote(self, utterance: int, start: int, end: int) -> _Quote:
        """Drop leading fillers ("okay so um") from a quote, keeping it an exact substring."""
        text = self.texts[utterance][start:end]
        lead = _FILLER_PREFIX.match(text)
        if lead and lead.end() < len(text):
            start += lead.end()
        return _Quote(utterance, start, end)

    def _quote_text(self, quote: _Quote) -> str:
        return self.texts[quote.utterance][quote.start : quote.end]

    def _guarded(self, claim: _Claim, speaker: str, *, label: str | None = None) -> _Claim:
        """Fall back to a verbatim report of the speaker when rewriting changed a critical token."""
        evidence = [self._quote_text(q) for q in claim.quotes]
        if critical_tokens_preserved(claim.text, evidence):
            return claim
        said = " ".join(evidence)
        who = "The customer" if speaker == "customer" else "The agent"
        text = f'{label}: {who.lower()} said "{said}"' if label else f'{who} said "{said}"'
        if label and not critical_tokens_preserved(text, evidence):
            # The label is what the evidence does not say ("Resolved" on "it will get resolved"): where the call
            # stands is then a follow-up, in the speaker's words.
            text = f'Pending follow-up: {who.lower()} said "{said}"'
        claim.text = sentence_case(text)
        return claim

    def _statement(self, claim: _Claim) -> Statement:
        return Statement(text=claim.text, evidence=self._evidence(claim))

    def _action_item(self, claim: _Claim) -> ActionItem:
        assert claim.owner is not None
        return ActionItem(text=claim.text, evidence=self._evidence(claim), owner=claim.owner, due=claim.due)

    def _evidence(self, claim: _Claim) -> list[EvidenceRef]:
        return [EvidenceRef(utterance=q.utterance, quote=self._quote_text(q)) for q in claim.quotes]


# --- helpers ----------------------------------------------------------------------------------------


# What the agent found or did along the way: findings plus the named-action resolution cues.
_FINDING_OR_DONE_CUES = cue_set(*FINDING_CUES.cues, *RESOLVED_CUES.cues[:3])


def _best_cue(text: str, cues: CueSet) -> tuple[float, int]:
    """Sum of matched cue weights (each cue counted once), and where the strongest cue starts."""
    if cues.any.search(text) is None:
        return 0.0, 0
    total = 0.0
    strongest = (0, len(text))
    for pattern, weight in cues.cues:
        match = pattern.search(text)
        if match is None:
            continue
        total += weight
        if (weight, -match.start()) > (strongest[0], -strongest[1]):
            strongest = (weight, match.start())
    return total, (strongest[1] if total > 0 else 0)


def _request_start(text: str, cue_start: int) -> int:
    """Skip a greeting or self-introduction said in the same breath before the request."""
    start = 0
    while (match := REASON_PREFIX.match(text, start)) is not None and start < match.end() <= cue_start:
        start = match.end()
    return start


# Words every INJECTION pattern contains; most utterances have none and skip the full pattern.
_INSTRUCTION_WORDS = (
    "ignore", "disregard", "forget", "override", "prompt", "instruction", "jailbreak", "developer mode",
    "you are", "approved", "granted", "resolved", "refunded", "accepted", "paid",
)  # fmt: skip


def _may_instruct(text: str) -> bool:
    lower = text.lower()
    return any(word in lower for word in _INSTRUCTION_WORDS)


def is_question(text: str) -> bool:
    """A question, also when ASR dropped the question mark ("can you repeat that please")."""
    stripped = text.rstrip()
    if stripped.endswith("?"):
        return True
    if "." in stripped or "!" in stripped:
        return False
    return _QUESTION_OPENER.match(_strip_filler(stripped)) is not None


def _strip_filler(text: str) -> str:
    return _FILLER_PREFIX.sub("", text.strip())


def _describe_customer_item(quoted: str) -> str:
    """A caller's own promise: "I'll email the photos tonight" -> "the customer will email the photos tonight"."""
    clause = _strip_filler(quoted).rstrip(" .!")
    match = CUSTOMER_SELF_COMMITMENT.search(clause)
    if match is None:
        return third_person(clause, "customer")
    return "the customer will " + third_person(clause[match.start("verb") :], "customer")


def _lower_opener(clause: str) -> str:
    """Lower-case a sentence's capitalised first word when it is an ordinary word ("Getting", "My")."""
    first, _, rest = clause.partition(" ")
    if first.lower() in _ORDINARY_OPENERS and first[:1].isupper() and first[1:].islower():
        return f"{first.lower()} {rest}" if rest else first.lower()
    return clause


def _describe_customer(quoted: str) -> str:
    """A customer clause as the predicate of "The customer ...": "says they lost their card"."""
    clause = _lower_opener(_strip_filler(quoted).rstrip(" .!"))
    request = _LEADING_REQUEST_QUESTION.match(clause)
    if request:
        return "asked the agent to " + third_person(request.group("rest"), "customer")
    how = _HOW_DO_I.match(clause)
    if how:
        return "asked how to " + third_person(how.group("rest"), "customer")
    if is_question(clause):
        return "asked: " + third_person(clause.rstrip("?"), "customer") + "?"
    calling = _CALLING_ABOUT.match(clause)
    if calling:
        return f"called {calling.group('why').lower()} " + third_person(clause[calling.end() :], "customer")
    return "says " + third_person(clause, "customer")


def _describe_agent(quoted: str) -> str:
    """An agent clause rewritten in the third person: "the agent will send the customer a new card"."""
    clause = _strip_filler(quoted).rstrip(" .!")
    if is_question(clause):
        return "the agent asked: " + third_person(clause.rstrip("?"), "agent") + "?"
    rewritten = third_person(_lower_opener(clause), "agent")
    # "the agent don't see" -> "the agent doesn't see": the negation stays a negation.
    rewritten = _NEGATED_PLURAL_VERB.sub(
        lambda m: m.group(1) + " " + _SINGULAR_NEGATION[m.group(2).replace("’", "'")], rewritten
    )
    # "the agent is looking ... and the agent doesn't see ...": one subject is enough.
    return _REPEATED_SUBJECT.sub(r"\1\2 and ", rewritten)


def _describe_request(quoted: str) -> str:
    """What the caller was asked to do: "please email us the photos" -> "the customer to email ..."."""
    clause = _strip_filler(quoted).rstrip(" .!?")
    match = CUSTOMER_REQUEST.search(clause)
    if match is None:
        return _describe_agent(quoted)
    rest = clause[match.start("verb") :]
    return "the customer is asked to " + third_person(rest, "agent")


def _content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in words(text) if w not in _STOP_WORDS and len(w) > 2)


def _overlaps(cue_start: int, claim: _Claim, unit: _Unit) -> bool:
    """True when `claim` already quotes the clause around `cue_start` of this unit's sentence."""
    absolute = unit.sentence.start + cue_start
    return any(q.utterance == unit.sentence.utterance and q.start <= absolute < q.end for q in claim.quotes)


def _fold_acknowledgements(items: list[_Claim]) -> list[_Claim]:
    """Fold "I'll send them tonight" into the request it answers, taking its due phrase if the request had none."""
    kept: list[_Claim] = []
    for item in items:
        request = next(
            (k for k in reversed(kept[-ACKNOWLEDGEMENT_REACH:]) if k.request and k.anchor < item.anchor),
            None,
        )
        if not item.acknowledges or request is None:
            kept.append(item)
            continue
        request.quotes.extend(item.quotes)
        if request.due is None:
            request.due = item.due
    return kept


def _deduplicate(items: list[_Claim]) -> list[_Claim]:
    """Drop restatements ("so again, I'll send the form") keeping the version that carries a due phrase."""
    kept: list[_Claim] = []
    for item in items:
        twin = next((k for k in kept if k.owner == item.owner and _similar(k.keywords, item.keywords)), None)
        if twin is None:
            kept.append(item)
        elif twin.due is None and item.due is not None:
            kept[kept.index(twin)] = item
    return kept


def _same_span(left: _Quote, right: _Quote) -> bool:
    return left.utterance == right.utterance and left.start < right.end and right.start < left.end


_OUTCOME_LABEL = re.compile(r"^(?:Resolved|Escalated|Unresolved|Pending follow-up|Call closed): ")


def _joined(parts: Sequence[_Claim]) -> _Claim:
    """One statement of several facts: "A; b; c.", citing each fact's quotes once."""
    first, *rest = parts
    text = first.text.rstrip(" .")
    previous = first
    for part in rest:
        body = part.text.rstrip(" .")
        if part.status_of is None:
            body = _OUTCOME_LABEL.sub("", body)
        first_word = body.split(" ", 1)[0]
        if first_word[:1].isupper() and first_word != "I" and (len(first_word) == 1 or first_word[1:].islower()):
            body = body[0].lower() + body[1:]
        if previous.status_of is part:
            joiner = ": "
        elif part.owner is not None:
            joiner = "; next, "
        else:
            joiner = "; "
        text += joiner + body
        previous = part
    quotes: list[_Quote] = []
    for part in parts:
        quotes += [q for q in part.quotes if not any(_same_span(q, seen) for seen in quotes)]
    keywords = frozenset().union(*(p.keywords for p in parts))
    return _Claim(sentence_case(text + "."), quotes, anchor=first.anchor, keywords=keywords)


def _third_party_name(who: str) -> str:
    """"our billing team" -> "the company's billing team": how the note names who acts next."""
    name = third_person(" ".join(who.split()), "agent")
    return name[0].lower() + name[1:]


def _similar(left: frozenset[str], right: frozenset[str]) -> bool:
    if not left or not right:
        return left == right
    return len(left & right) / len(left | right) >= DUPLICATE_ITEM_OVERLAP
