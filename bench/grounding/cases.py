"""Benchmark cases for the grounding verifier, built from the shared real data.

Genuine quotes come from real text: TweetSumm's gold extractive spans (customer-care tweets) and
Harper Valley Bank segments, where each segment has a human transcript and the ASR engine's output
of the same audio, so quoting one against the other is real ASR noise. Fabrications are made
programmatically from genuine quotes (a changed number, a flipped negation, a swapped content word,
a sentence from another call...). Everything is seeded: the same data gives the same cases.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.schemas.extraction import ActionItem, EvidenceRef, Extraction, Owner, Statement
from app.schemas.transcript import Role, Utterance
from app.text.normalize import CRITICAL_KINDS, normalize
from bench.datasets import (
    SHARED_DATA_DIR,
    TWEETSUMM_ROLES,
    HarperValleySegment,
    read_harper_valley,
    read_tweetsumm,
)

# Expected outcomes. "grounded" accepts exact, normalized or fuzzy in the cited utterance.
GROUNDED = "grounded"

# Expected claim outcome: any of the unsupported_* reasons (a changed long number is an identifier).
UNSUPPORTED_DETAIL = "unsupported_*"

# Quotes shorter than this many words say too little to be evidence ("yes", "bye").
MIN_QUOTE_WORDS = 3


@dataclass(frozen=True)
class Case:
    source: str
    category: str
    transcript_id: str
    cited: int
    quote: str
    expected: str  # exact | normalized | fuzzy | relocated | ungrounded | grounded
    true_utterance: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class ClaimCase:
    """One claim resting on one genuine quote; `expected` is "grounded" or the claim's reason code.

    `owner` None makes it a summary statement, otherwise an action item with that owner.
    """

    source: str
    category: str
    transcript_id: str
    text: str
    owner: str | None
    cited: int
    quote: str
    expected: str

    def extraction(self) -> Extraction:
        """The claim as a provider would return it: a summary statement, or an action item when owned."""
        evidence = [EvidenceRef(utterance=self.cited, quote=self.quote)]
        if self.owner is None:
            return Extraction(summary=[Statement(text=self.text, evidence=evidence)])
        return Extraction(action_items=[ActionItem(text=self.text, owner=Owner(self.owner), evidence=evidence)])


@dataclass
class CaseSet:
    transcripts: dict[str, list[Utterance]] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    claim_cases: list[ClaimCase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- loading --------------------------------------------------------------------------------------


def load_tweetsumm(root: Path) -> list[tuple[str, list[Utterance], list[tuple[int, str]]]]:
    """(dialog id, utterances, unique gold extractive quotes as (utterance index, text)) per dialog."""
    dialogs = []
    for record in read_tweetsumm(root / "tweetsumm" / "tweetsumm_train_joined.jsonl"):
        turns = [turn for turn in record["turns"] if turn["text"].strip()]
        position_by_tweet = {turn["tweet_id"]: index for index, turn in enumerate(turns)}
        utterances = [
            Utterance(index=index, speaker=turn["speaker"], role=TWEETSUMM_ROLES[turn["speaker"]], text=turn["text"])
            for index, turn in enumerate(turns)
        ]
        quotes: dict[tuple[int, str], None] = {}
        for summary in record["extractive_summaries"]:
            for span in summary or []:
                index = position_by_tweet.get(span["tweet_id"])
                if index is None:
                    continue
                start, end = _repair_span(utterances[index].text, *span["char_span"])
                text = utterances[index].text[start:end].strip()
                if len(text.split()) >= MIN_QUOTE_WORDS:
                    quotes[(index, text)] = None
        if utterances:
            dialogs.append((record["conversation_id"], utterances, list(quotes)))
    return dialogs


def _repair_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Undo the 1-2 character shift some TweetSumm spans have (the offsets were computed on a slightly
    different copy of the tweet): move a span that starts inside a word back to the word's start, move
    its end back by as much, and then let it end at a word boundary."""
    shift = 0
    while start > 0 and not text[start - 1].isspace() and not text[start].isspace():
        start -= 1
        shift += 1
    end = max(end - shift, start + 1)
    while 0 < end < len(text) and not text[end - 1].isspace() and not text[end].isspace():
        end += 1
    return start, end


