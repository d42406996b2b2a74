"""Text primitives of the heuristic provider: sentence spans, quote trimming, third-person rewriting,
due phrases and the critical-token guard.

Everything here works on character offsets into the original utterance text, so that every quote the
provider emits is an exact substring of the utterance it cites. Contact-center text comes in two shapes:
punctuated (chat, human transcripts) and lowercase unpunctuated ASR output; both are handled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from app.grounding.claims import unsupported_claim_detail
from app.text.lexicon import MONTHS, SPOKEN_CARDINAL_PATTERN, WEEKDAY_NAMES, alternation

# A sentence longer than this is cut down to the clause around the cue, so quotes stay short.
MAX_QUOTE_CHARS = 180
# Unpunctuated ASR runs longer than this many words are split at discourse markers.
LONG_UNPUNCTUATED_WORDS = 14
# A quote trimmed from a long run keeps at most this many words after the cue starts.
MAX_WINDOW_WORDS = 22


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of one utterance; `text == utterance_text[start:end]`."""

    utterance: int
    position: int  # order of the sentence within its utterance
    start: int
    end: int
    text: str


_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "st", "sr", "jr", "vs", "etc", "no", "approx", "dept", "apt", "ave",
        "a.m", "p.m", "e.g", "i.e", "u.s", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "inc", "ltd", "co", "ext", "acct",
    }
)  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n+")
_LEADING_NOISE = re.compile(
    r"^(?:\s|@\w+[:,]?|https?://\S+|\^\w+|[-–—*•>]+|\[(?:noise|laughter|inaudible|crosstalk|unk)\]|<unk>)+",
    re.IGNORECASE,
)
# A last token that is not speech: a link, a chat signature ("^JS"), an ASR noise tag.
_NOISE_TOKEN = re.compile(r"https?://\S+|\^\w+|\[(?:noise|laughter|inaudible|crosstalk|unk)\]|<unk>", re.IGNORECASE)
_TRAILING_PUNCTUATION = " \t\r\n,;:–—-"
_WORD = re.compile(r"[A-Za-z0-9$£€][\w'’$%.,:/-]*[\w%]|[A-Za-z0-9]")
_DISCOURSE_BREAK = re.compile(
    r"\s(?=(?:okay|ok|alright|all right|so|but|also|well|actually|and then|anyway)\s)", re.IGNORECASE
)


# Stock phrases that open a new sentence even in a short unpunctuated ASR run.
_TURN_FORMULA = re.compile(
    r"(?<!\bthere)\s(?=anything else\b)"
    r"|\s(?=(?:is there anything else|thank you for calling|thanks for calling|have a (?:great|nice|"
    r"good|wonderful) (?:day|one)|how (?:can|may) i (?:help|assist)|what can i do for you|my name is|"
    r"can i (?:have|get)|could i (?:have|get)|can you|could you)\b)",
    re.IGNORECASE,
)


def split_sentences(utterance: int, text: str) -> list[Sentence]:
    """Sentences of one utterance, with handles, URLs and noise tags trimmed off their edges."""
    pieces: list[tuple[int, int]] = []
    cursor = 0
    for match in _SENTENCE_END.finditer(text):
        if match.group().strip() and _is_abbreviation(text, match.start()):
            continue
        pieces.append((cursor, match.end()))
        cursor = match.end()
    pieces.append((cursor, len(text)))

    sentences: list[Sentence] = []
    for start, end in pieces:
        for sub_start, sub_end in _split_long_unpunctuated(text, start, end):
            trimmed = _trim(text, sub_start, sub_end)
            if trimmed is None:
                continue
            t_start, t_end = trimmed
            sentences.append(Sentence(utterance, len(sentences), t_start, t_end, text[t_start:t_end]))
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word_start = dot
    while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "."):
        word_start -= 1
    word = text[word_start:dot].lower()
    if word == "no":
        # "No. 5" abbreviates "number"; "No. It isn't" ends a sentence.
        return text[dot + 1 :].lstrip()[:1].isdigit()
    # A lone letter followed by a dot is an initial ("J. Smith") or part of "a.m.".
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _split_long_unpunctuated(text: str, start: int, end: int) -> list[tuple[int, int]]:
    chunk = text[start:end]
    if any(mark in chunk for mark in ".,?!;"):
        return [(start, end)]
    breaks = [m.start() for m in _TURN_FORMULA.finditer(chunk)]
    if len(chunk.split()) > LONG_UNPUNCTUATED_WORDS:
        breaks += [m.start() for m in _DISCOURSE_BREAK.finditer(chunk)]
    cuts = [start] + [start + b for b in sorted(set(breaks)) if b > 0] + [end]
    spans: list[tuple[int, int]] = []
    for left, right in pairwise(cuts):
        # Keep very short pieces attached to the previous one: "okay so" is not a sentence.
        if spans and len(text[left:right].split()) < 3:
            spans[-1] = (spans[-1][0], right)
        else:
            spans.append((left, right))
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    chunk = text[start:end]
    lead = _LEADING_NOISE.match(chunk)
    if lead:
        start += lead.end()
        chunk = text[start:end]
    end = start + _speech_end(chunk)
    if end <= start or not _WORD.search(text[start:end]):
        return None
    return start, end


def _speech_end(chunk: str) -> int:
    """Length of `chunk` without trailing noise tokens, links and dangling punctuation."""
    end = len(chunk.rstrip(_TRAILING_PUNCTUATION))
    while end > 0:
        token_start = chunk.rfind(" ", 0, end) + 1
        if not _NOISE_TOKEN.fullmatch(chunk, token_start, end):
            return end
        end = len(chunk[:token_start].rstrip(_TRAILING_PUNCTUATION))
    return 0


def words(text: str) -> list[str]:
    """Lowercase word tokens, apostrophes unified; a token never ends in punctuation ("$4.75" keeps its dot)."""
    return _WORD.findall(text.lower().replace("’", "'"))


# --- quote trimming --------------------------------------------------------------------------------

_CLAUSE_BREAK = re.compile(r"[,;:]\s|\s[-–—]\s|\s\((?=\w)")


def quote_span(sentence: Sentence, cue_start: int, cue_end: int) -> tuple[int, int]:
    """The span (absolute offsets) to quote for a cue found at [cue_start, cue_end) of `sentence`.

    The whole sentence when it is short; otherwise the clause holding the cue, grown rightwards until it
    covers the cue and a few words, and capped at a word window for unpunctuated runs.
    """
    if sentence.end - sentence.start <= MAX_QUOTE_CHARS:
        return sentence.start, sentence.end
    text = sentence.text
    rel_cue, rel_cue_end = cue_start - sentence.start, cue_end - sentence.start
    breaks = [0] + [m.end() for m in _CLAUSE_BREAK.finditer(text)] + [len(text)]
    left = max(b for b in breaks if b <= rel_cue)
    right = min((b for b in breaks if b >= rel_cue_end), default=len(text))
    if right - left > MAX_QUOTE_CHARS:
        left = max(left, _word_start_before(text, rel_cue, 3))
        right = _word_end_after(text, rel_cue_end, MAX_WINDOW_WORDS)
    chunk = text[left:right].rstrip(" ,;:–—-(")
    lead = len(chunk) - len(chunk.lstrip(" ,;:–—-("))
    return sentence.start + left + lead, sentence.start + left + len(chunk)


# Sentences longer than this are quoted clause by clause for commitments and outcomes, so one sentence
# holding several promises ("you'll email the photos, I'll send the form, and an adjuster will call")
# yields one item per promise.
CLAUSE_MODE_CHARS = 90
# A clause shorter than this (in words) borrows the next clause: "Yes, I can" is not a quote.
MIN_CLAUSE_WORDS = 4
_LEADING_CONJUNCTION = re.compile(r"(?:and|but|so|or|then)\s+", re.IGNORECASE)
_CONDITION_OPENER = re.compile(
    r"^(?:(?:and|but|so|or)\s+)?(?:if|once|when|after|as soon as|unless|until)\b", re.IGNORECASE
)