def load_harper_valley(root: Path) -> list[tuple[str, list[Utterance], list[Utterance]]]:
    """(call id, human-text utterances, ASR-text utterances) with segments aligned one to one."""
    calls = []
    for call in read_harper_valley(root / "harper_valley_bank"):
        # Only segments with both texts, so that the two lists stay aligned index for index.
        segments = [s for s in call.segments if s.human_transcript.strip() and s.transcript.strip()]
        human = [_utterance(index, segment, segment.human_transcript) for index, segment in enumerate(segments)]
        asr = [_utterance(index, segment, segment.transcript) for index, segment in enumerate(segments)]
        if human:
            calls.append((call.sid, human, asr))
    return calls


def _utterance(index: int, segment: HarperValleySegment, text: str) -> Utterance:
    return Utterance(index=index, speaker=segment.speaker_role, role=segment.role, text=text)


# --- generators -----------------------------------------------------------------------------------

SMALL_NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
TENS_WORDS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
              90: "ninety"}
NUMBER_WORD_RE = re.compile(
    r"\b(" + "|".join([*SMALL_NUMBER_WORDS[1:], *TENS_WORDS.values(), "hundred"]) + r")\b", re.IGNORECASE
)
DIGITS_RE = re.compile(r"(?<![\w@#/.:£€-])(\$?)(\d+)(?:\.(\d\d))?(?![\w/:'’%-]|\.\w|,\d| \d+/)")
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "june", "july", "august", "september", "october",
          "november", "december"]
RELATIVE = {"today": "tomorrow", "tomorrow": "today", "yesterday": "today", "tonight": "tomorrow"}

# Add a negation: the first of these that occurs gets its negative form.
NEGATE = [
    (r"\bwill\b", "won't"), (r"\bcan\b", "can't"), (r"\bis\b", "isn't"), (r"\bare\b", "aren't"),
    (r"\bwas\b", "wasn't"), (r"\bdo\b", "don't"), (r"\bdid\b", "didn't"), (r"\bhave\b", "haven't"),
    (r"\bhas\b", "hasn't"), (r"\bwould\b", "wouldn't"), (r"\bcould\b", "couldn't"), (r"\bshould\b", "shouldn't"),
]
# Remove one: the first that occurs loses its negation.
UNNEGATE = [
    (r"\bwon['’]t\b", "will"), (r"\bcan['’]t\b", "can"), (r"\bcannot\b", "can"), (r"\b(\w+)n['’]t\b", r"\1"),
    (r"\bnot\s+", ""), (r"\bnever\s+", ""), (r"\bno longer\s+", ""),
]
# Pairs a fabricating model plausibly confuses: same domain, different fact.
CONFUSABLE = {
    "debit": "credit", "credit": "debit", "checking": "savings", "savings": "checking",
    "deposit": "withdrawal", "withdrawal": "deposit", "transfer": "payment", "payment": "transfer",
    "cancel": "activate", "activate": "cancel", "refund": "charge", "charge": "refund",
    "email": "text", "phone": "laptop", "laptop": "phone", "increase": "decrease", "decrease": "increase",
    "approved": "denied", "denied": "approved", "upgrade": "downgrade", "replace": "repair",
    "iphone": "ipad", "ipad": "iphone", "order": "subscription", "bill": "statement", "sent": "received",
    "received": "sent", "delivered": "cancelled", "lost": "stolen", "stolen": "lost", "new": "old",
    "home": "work", "morning": "evening", "evening": "morning", "flight": "hotel", "bag": "seat",
    "account": "card", "card": "account", "password": "username", "app": "website", "store": "website",
    "balance": "limit", "address": "number", "mother": "father", "wife": "husband", "husband": "wife",
}
FUNCTION_LIKE = frozenset(
    [
        "a", "an", "the", "of", "to", "for", "in", "on", "at", "by", "with", "from", "into", "about", "as",
        "and", "or", "but", "so", "if", "then", "than", "that", "this", "these", "those", "it", "its",
        "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "have", "has", "had",
        "there", "here", "just", "also", "really", "very", "well", "oh", "okay", "yes", "yeah", "please",
        "i", "you", "we", "they", "he", "she", "me", "us", "them", "him", "her", "my", "your", "our",
        "their", "his", "what", "when", "where", "which", "who", "how", "can", "could", "will", "would",
        "should", "may", "might", "must", "not", "no", "never", "hi", "hello", "thanks", "thank", "get",
        "got", "let", "know", "need", "want", "like", "see", "make", "take", "go", "going", "sure",
        "alright", "right", "ok", "um", "uh", "so",
    ]
)


PROTECTED_RE = re.compile(r"https?://\S+|&\w+;|\S+@\S+")


def _outside_protected(text: str, rewrite: Callable[[str], str]) -> str:
    """Apply `rewrite` to the text between URLs, e-mail addresses and HTML entities."""
    pieces: list[str] = []
    position = 0
    for match in PROTECTED_RE.finditer(text):
        pieces.append(rewrite(text[position : match.start()]))
        pieces.append(match.group())
        position = match.end()
    pieces.append(rewrite(text[position:]))
    return "".join(pieces)


def _variants(quote: str) -> Iterator[tuple[str, str]]:
    """Normalization-only rewrites of a genuine quote, each labelled."""
    def strip_punctuation(part: str) -> str:
        part = re.sub(r"\b(?:[A-Za-z]\.){2,}", lambda m: m.group().replace(".", ""), part.lower())
        # Punctuation between words becomes a space (as in "deliver.its"), never a join.
        return re.sub(r"(?<!\d)[.,!?;:\"“”()](?!\d)", " ", part)

    lowered = _outside_protected(quote, strip_punctuation)
    yield "lowercase_nopunct", re.sub(r"\s+", " ", lowered).strip()
    if "'" in quote or "’" in quote:
        yield "apostrophe", quote.replace("’", "\x00").replace("'", "’").replace("\x00", "'")
    expanded = _expand_contractions(quote)
    if expanded != quote:
        yield "contractions", expanded
    words = quote.split(" ")
    if len(words) >= 3:
        yield "filler", " ".join([words[0], "um,", *words[1:]])
        # A repeated digit word changes a number read out ("zero zero five" is not "zero five").
        alphabetic = [
            i
            for i, word in enumerate(words)
            if word.isalpha() and word.lower() not in SMALL_NUMBER_WORDS and word.lower() not in TENS_WORDS.values()
        ]
        if alphabetic:
            i = alphabetic[0]
            yield "stutter", " ".join([*words[:i], words[i], *words[i:]])
    spoken = _digits_to_words(quote)
    if spoken != quote:
        yield "numbers_spoken", spoken
    written = _words_to_digits(quote)
    if written != quote:
        yield "numbers_written", written
    yield "whitespace", "  ".join(quote.split(" ")) + " "


CONTRACTION_EXPANSIONS = [
    (r"\b([Ii])['’]ll\b", r"\1 will"), (r"\b([Ww])on['’]t\b", r"\1ill not"), (r"\b([Cc])an['’]t\b", r"\1an not"),
    (r"\b(?!ain['’]t)(\w+)n['’]t\b", r"\1 not"), (r"\b([Ii])['’]m\b", r"\1 am"), (r"\b(\w+)['’]re\b", r"\1 are"),
    (r"\b(\w+)['’]ve\b", r"\1 have"), (r"\b([Ii]t|[Tt]hat|[Ww]hat)['’]s\b", r"\1 is"),
    (r"\b(\w+)['’]ll\b", r"\1 will"), (r"\b([Ll]et)['’]s\b", r"\1 us"),
]


def _expand_contractions(text: str) -> str:
    for pattern, replacement in CONTRACTION_EXPANSIONS:
        text = re.sub(pattern, replacement, text)
    return text