def clause_span(sentence: Sentence, cue_start: int) -> tuple[int, int]:
    """The clause of `sentence` holding the cue at `cue_start` (absolute offsets), with its condition.

    "If the line isn't back by tonight, a technician will visit tomorrow" keeps its "if" clause: the
    promise is conditional and the quote must say so.
    """
    if sentence.end - sentence.start <= CLAUSE_MODE_CHARS:
        return quote_span(sentence, cue_start, cue_start + 1)
    text = sentence.text
    rel_cue = cue_start - sentence.start
    breaks = sorted({0, len(text), *(m.end() for m in _CLAUSE_BREAK.finditer(text))})
    left_index = max(i for i, b in enumerate(breaks) if b <= rel_cue)
    right_index = left_index + 1
    if left_index > 0 and _CONDITION_OPENER.match(text[breaks[left_index - 1] :]):
        left_index -= 1
    while right_index < len(breaks) - 1 and (
        len(text[breaks[left_index] : breaks[right_index]].split()) < MIN_CLAUSE_WORDS
        or _due_starts_at(text, breaks[right_index])
    ):
        right_index += 1
    left, right = breaks[left_index], breaks[right_index]
    conjunction = _LEADING_CONJUNCTION.match(text, left)
    if conjunction is not None and conjunction.end() < right:
        left = conjunction.end()
    chunk = text[left:right].rstrip(" ,;:–—-(")
    if len(chunk) > MAX_QUOTE_CHARS:
        return quote_span(sentence, cue_start, cue_start + 1)
    return sentence.start + left, sentence.start + left + len(chunk)


def _word_start_before(text: str, position: int, count: int) -> int:
    starts = [m.start() for m in re.finditer(r"\S+", text[:position])]
    return starts[-count] if len(starts) >= count else 0


def _word_end_after(text: str, position: int, count: int) -> int:
    ends = [position + m.end() for m in re.finditer(r"\S+", text[position:])]
    return ends[min(count, len(ends)) - 1] if ends else len(text)


# --- third-person rewriting --------------------------------------------------------------------------

# Keys are lowercase, with straight apostrophes; two-word keys take precedence over their first word.
_CUSTOMER_SWAPS: dict[str, str] = {
    "i'm": "they're",
    "i am": "they are",
    "i was": "they were",
    "i've": "they've",
    "i'll": "they'll",
    "i'd": "they'd",
    "i": "they",
    "myself": "themselves",
    "my": "their",
    "mine": "theirs",
    "me": "them",
    "we're": "they're",
    "we've": "they've",
    "we'll": "they'll",
    "we'd": "they'd",
    "we": "they",
    "our": "their",
    "ours": "theirs",
    "us": "them",
    "ourselves": "themselves",
    "you guys": "the company",
    "you're": "the agent is",
    "you are": "the agent is",
    "you were": "the agent was",
    "you've": "the agent has",
    "you have": "the agent has",
    "you'll": "the agent will",
    "your": "the company's",
    "you": "the agent",
}
_AGENT_SWAPS: dict[str, str] = {
    "i'm": "the agent is",
    "i am": "the agent is",
    "i've": "the agent has",
    "i have": "the agent has",
    "i'll": "the agent will",
    "i'd": "the agent would",
    "i": "the agent",
    "myself": "the agent",
    "my": "the agent's",
    "me": "the agent",
    "we're": "the company is",
    "we are": "the company is",
    "we've": "the company has",
    "we have": "the company has",
    "we'll": "the company will",
    "we'd": "the company would",
    "we were": "the company was",
    "we": "the company",
    "our": "the company's",
    "us": "the company",
    "you're": "the customer is",
    "you are": "the customer is",
    "you've": "the customer has",
    "you have": "the customer has",
    "you'll": "the customer will",
    "you'd": "the customer would",
    "you were": "the customer was",
    "yourself": "the customer",
    "yours": "the customer's",
    "your": "the customer's",
    "you": "the customer",
}
_NO_CONJUGATION = frozenset(
    {
        "can", "could", "will", "would", "shall", "should", "may", "might", "must", "is", "was", "has",
        "did", "also", "just", "really", "already", "still", "then", "only", "actually", "definitely",
        "the", "a", "an", "to", "and", "or", "so",
    }
)  # fmt: skip
_IRREGULAR_PRESENT = {"have": "has", "do": "does", "go": "goes", "am": "is", "are": "is", "were": "was"}
_SUBJECT_VERB = re.compile(r"\b(the agent|the company|the customer) ([a-z]+)\b")