def _spell(number: int) -> str:
    if number < 20:
        return SMALL_NUMBER_WORDS[number]
    if number < 100:
        tens, units = divmod(number, 10)
        return TENS_WORDS[tens * 10] + (f" {SMALL_NUMBER_WORDS[units]}" if units else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{SMALL_NUMBER_WORDS[hundreds]} hundred" + (f" and {_spell(rest)}" if rest else "")
    return str(number)


def _digits_to_words(text: str) -> str:
    def spell(match: re.Match[str]) -> str:
        dollar, digits, cents = match.groups()
        number = int(digits)
        if number >= 1000 or cents or (len(digits) > 1 and digits.startswith("0")):
            return match.group()
        return _spell(number) + (" dollars" if dollar else "")

    text = re.sub(r"(?<![\w.])(\d{1,3})%(?!\w)", lambda m: f"{m.group(1)} percent", text)
    return _outside_protected(text, lambda part: DIGITS_RE.sub(spell, part))


SPOKEN_NUMBER_RE = re.compile(
    r"\b(?:(?:a|one|two|three|four|five|six|seven|eight|nine) hundred(?: and)? )?"
    r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
    r"(?: (?:one|two|three|four|five|six|seven|eight|nine))?"
    r"|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
    r"|two|three|four|five|six|seven|eight|nine)\b"
)


SPOKEN_CLOCK_RE = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve) "
    r"(fifteen|thirty|forty five|forty|forty five|fifty|twenty) (?=(?:a m|p m|am|pm)\b)"
)
MINUTES = {"fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty five": 45, "fifty": 50}


def _words_to_digits(text: str) -> str:
    """Write spoken numbers as digits, the way a person would: 'nine thirty a m' -> '9:30 a m'."""
    hours = {word: position for position, word in enumerate(SMALL_NUMBER_WORDS)}
    text = SPOKEN_CLOCK_RE.sub(lambda m: f"{hours[m.group(1)]}:{MINUTES[m.group(2)]:02d} ", text)

    def write(match: re.Match[str]) -> str:
        tokens = normalize(match.group()).tokens
        return tokens[0] if len(tokens) == 1 and tokens[0].isdigit() else match.group()

    return SPOKEN_NUMBER_RE.sub(write, text)


def _swap_number(quote: str, rng: random.Random) -> tuple[str, str] | None:
    """Change one number (digits or spoken); 'amount' when money is involved, else 'number'."""
    digit_matches = [m for m in DIGITS_RE.finditer(quote) if m.group(2)]
    if digit_matches:
        match = rng.choice(digit_matches)
        value = int(match.group(2))
        new = value + rng.choice([1, 2, 5, 10]) if value < 1000 else value + 1
        start, end = match.span(2)
        changed = quote[:start] + str(new) + quote[end:]
        is_amount = bool(match.group(1)) or bool(re.match(r"\s*(dollars?|bucks|usd|%|percent)", quote[end:]))
        return changed, "amount" if is_amount else "number"
    word_matches = list(NUMBER_WORD_RE.finditer(quote))
    if word_matches:
        match = rng.choice([m for m in word_matches if m.group().lower() != "hundred"] or word_matches)
        word = match.group().lower()
        pool = [w for w in (*SMALL_NUMBER_WORDS[1:10], *TENS_WORDS.values()) if w != word]
        if word in TENS_WORDS.values():
            pool = [w for w in TENS_WORDS.values() if w != word]
        elif word == "hundred":
            pool = ["thousand"]
        replacement = rng.choice(pool)
        changed = quote[: match.start()] + replacement + quote[match.end() :]
        is_amount = bool(re.search(r"\b(dollars?|bucks|percent)\b", quote))
        return changed, "amount" if is_amount else "number"
    return None


def _flip_negation(quote: str) -> str | None:
    for pattern, replacement in UNNEGATE:
        changed, count = re.subn(pattern, replacement, quote, count=1, flags=re.IGNORECASE)
        if count:
            return changed
    for pattern, replacement in NEGATE:
        changed, count = re.subn(pattern, replacement, quote, count=1, flags=re.IGNORECASE)
        if count:
            return changed
    return None


def _swap_date(quote: str, rng: random.Random) -> str | None:
    lowered = quote.lower()
    for names in (WEEKDAYS, MONTHS):
        for name in names:
            match = re.search(rf"\b{name}\b", lowered)
            if match and not (name in ("may", "march") and not re.search(r"\d", quote)):
                replacement = rng.choice([other for other in names if other != name])
                original = quote[match.start() : match.end()]
                if original[0].isupper():
                    replacement = replacement.capitalize()
                return quote[: match.start()] + replacement + quote[match.end() :]
    for name, replacement in RELATIVE.items():
        match = re.search(rf"\b{name}\b", lowered)
        if match:
            return quote[: match.start()] + replacement + quote[match.end() :]
    match = re.search(r"\b(\d{1,2})/(\d{1,2})\b", quote)
    if match:
        day = int(match.group(2)) % 28 + 1
        return quote[: match.start(2)] + str(day) + quote[match.end(2) :]
    return None


ID_RE = re.compile(r"(?:[@#][A-Za-z]*\d[\w-]*|\b[A-Za-z]*\d[A-Za-z\d-]{4,}\b|https?://\S+)")


def _swap_id(quote: str, rng: random.Random) -> str | None:
    matches = list(ID_RE.finditer(quote))
    if not matches:
        return None
    match = rng.choice(matches)
    token = match.group()
    positions = [i for i, character in enumerate(token) if character.isalnum() and i > 0]
    if not positions:
        return None
    position = rng.choice(positions)
    character = token[position]
    if character.isdigit():
        replacement = str((int(character) + rng.randint(1, 9)) % 10)
    else:
        replacement = chr((ord(character.lower()) - 97 + rng.randint(1, 25)) % 26 + 97)
    return quote[: match.start() + position] + replacement + quote[match.start() + position + 1 :]


WORD_RE = re.compile(r"[A-Za-z]+")


def _content_words(quote: str) -> list[re.Match[str]]:
    return [
        match
        for match in WORD_RE.finditer(quote)
        if len(match.group()) >= 3
        and match.group().lower() not in FUNCTION_LIKE
        and match.group().lower() not in SMALL_NUMBER_WORDS
        and match.group().lower() not in TENS_WORDS.values()
        and match.group().lower() not in WEEKDAYS
        and match.group().lower() not in MONTHS
        and not (match.start() > 0 and quote[match.start() - 1] in "@#/.")
    ]


def _swap_content(quote: str, vocabulary: list[str], rng: random.Random) -> tuple[str, str] | None:
    """Replace one content word: with its confusable partner if it has one, else a random word."""
    candidates = _content_words(quote)
    if not candidates:
        return None
    confusable = [m for m in candidates if m.group().lower() in CONFUSABLE]
    if confusable:
        match = rng.choice(confusable)
        replacement = CONFUSABLE[match.group().lower()]
        kind = "confusable"
    else:
        match = rng.choice(candidates)
        replacement = match.group().lower()
        while replacement == match.group().lower():
            replacement = rng.choice(vocabulary)
        kind = "random"
    if match.group()[0].isupper():
        replacement = replacement.capitalize()
    return quote[: match.start()] + replacement + quote[match.end() :], kind


def _has_critical_difference(left: str, right: str) -> bool:
    def values(text: str) -> list[str]:
        normalized = normalize(text)
        return sorted(
            normalized.tokens[i] for i, kind in enumerate(normalized.kinds) if kind in CRITICAL_KINDS
        )

    return values(left) != values(right)


# --- assembling -----------------------------------------------------------------------------------