# A word, and the verb after it when that verb belongs to a two-word swap ("you are", "I am").
_SWAP_WORD = re.compile(r"\b([A-Za-z]+(?:['’][A-Za-z]+)?)(?:(\s+)(am|are|have|was|were|guys)\b)?", re.IGNORECASE)


def _swap_words(text: str, table: dict[str, str]) -> str:
    """Apply a swap table in one pass over the words of `text`."""

    def swap(match: re.Match[str]) -> str:
        first = match.group(1)
        key = first.lower().replace("’", "'")
        second = match.group(3)
        if second is None:
            return table.get(key, first)
        pair = table.get(f"{key} {second.lower()}")
        if pair is not None:
            return pair
        return table.get(key, first) + match.group(2) + second

    return _SWAP_WORD.sub(swap, text)


def third_person(text: str, speaker: str) -> str:
    """Rewrite first/second person into third person from the reviewer's view.

    `speaker` is "customer" (I -> they, my -> their, you -> the agent) or "agent" (I -> the agent,
    we -> the company, you -> the customer). Verbs after a singular subject are conjugated
    ("the agent send" -> "the agent sends"); "they" needs no conjugation, which is why customer speech
    is rewritten with it. Callers guard the result with `critical_tokens_preserved`.
    """
    text = _swap_words(text, _CUSTOMER_SWAPS if speaker == "customer" else _AGENT_SWAPS)
    if speaker != "customer":
        text = _SUBJECT_VERB.sub(_conjugate, text)
    return text


def _conjugate(match: re.Match[str]) -> str:
    subject, verb = match.group(1), match.group(2)
    # Only the subject position needs a third-person verb; an object ("... sends the customer a card")
    # is followed by a noun phrase, which we cannot tell from a verb without a tagger: only rewrite
    # words that are plausible base-form verbs.
    if verb in _NO_CONJUGATION or verb.endswith(("ed", "ing", "s")) or verb not in _BASE_VERBS:
        return match.group(0)
    if verb in _IRREGULAR_PRESENT:
        return f"{subject} {_IRREGULAR_PRESENT[verb]}"
    if verb.endswith(("sh", "ch", "x", "o", "z")):
        return f"{subject} {verb}es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return f"{subject} {verb[:-1]}ies"
    return f"{subject} {verb}s"


_BASE_VERBS = frozenset(
    {
        "need", "want", "see", "understand", "apologize", "apologise", "show", "send", "have", "do", "go",
        "know", "think", "believe", "recommend", "suggest", "notice", "confirm", "process", "cancel",
        "refund", "issue", "schedule", "book", "update", "reset", "waive", "credit", "add", "remove",
        "order", "ship", "mail", "email", "call", "open", "close", "offer", "owe", "get", "appreciate",
        "hope", "like", "love", "use", "pay", "live", "work", "try", "keep", "receive", "expect", "pick",
        "drop", "bring", "come", "arrive", "reply", "upload", "submit", "return", "visit", "check", "choose",
        "decide", "sign", "fill", "complete", "hear", "wait", "approve", "tell", "ask", "give", "take",
        "make", "leave", "move", "find", "look", "let", "help", "contact", "reach", "text", "log", "print",
    }
)  # fmt: skip