def build_cases(data_dir: Path = SHARED_DATA_DIR, seed: int = 20240601) -> CaseSet:
    rng = random.Random(seed)
    cases = CaseSet()
    tweetsumm = load_tweetsumm(data_dir)
    harper = load_harper_valley(data_dir)

    vocabulary = sorted(
        {
            word.lower()
            for _, utterances, _ in tweetsumm
            for utterance in utterances
            for word in WORD_RE.findall(utterance.text)
            if len(word) >= 4 and word.lower() not in FUNCTION_LIKE
        }
    )

    # Genuine quotes per source: (source, transcript id, utterance index, quote).
    genuine: list[tuple[str, str, int, str]] = []
    for dialog_id, utterances, quotes in tweetsumm:
        cases.transcripts[f"ts:{dialog_id}"] = utterances
        genuine.extend(("tweetsumm", f"ts:{dialog_id}", index, text) for index, text in quotes)
    for call_id, human, asr in harper:
        cases.transcripts[f"hvb:{call_id}:human"] = human
        cases.transcripts[f"hvb:{call_id}:asr"] = asr
        for index, utterance in enumerate(human):
            if len(utterance.text.split()) >= MIN_QUOTE_WORDS and "<unk>" not in utterance.text:
                genuine.append(("harper_valley", f"hvb:{call_id}:human", index, utterance.text))
    cases.notes.append(
        f"{len(tweetsumm)} TweetSumm dialogs, {len(harper)} Harper Valley calls, {len(genuine)} genuine quotes"
    )

    said_by_transcript: dict[str, str] = {}

    def said(transcript_id: str, text: str) -> bool:
        """Whether the call really says `text` (normalized) somewhere: then it is no fabrication."""
        if transcript_id not in said_by_transcript:
            said_by_transcript[transcript_id] = " | ".join(
                normalize(u.text).joined for u in cases.transcripts[transcript_id]
            )
        return f" {normalize(text).joined} " in f" {said_by_transcript[transcript_id]} "

    skipped_said = 0

    def add(case: Case) -> None:
        nonlocal skipped_said
        if case.expected == "ungrounded" and said(case.transcript_id, case.quote):
            skipped_said += 1
            return
        cases.cases.append(case)

    for source, transcript_id, index, quote in genuine:
        utterances = cases.transcripts[transcript_id]
        add(Case(source, "genuine_verbatim", transcript_id, index, quote, "exact", index))
        for label, variant in _variants(quote):
            if variant.strip() == quote:
                continue
            add(Case(source, "genuine_normalized", transcript_id, index, variant, "normalized", index, label))
        if len(utterances) > 1 and not _occurs_elsewhere(utterances, index, quote):
            offset = rng.choice([d for d in (-3, -2, -1, 1, 2, 3) if 0 <= index + d < len(utterances)])
            add(Case(source, "genuine_wrong_index", transcript_id, index + offset, quote, "relocated", index))

        swapped = _swap_number(quote, rng)
        if swapped is not None:
            add(Case(source, f"fab_{swapped[1]}", transcript_id, index, swapped[0], "ungrounded", index))
            # The same change in the claim, over the genuine quote: the claim states what was not said.
            cases.claim_cases.append(
                ClaimCase(source, "claim_number_swap", transcript_id, swapped[0], None, index, quote,
                          UNSUPPORTED_DETAIL)
            )
        flipped = _flip_negation(quote)
        if flipped is not None and flipped != quote:
            add(Case(source, "fab_negation", transcript_id, index, flipped, "ungrounded", index))
        dated = _swap_date(quote, rng)
        if dated is not None and dated != quote:
            add(Case(source, "fab_date", transcript_id, index, dated, "ungrounded", index))
        identified = _swap_id(quote, rng)
        if identified is not None and identified != quote:
            add(Case(source, "fab_id", transcript_id, index, identified, "ungrounded", index))
        content = _swap_content(quote, vocabulary, rng)
        if content is not None and content[0] != quote:
            add(Case(source, "fab_content", transcript_id, index, content[0], "ungrounded", index, content[1]))

    cases.notes.append(f"fabrications skipped because the call really says them: {skipped_said}")
    _add_foreign_sentences(cases, genuine, rng)
    _add_asr_cases(cases, harper)
    _add_owner_cases(cases, genuine, rng)
    _add_speaker_cases(cases, genuine)
    return cases


def _occurs_elsewhere(utterances: list[Utterance], index: int, quote: str) -> bool:
    target = normalize(quote).joined
    return any(
        position != index and f" {target} " in f" {normalize(utterance.text).joined} "
        for position, utterance in enumerate(utterances)
    )


def _add_foreign_sentences(cases: CaseSet, genuine: list[tuple[str, str, int, str]], rng: random.Random) -> None:
    """A genuine sentence from another call, cited in this one. Skipped when this call says it too."""
    by_source: dict[str, list[tuple[str, str, int, str]]] = {}
    for item in genuine:
        by_source.setdefault(item[0], []).append(item)
    skipped = 0
    for source, items in by_source.items():
        transcript_ids = sorted({item[1] for item in items})
        for transcript_id in transcript_ids:
            utterances = cases.transcripts[transcript_id]
            vocabularies = [_content_vocabulary(u.text) for u in utterances]
            for _ in range(3):
                donor = rng.choice(items)
                if donor[1] == transcript_id or len(donor[3].split()) < 5:
                    continue
                # Scripted calls share sentences ("thank you for calling"): a donor whose content words
                # all occur together in one utterance of this call is something this call says too.
                donor_words = _content_vocabulary(donor[3])
                if any(donor_words <= vocabulary for vocabulary in vocabularies):
                    skipped += 1
                    continue
                cited = rng.randrange(len(utterances))
                cases.cases.append(Case(source, "fab_foreign_sentence", transcript_id, cited, donor[3], "ungrounded"))
    cases.notes.append(f"foreign sentences skipped because the target call says them too: {skipped}")


def _content_vocabulary(text: str) -> set[str]:
    """Content words of a text, crudely singular ("accounts" and "account" are one word here)."""
    return {
        word.removesuffix("s")
        for word in (match.lower() for match in WORD_RE.findall(text))
        if len(word) >= 3 and word not in FUNCTION_LIKE
    }


def _add_asr_cases(cases: CaseSet, harper: list[tuple[str, list[Utterance], list[Utterance]]]) -> None:
    """Quote the human transcript against the ASR text and the ASR text against the human one."""
    for call_id, human, asr in harper:
        for index, (human_utterance, asr_utterance) in enumerate(zip(human, asr, strict=True)):
            for quote_side, target_side, direction in (
                (human_utterance, asr_utterance, "human_vs_asr"),
                (asr_utterance, human_utterance, "asr_vs_human"),
            ):
                quote = quote_side.text
                if len(quote.split()) < MIN_QUOTE_WORDS or "<unk>" in quote:
                    continue
                transcript_id = f"hvb:{call_id}:{'asr' if direction == 'human_vs_asr' else 'human'}"
                if _has_critical_difference(quote, target_side.text):
                    category, expected = "asr_critical_differs", "ungrounded"
                elif quote == target_side.text:
                    category, expected = "asr_identical", "exact"
                else:
                    category, expected = "asr_noise", GROUNDED
                cases.cases.append(
                    Case("harper_valley", category, transcript_id, index, quote, expected, index, direction)
                )


def _role_pools(
    cases: CaseSet, genuine: list[tuple[str, str, int, str]], roles: tuple[Role, ...]
) -> Iterator[tuple[str, Role, list[tuple[str, str, int, str]]]]:
    """Per transcript (in id order), then per role (in the given order): its genuine quotes said in that role."""
    picked: dict[str, list[tuple[str, str, int, str]]] = {}
    for item in genuine:
        picked.setdefault(item[1], []).append(item)
    for transcript_id, items in sorted(picked.items()):
        utterances = cases.transcripts[transcript_id]
        for role in roles:
            pool = [item for item in items if utterances[item[2]].role is role]
            if pool:
                yield transcript_id, role, pool


def _add_owner_cases(cases: CaseSet, genuine: list[tuple[str, str, int, str]], rng: random.Random) -> None:
    """Agent-owned action items resting on customer words (mismatch) or on agent words (control). The control
    assumes the speaker owns what they say: where the agent's words ask the customer to act ("Please DM us your
    account number"), the verifier's `owner_mismatch` is right and the label is not (docs/benchmarks.md)."""
    outcomes = {Role.customer: ("owner_mismatch", "owner_swap"), Role.agent: ("grounded", "owner_control")}
    for transcript_id, role, pool in _role_pools(cases, genuine, (Role.customer, Role.agent)):
        expected, category = outcomes[role]
        source, _, index, quote = rng.choice(pool)
        # The claim restates the quote, so its own details are supported by construction.
        cases.claim_cases.append(ClaimCase(source, category, transcript_id, quote, "agent", index, quote, expected))


def _add_speaker_cases(cases: CaseSet, genuine: list[tuple[str, str, int, str]]) -> None:
    """"The customer said ..." resting on the agent's words (mismatch) or on the customer's (control).

    The quote is the middle one of each side's genuine quotes: no random draw, so the cases built before
    these stay exactly as they were.
    """
    outcomes = {Role.agent: ("speaker_mismatch", "speaker_swap"), Role.customer: ("grounded", "speaker_control")}
    for transcript_id, role, pool in _role_pools(cases, genuine, (Role.agent, Role.customer)):
        expected, category = outcomes[role]
        source, _, index, quote = pool[len(pool) // 2]
        text = f"The customer said: {quote}"
        cases.claim_cases.append(ClaimCase(source, category, transcript_id, text, None, index, quote, expected))


CaseFilter = Callable[[Case], bool]