def sentence_case(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    first_word = text.split(maxsplit=1)[0]
    # Capitalising "https://..." or "iPhone" would change a token the verifier compares.
    if first_word.replace("'", "").replace("’", "").isalpha() and first_word.islower():
        text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


# --- critical tokens -------------------------------------------------------------------------------


def critical_tokens_preserved(claim: str, evidence: list[str]) -> bool:
    """Whether every number, amount, date, ID and negation of `claim` is in `evidence`, as the verifier
    judges it: a rewrite the guard lets through is one the verifier grounds."""
    return unsupported_claim_detail(claim, evidence) is None


# --- due phrases -----------------------------------------------------------------------------------

_NUM = rf"(?:\d+(?:\.\d+)?|{SPOKEN_CARDINAL_PATTERN}|a few|few|a couple(?: of)?|couple of|a|an)"
_RANGE = rf"{_NUM}(?:\s*(?:-|–|to|or)\s*{_NUM})?"
_UNIT = r"(?:business |working |calendar )?(?:days?|hours?|minutes?|weeks?|months?)"
_WEEKDAY = alternation(WEEKDAY_NAMES)
_MONTH = rf"{alternation(MONTHS)}\.?"
_ORDINAL_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = rf"(?:{_MONTH}\s+{_ORDINAL_DAY}|the\s+\d{{1,2}}(?:st|nd|rd|th)(?:\s+of\s+{_MONTH})?)"
# "3/14" is only a date after a preposition; bare it is as often "[2/2]" or a fraction.
_NUMERIC_DATE = r"\d{1,2}/\d{1,2}(?:/\d{2,4})?"
_CLOCK = r"(?:\d{1,2}(?::\d{2})?\s*(?:a\.?m\.?|p\.?m\.?)|noon|midnight|\d{1,2}(?::\d{2})?\s*o'clock)"
_HOUR = r"(?:\d{1,2}(?::\d{2})?(?:\s*(?:a\.?m\.?|p\.?m\.?))?|noon)"
_PART_OF_DAY = r"(?:\s+(?:morning|afternoon|evening|night))?"
_RELATIVE_DAY = (
    rf"(?:today|tonight|tomorrow{_PART_OF_DAY}|the day after tomorrow|later today|"
    r"this (?:morning|afternoon|evening|weekend))"
)
_DUE_PATTERNS = [
    rf"within\s+(?:the\s+next\s+)?{_RANGE}\s+{_UNIT}",
    r"(?:within|in)\s+the\s+(?:next\s+)?(?:hour|day|week|month)",
    rf"in\s+(?:the\s+next\s+|about\s+|around\s+|roughly\s+)?{_RANGE}\s+{_UNIT}",
    rf"(?:over|during)\s+the\s+next\s+{_RANGE}\s+{_UNIT}",
    rf"{_NUM}\s*(?:-|–|to)\s*{_NUM}\s+{_UNIT}",
    r"(?:by|before|until|no later than)\s+(?:the\s+)?end\s+of\s+(?:the\s+|this\s+|next\s+)?"
    r"(?:business\s+)?(?:day|week|month)",
    rf"(?:by|before|until|till|no later than)\s+(?:{_RELATIVE_DAY}|(?:this|next)\s+{_WEEKDAY}|{_WEEKDAY}{_PART_OF_DAY}|"
    rf"{_DATE}|{_NUMERIC_DATE}|{_CLOCK}(?:\s+{_RELATIVE_DAY})?|the\s+next\s+billing\s+cycle|your\s+next\s+"
    r"(?:bill|statement|billing\s+cycle|appointment))",
    r"eod|cob",
    rf"(?:{_RELATIVE_DAY}\s+)?(?:between|from)\s+{_HOUR}\s*(?:and|to|-|–)\s*{_HOUR}(?:\s+{_RELATIVE_DAY})?",
    rf"(?:on\s+)?(?:this\s+|next\s+)?{_WEEKDAY}{_PART_OF_DAY}(?:,?\s+{_DATE})?(?:\s+at\s+{_CLOCK})?",
    rf"(?:on\s+)?{_DATE}(?:\s+at\s+{_CLOCK})?",
    rf"{_RELATIVE_DAY}(?:\s+(?:at|by|before)\s+{_CLOCK})?",
    rf"(?:at|after|from)\s+{_CLOCK}(?:\s+{_RELATIVE_DAY})?",
    r"(?:next|this)\s+(?:week|month|business\s+day|billing\s+cycle)",
    rf"(?:at\s+least\s+)?{_RANGE}\s+{_UNIT}\s+(?:before|after|prior\s+to)\s+(?:the|your)\s+(?:next\s+)?[a-z-]+",
    r"(?:the\s+(?:day|night|morning|week)\s+)?(?:before|prior\s+to)\s+(?:the|your)\s+(?:next\s+)?(?:appointment|visit|flight|trip|procedure|deadline|"
    r"surgery|move|renewal|due\s+date|check-?up)",
    r"the\s+next\s+business\s+day",
    r"first\s+thing\s+(?:tomorrow|in\s+the\s+morning|monday)",
    r"(?:as\s+soon\s+as\s+possible|asap|right\s+away|immediately|later\s+today|shortly)",
    r"as\s+soon\s+as\s+(?:it|they|you|the\s+\w+)\s+(?:arrives?|comes?|is\s+ready|are\s+ready|gets?\s+there)",
    r"end\s+of\s+(?:the\s+)?(?:business\s+)?(?:day|week|month)",
]
# One regex per pattern: a single alternation would stop at the first alternative that matches and
# miss a longer phrase starting at the same place.
_DUE = [re.compile(rf"(?<![\w/])(?:{pattern})(?![\w/])", re.IGNORECASE) for pattern in _DUE_PATTERNS]
# Their union: one scan rules out the many sentences that hold no due phrase at all.
_DUE_ANY = re.compile("|".join(p.pattern for p in _DUE), re.IGNORECASE)


def find_due(text: str) -> tuple[int, int] | None:
    """The longest due phrase in `text` (relative offsets), or None.

    Longest wins so "within 5 business days" beats a bare "5 business days" found inside it, and
    "tomorrow between 8 and 12" beats "tomorrow".
    """
    if not _may_hold_due(text):
        return None
    best: tuple[int, int] | None = None
    # The union finds where phrases start; trying each pattern anchored there finds the longest one.
    for hit in _DUE_ANY.finditer(text):
        end = _due_end_at(text, hit.start())
        if end is not None and (best is None or end - hit.start() > best[1] - best[0]):
            best = (hit.start(), end)
    return best


# Every due phrase contains a digit or one of these. The union of the patterns costs tens of
# microseconds per sentence; these substring tests rule out most sentences for a fraction of that.
_DUE_WORDS = (
    "day", "hour", "minute", "week", "month", "tomorrow", "tonight", "morning", "afternoon", "evening",
    "noon", "midnight", "end of", "eod", "cob", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
    "sep", "oct", "nov", "dec", "asap", "soon", "right away", "immediately", "shortly", "next", "before",
    "prior", "o'clock",
)  # fmt: skip
_DIGITS = frozenset("0123456789")
# Due phrases are short: this many characters from a clause break are enough to tell if one opens it.
DUE_LOOKAHEAD_CHARS = 48


def _may_hold_due(text: str) -> bool:
    if not _DIGITS.isdisjoint(text):
        return True
    lower = text.lower()
    return any(word in lower for word in _DUE_WORDS)


def _due_starts_at(text: str, position: int) -> bool:
    """Whether a due phrase opens the text at `position` (", within 5 days" continues a promise)."""
    return _may_hold_due(text[position : position + DUE_LOOKAHEAD_CHARS]) and _due_end_at(text, position) is not None


def _due_end_at(text: str, position: int) -> int | None:
    """End of the longest due phrase starting exactly at `position`, or None."""
    ends = [m.end() for m in (pattern.match(text, position) for pattern in _DUE) if m is not None]
    return max(ends, default=None)
