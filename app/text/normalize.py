"""Speech-aware text normalization that remembers where every token came from.

Quotes and utterances are compared as sequences of *normalized tokens*: lowercased, punctuation
dropped, fillers and non-speech markers removed, stutters collapsed, contractions expanded, spoken
numbers turned into digits. Each normalized token keeps the character interval of the original text
it was made from, so a match found on normalized tokens maps back to a slice of the original text.

Each token also carries a `TokenKind`. The *critical* kinds (numbers, amounts, percentages, times,
dates, identifiers, negations) are the ones where a one-token difference changes what was said
("$30" vs "$40", "will" vs "won't"), so the aligner never lets a fuzzy score paper over them.
"""

from __future__ import annotations

import functools
import operator
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import accumulate

from app.text.lexicon import (
    AMBIGUOUS_MONTHS,
    CLAUSE_NEGATORS,
    CLOCK_PREPOSITIONS,
    CRITICAL_KINDS,
    CURRENCY_SYMBOLS,
    CURRENCY_WORDS,
    FILLERS,
    MONTH_FULL_NAMES,
    MONTHS,
    NEGATIONS,
    NON_SPEECH_MARKERS,
    NUMBER_WORDS,
    ORDINAL_PERIODS,
    ORDINAL_SUFFIXES,
    ORDINALS,
    RELATIVE_DAYS,
    SCALES,
    TEENS,
    TENS,
    TIME_MARKERS,
    TIME_UNIT_WORDS,
    UNITS,
    WEEKDAYS,
    TokenKind,
    alternation,
)

__all__ = ["CRITICAL_KINDS", "NEGATION_VALUE", "NormalizedText", "TokenKind", "joined_offsets", "normalize"]

# The value every negation contributes to a critical-token comparison: "never" and "not" count alike,
# what matters is that the quote and the transcript are both negative (or both not).
NEGATION_VALUE = "<neg>"

# --- spellings ----------------------------------------------------------------------------------

NON_SPEECH_RE = re.compile(r"[\[<(](?:" + "|".join(NON_SPEECH_MARKERS) + r")[\]>)]", re.IGNORECASE)

# Contractions written with an apostrophe (after the apostrophe has been made straight).
APOSTROPHE_CONTRACTIONS: dict[str, tuple[str, ...]] = {
    "won't": ("will", "not"),
    "can't": ("can", "not"),
    "shan't": ("shall", "not"),
    "ain't": ("am", "not"),
    "let's": ("let", "us"),
    "o'clock": ("oclock",),
    "y'all": ("you", "all"),
    "ma'am": ("maam",),
}
# Suffix contractions, applied when the whole word is not in the table above.
SUFFIX_CONTRACTIONS: dict[str, tuple[str, ...]] = {
    "n't": ("not",),
    "'ll": ("will",),
    "'re": ("are",),
    "'ve": ("have",),
    "'m": ("am",),
    "'d": ("would",),
}
# "'s" is "is" only after these; elsewhere it is a possessive (or "has") and the apostrophe just goes.
IS_CONTRACTION_HOSTS = frozenset(
    {"it", "that", "there", "here", "what", "where", "who", "how", "he", "she", "this", "everything"}
)
# Contractions as unpunctuated ASR text writes them. Only spellings that are not English words
# themselves: "ill", "id", "its", "were", "well", "hell", "wed", "lets" are left alone.
BARE_CONTRACTIONS: dict[str, tuple[str, ...]] = {
    "dont": ("do", "not"),
    "doesnt": ("does", "not"),
    "didnt": ("did", "not"),
    "cant": ("can", "not"),
    "cannot": ("can", "not"),
    "wont": ("will", "not"),
    "isnt": ("is", "not"),
    "arent": ("are", "not"),
    "wasnt": ("was", "not"),
    "werent": ("were", "not"),
    "havent": ("have", "not"),
    "hasnt": ("has", "not"),
    "hadnt": ("had", "not"),
    "wouldnt": ("would", "not"),
    "couldnt": ("could", "not"),
    "shouldnt": ("should", "not"),
    "im": ("i", "am"),
    "ive": ("i", "have"),
    "youre": ("you", "are"),
    "youve": ("you", "have"),
    "youll": ("you", "will"),
    "theyre": ("they", "are"),
    "theyve": ("they", "have"),
    "weve": ("we", "have"),
    "thats": ("that", "is"),
    "whats": ("what", "is"),
    "theres": ("there", "is"),
    "oclock": ("oclock",),
    # Spoken reductions, as transcribers and ASR engines write them.
    "gonna": ("going", "to"),
    "wanna": ("want", "to"),
    "gotta": ("got", "to"),
    "kinda": ("kind", "of"),
    "ya": ("you",),
}
# The bare contractions that hold a "not" ("cant", "dont", "havent"): negations as ASR and chat text write them.
BARE_NEGATIONS = frozenset(word for word, expansion in BARE_CONTRACTIONS.items() if "not" in expansion)


def negates_clause(word: str) -> bool:
    """Whether a lowercased word denies what follows it in its clause: "not", "never", "cannot", a
    contraction in "n't" with any apostrophe, or one written without it ("cant", "doesnt")."""
    return word in CLAUSE_NEGATORS or word in BARE_NEGATIONS or word.endswith(("n't", "n’t", "nʼt"))


# Spelling variants that mean the same thing.
CANONICAL_WORDS: dict[str, str] = {
    "ok": "okay",
    "dollar": "dollars",
    "bucks": "dollars",
    "buck": "dollars",
    "usd": "dollars",
    "cent": "cents",
    "euro": "euros",
    "eur": "euros",
    "pound": "pounds",
    "gbp": "pounds",
    "pct": "percent",
    "p.m.": "pm",
    "p.m": "pm",
    "a.m.": "am",
    "a.m": "am",
}
# Words after a bare "one" that make it a quantity rather than a pronoun ("one dollar" vs "a new one").
QUANTITY_UNITS = frozenset(
    {
        *CURRENCY_WORDS,
        "percent",
        *TIME_MARKERS,
        "minute",
        "minutes",
        "hour",
        "hours",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "business",
        "time",
        "times",
    }
)

# One pass over the raw text finds the tokens; punctuation between them is skipped. The leading
# lookahead lists every character a token can start with: Python's regex engine would otherwise try
# all eight alternatives at each space and punctuation mark between tokens (a third of the scan time).
RAW_TOKEN_RE = re.compile(
    r"""
    (?=[\w$€£@#.+-])
    (?:
      (?P<plain>[^\W\d_]+(?![\w@'’‘`:~-]|\.\w))
    | (?P<url>https?://\S+|www\.\S+)
    | (?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
    | (?P<ampm>\b[ap]\.m\.?(?!\w))
    | (?P<acronym>\b[^\W\d_](?:\.[^\W\d_])+\.?(?!\w))
    | (?P<range>[$€£]?\d+(?:[.,]\d+)*\s?[-–]\s?[$€£]?\d+(?:[.,]\d+)*(?![\w:/-]))
    | (?P<num>[$€£]?\d+(?:[,.:/-]\d+)*(?:%|[^\W\d_]+)?(?:-[^\W_]+)*)
    | (?P<word>[@#]?[^\W_]+(?:['’‘`][^\W_]+)*(?:-[^\W_]+(?:['’][^\W_]+)*)*)
    )
    """,
    re.VERBOSE,
)
# U+02BC, the modifier letter apostrophe, is a letter to the regex engine: "canʼt" would be one word.
APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "ʼ": "'"})
GROUPED_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
PLAIN_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
TIME_RE = re.compile(r"\d{1,2}:\d{2}")
RANGE_DASH_RE = re.compile(r"\s?[-–]\s?")
LETTERS_AFTER_HYPHEN_RE = re.compile(r"-[^\W\d_]")
NUMBER_SUFFIX_RE = re.compile(r"(%|[^\W\d_]+)$")
DATE_RE = re.compile(r"\d{1,4}[/-]\d{1,2}(?:[/-]\d{1,4})?")
# "6-8" before a unit glued to it ("6-8weeks"): a range, as "6-8 weeks" is.
DIGIT_RANGE_RE = re.compile(r"\d+(?:\.\d+)?[-–]\d+(?:\.\d+)?")
# Four digits a time of day may be written as after "at", "by", "from", "until" or "till" ("at 1430"): hours
# 00-23, minutes 00-59.
CLOCK_DIGITS_RE = re.compile(r"(?:[01]\d|2[0-3])[0-5]\d")
# Hours 19 and 20 begin a year as often ("until 1930", "by 2022", "at 2021 prices"): such digits are a time
# only after "at" and on a quarter hour ("at 1930", "at 2000", where a year would be 1930 or 2000), or with
# "hours" after them, as a 24-hour clock is said ("until 1930 hours").
YEAR_LIKE_HOURS = frozenset({"19", "20"})
QUARTER_HOURS = frozenset({"00", "15", "30", "45"})
CLOCK_HOURS_WORD_RE = re.compile(r"\s+(hours|hrs)\b", re.IGNORECASE)
# The same "hours" glued to the four digits ("at 0800hrs").
CLOCK_GLUED_HOURS_RE = re.compile(r"(\d{4})(?:hours|hrs)", re.IGNORECASE)
# "am" or "pm" said right after a time written as digits ("14:30 pm", "0800 a.m."): the time already has its
# half of the day, and a 24-hour reading must not add another.
MERIDIEM_AFTER_RE = re.compile(r"\s*([ap])\.?\s?m\b", re.IGNORECASE)
# What follows four such digits when they are not a time: more of a number, in digits or words (a phone
# number: "from 0906 706 0010", "from 0906 seven hundred and six"), or a currency or "percent" ("at 1500
# dollars").
_AMOUNT_UNITS = frozenset({*CURRENCY_WORDS, "percent"})
_NOT_CLOCK_WORDS = frozenset(
    {*NUMBER_WORDS, "oh", *_AMOUNT_UNITS, *(word for word, unit in CANONICAL_WORDS.items() if unit in _AMOUNT_UNITS)}
)
NOT_CLOCK_AFTER_RE = re.compile(rf"\s*(?:[\d$€£%]|{alternation(_NOT_CLOCK_WORDS)}\b)", re.IGNORECASE)
# Single digits said (or written) one after another join into one number from this many on: "four one
# four eight eight" is a number read out, while "one one" or "two two" is more likely a stutter.
MIN_DIGIT_RUN = 3
# Digits written with a leading zero, as many as a run of spoken digits needs (MIN_DIGIT_RUN) and not all
# zeros: "05418" keeps its zero, as "zero five four one eight" does ("05" and "000" are 5 and 0).
LEADING_ZERO_DIGITS_RE = re.compile(r"0(?=\d{2})\d*[1-9]\d*")
# A run of digits this long reads as an identifier (account, order, case number), not a quantity.
MIN_ID_DIGITS = 5


@dataclass(slots=True)
class _Piece:
    """A normalized token under construction: text, kind and the original interval it covers."""

    text: str
    start: int
    end: int
    kind: TokenKind = TokenKind.word
    # Set on spoken number words so the composition pass can combine "twenty" "five".
    spoken_number: bool = False
    # Set on a digit ordinal ("3rd") or a spoken ordinal that may become a date number.
    ordinal: int | None = None
    # The original text continued with a hyphen right after this piece ("wh- what").
    cut_off: bool = False
    # Built from spoken number words ("twenty five"), as opposed to digits written in the text.
    from_words: bool = False
    # Where the text between the previous source word and this one begins: a repeat is a stutter
    # only across spaces, commas or dashes ("I, I will"), not across a slash ("debit/debit").
    gap_start: int = 0


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """Normalized tokens of one text, each with the [start, end) interval of the original it covers."""

    tokens: tuple[str, ...]
    kinds: tuple[TokenKind, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    joined: str = field(repr=False)
    # Position of each token inside `joined`: a match found in `joined` maps back through it.
    joined_offsets: tuple[int, ...] = field(repr=False)
    # `critical_values()` of the whole text, worked out on first use: a text is normalized once per
    # process (see `normalize`) but its critical values are asked for by every claim that rests on it.
    _critical: tuple[tuple[TokenKind, str], ...] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(
        cls, tokens: tuple[str, ...], kinds: Sequence[TokenKind], starts: Sequence[int], ends: Sequence[int]
    ) -> NormalizedText:
        """Tokens with their kinds and original intervals; the joined form is derived from the tokens."""
        return cls(
            tokens=tokens,
            kinds=tuple(kinds),
            starts=tuple(starts),
            ends=tuple(ends),
            joined=" ".join(tokens),
            joined_offsets=joined_offsets(tokens),
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def critical_values(self, first: int = 0, last: int | None = None) -> tuple[tuple[TokenKind, str], ...]:
        """The critical tokens in tokens[first:last], as (kind, comparable value) in order."""
        if first == 0 and last is None:
            cached = self._critical
            if cached is None:
                cached = self._critical_between(0, len(self.tokens))
                object.__setattr__(self, "_critical", cached)
            return cached
        return self._critical_between(first, len(self.tokens) if last is None else last)

    def _critical_between(self, first: int, stop: int) -> tuple[tuple[TokenKind, str], ...]:
        # Every kind but `word` is critical (CRITICAL_KINDS; tests/text/test_normalize.py holds it to
        # that), so "critical" is tested by identity: a set lookup would hash an Enum member in Python.
        kinds = self.kinds[first:stop]
        word = TokenKind.word
        if kinds.count(word) == len(kinds):  # most texts: words only
            return ()
        negation = TokenKind.negation
        tokens = self.tokens
        return tuple(
            [
                (kind, NEGATION_VALUE if kind is negation else tokens[position])
                for position, kind in enumerate(kinds, first)
                if kind is not word
            ]
        )

    def find(self, needle: NormalizedText, begin: int = 0) -> int | None:
        """Index of the first token where `needle`'s tokens occur contiguously (from `begin`), or None."""
        if not needle.tokens:
            return None
        if begin >= len(self.tokens):
            return None
        start_char = self.joined_offsets[begin]
        haystack = f" {self.joined} "
        target = f" {needle.joined} "
        found = haystack.find(target, start_char)
        if found < 0:
            return None
        return bisect_left(self.joined_offsets, found)


# Characters that show nothing: zero-width spaces and joiners, the soft hyphen, bidirectional controls, the
# byte-order mark. "n\u200bot" reads as "not" on a screen and as two other words to the tokenizer.
INVISIBLE_CHARACTERS = "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"  # a [class]
_INVISIBLE = re.compile(f"[{INVISIBLE_CHARACTERS}]")


_WORD_CHARS = re.compile(r"[^\W\d_]+")


def mixes_scripts(text: str) -> bool:
    """Whether a word of `text` mixes Latin letters with look-alikes from another alphabet ("n\u043et" with
    a Cyrillic о): never a word anyone wrote, always one made to read as what its letters are not. Letters
    that look like none ("500\u03bcg", "10k\u03a9") are units, not disguises."""
    for word in _WORD_CHARS.findall(text):
        if word.isascii() or not any(character in _LATIN_LOOKALIKES for character in word):
            continue
        if any("LATIN" in unicodedata.name(character, "") for character in word):
            return True
    return False


# Cyrillic and Greek letters drawn like Latin ones.
_LATIN_LOOKALIKES = frozenset(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u051b\u051d\u04bb\u0410\u0412"
    "\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0406\u0408\u0405"
    "\u03bf\u03b1\u03b9\u03ba\u03bd\u03c1\u03c4\u03c5\u03c7\u0391\u0392\u0395\u0396\u0397\u0399"
    "\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7"
)


def visible_text(text: str) -> str:
    """`text` as a reader sees it: without the characters that show nothing. For texts whose offsets do not
    matter (a claim, a due phrase); a transcript keeps every character its offsets count."""
    return _INVISIBLE.sub("", text)


# Within one call the same statement is normalized by de-duplication (twice), verification and the case
# note; the result is immutable, so those calls share it. Bounded: a worker sees endless distinct texts.
@functools.lru_cache(maxsize=4096)
def normalize(text: str) -> NormalizedText:
    """Normalize `text` into comparable tokens that map back to intervals of `text`."""
    rows, flags = _raw_rows(text)
    texts = [row[0] for row in rows]
    repeats = _may_repeat(texts, flags)
    if repeats or flags & (_HAS_NUMBER | _HAS_LETTER_M):
        # The passes that merge, split or drop tokens work on mutable pieces; most texts never get here.
        pieces = [_Piece(*row) for row in rows]
        if repeats:
            pieces = _drop_stutters(pieces, text)
        if flags & _HAS_NUMBER:
            pieces = _compose_numbers(pieces, text) if flags & _HAS_SPOKEN_NUMBER else _merge_digit_sequences(pieces)
        if flags & _HAS_LETTER_M:
            pieces = _merge_spelled_time_markers(pieces)
        if flags & _HAS_SPOKEN_NUMBER:
            pieces = _merge_spoken_clock_times(pieces)
        texts = [piece.text for piece in pieces]
        kinds = [piece.kind for piece in pieces]
        ordinals: Sequence[int | None] = [piece.ordinal for piece in pieces]
        starts: Sequence[int] = [piece.start for piece in pieces]
        ends: Sequence[int] = [piece.end for piece in pieces]
        _assign_kinds(texts, kinds, ordinals)
    elif rows:
        _, starts, ends, row_kinds, _, ordinals, *_ = zip(*rows, strict=True)
        kinds = list(row_kinds)
        if flags & _HAS_SPECIAL_KIND or not _KIND_SENSITIVE_WORDS.isdisjoint(texts):
            _assign_kinds(texts, kinds, ordinals)
    else:
        return _EMPTY
    return NormalizedText.of(tuple(texts), kinds, starts, ends)


def joined_offsets(tokens: tuple[str, ...]) -> tuple[int, ...]:
    """Where each token starts in `" ".join(tokens)`."""
    return tuple(accumulate(map(_PLUS_ONE, map(len, tokens[:-1])), initial=0)) if tokens else ()


_PLUS_ONE = (1).__add__
_EMPTY = NormalizedText.of((), (), (), ())


# --- pass 1: raw tokens -> pieces ---------------------------------------------------------------

# What the raw pass saw, so later passes that have nothing to do are skipped.
_HAS_NUMBER = 1
_HAS_SPOKEN_NUMBER = 2
_HAS_LETTER_M = 4
_HAS_CUT_OFF = 8
# A token that is not a plain word (an ID, an ordinal), so kinds must be assigned with care.
_HAS_SPECIAL_KIND = 16

# What may stand between a word and its stuttered repeat.
STUTTER_GAP_CHARACTERS = " \t\r\n,.-–—…"

# A word's pieces depend on the word alone: (text, kind, spoken number, ordinal) per piece.
_WordTemplate = tuple[tuple[str, TokenKind, bool, int | None], ...]

# One raw token, laid out as `_Piece`'s fields (text, start, end, kind, spoken_number, ordinal, cut_off,
# from_words, gap_start): a tuple is far cheaper to make than a `_Piece`, and most texts never need one.
_Row = tuple[str, int, int, TokenKind, bool, int | None, bool, bool, int]

_CURLY_APOSTROPHES = ("’", "‘", "`", "ʼ")


def _raw_rows(text: str) -> tuple[list[_Row], int]:
    masked = NON_SPEECH_RE.sub(lambda match: " " * len(match.group()), text) if "<" in text or "[" in text else text
    lowered = masked.lower()
    # Lowercasing may change the length of a few characters ("İ"): then lowercase token by token.
    if len(lowered) != len(masked):
        return _scan_rows(masked, lowercase_tokens=True)
    if any(apostrophe in lowered for apostrophe in _CURLY_APOSTROPHES):
        lowered = lowered.translate(APOSTROPHES)
    return _scan_rows(lowered, lowercase_tokens=False)


def _scan_rows(scanned: str, lowercase_tokens: bool) -> tuple[list[_Row], int]:
    """One row per normalized piece of every token of `scanned`, with what the pass saw (`_HAS_*`)."""
    rows: list[_Row] = []
    append = rows.append
    flags = 0
    length = len(scanned)
    previous_end = 0
    # Where words start that say nothing of their own ("hours" after "0800"): their rows are dropped at the end.
    dropped_starts: tuple[int, ...] = ()
    for match in RAW_TOKEN_RE.finditer(scanned):
        group = match.lastgroup
        start, end = match.span()
        gap_start = previous_end
        previous_end = end
        raw = match.group().lower().translate(APOSTROPHES) if lowercase_tokens else match.group()
        if group == "plain":
            # The common case, kept lean: a plain word followed by a space or punctuation (never by "-" or
            # "~": those make it a "word", below).
            template, word_flags = _plain_template(raw)
            for piece_text, kind, spoken, ordinal in template:
                append((piece_text, start, end, kind, spoken, ordinal, False, False, gap_start))
            flags |= word_flags
        elif group == "word":
            if end < length and scanned[end] == "~":
                # "car~ which card": a word the speaker broke off, as some transcribers mark it.
                continue
            cut_off = end < length - 1 and scanned[end] == "-" and scanned[end + 1].isspace()
            if cut_off:
                flags |= _HAS_CUT_OFF
            # "follow-up", "bye-bye", "twenty-five": each part is a word with its own interval.
            hyphenated = "-" in raw and raw[0] not in "@#"
            parts = _hyphen_parts(raw, start) if hyphenated else [(raw, start, end)]
            for part, part_start, part_end in parts:
                template, word_flags = _plain_template(part)
                for piece_text, kind, spoken, ordinal in template:
                    append((piece_text, part_start, part_end, kind, spoken, ordinal, cut_off, False, gap_start))
                flags |= word_flags
        elif group == "num":
            after_preposition = (bool(rows) and rows[-1][0] in CLOCK_PREPOSITIONS
                                 and scanned[rows[-1][2] : start].isspace())
            glued_hours = CLOCK_GLUED_HOURS_RE.fullmatch(raw) if after_preposition else None
            if glued_hours is not None:
                # "at 0800hrs": the glued "hrs" says a 24-hour clock as "0800 hours" does (never a year).
                raw = glued_hours.group(1)
                clock = 0 if CLOCK_DIGITS_RE.fullmatch(raw) else None
                if clock is None:
                    raw = glued_hours.group(0)
            else:
                clock = (_clock_digits(raw, rows[-1][0], scanned, end)
                         if len(raw) == 4 and after_preposition else None)
            if clock is not None:
                # "at 1430": a time of day, as a 24-hour clock writes it without the colon.
                rows.extend(_clock_rows(raw[:2], raw[2:], start, end, scanned))
                if clock:  # "at 0800 hours": the "hours" only says it is a 24-hour clock
                    dropped_starts = (*dropped_starts, clock)
            else:
                rows.extend(_number_pieces(raw, start, end, scanned))
            flags |= _HAS_NUMBER
        elif group in ("url", "email"):
            append(_row(raw.rstrip(".,;:!?)"), start, end, TokenKind.id))
            flags |= _HAS_SPECIAL_KIND
        elif group == "ampm":
            append(_row(raw[0] + "m", start, end))
        elif group == "acronym":
            append(_row(raw.replace(".", ""), start, end))
        else:  # range
            rows.extend(_range_pieces(raw, start, end))
            flags |= _HAS_NUMBER
    if dropped_starts:
        rows = [row for row in rows if row[1] not in dropped_starts]
    return rows, flags


def _clock_digits(raw: str, preposition: str, scanned: str, end: int) -> int | None:
    """Whether four digits `raw` after `preposition` (one of CLOCK_PREPOSITIONS) are a time of day: None when
    not, else where a "hours" said after them starts (0 when none was)."""
    if not CLOCK_DIGITS_RE.fullmatch(raw) or NOT_CLOCK_AFTER_RE.match(scanned, end):
        return None
    hours_word = CLOCK_HOURS_WORD_RE.match(scanned, end)
    if hours_word is not None:
        return hours_word.start(1)
    if raw[:2] in YEAR_LIKE_HOURS and not (preposition == "at" and raw[2:] in QUARTER_HOURS):
        return None
    return 0


def _row(text: str, start: int, end: int, kind: TokenKind = TokenKind.word, ordinal: int | None = None) -> _Row:
    """A row for a token that is neither a spoken number, nor cut off, nor a stutter candidate."""
    return (text, start, end, kind, False, ordinal, False, False, 0)


def _hyphen_parts(raw: str, start: int) -> list[tuple[str, int, int]]:
    parts: list[tuple[str, int, int]] = []
    position = start
    for part in raw.split("-"):
        if part:
            parts.append((part, position, position + len(part)))
        position += len(part) + 1
    return parts


def _range_pieces(raw: str, start: int, end: int) -> Iterator[_Row]:
    """'5-7' and '$5 - $7' read as '5 to 7', the way they are spoken."""
    left, right = RANGE_DASH_RE.split(raw, maxsplit=1)
    currency = CURRENCY_SYMBOLS.get(left[0]) or CURRENCY_SYMBOLS.get(right[0])
    yield _row(_canonical_number(left.lstrip("$€£")), start, end, TokenKind.number)
    yield _row("to", start, end)
    yield _row(_canonical_number(right.lstrip("$€£")), start, end, TokenKind.number)
    if currency:
        yield _row(currency, start, end)


def _number_pieces(raw: str, start: int, end: int, scanned: str = "") -> Iterator[_Row]:
    """The rows of one number token `raw` at [start, end) of `scanned` (the text after it tells whether a
    clock time has its "am" or "pm" said after it)."""
    if LETTERS_AFTER_HYPHEN_RE.search(raw):
        # "1-800-IFLYSWA", "4-hours": letters hyphenated to digits read as one identifier.
        yield _row(raw, start, end, TokenKind.id)
        return
    currency = CURRENCY_SYMBOLS.get(raw[0])
    body = raw[1:] if currency else raw
    suffix_match = NUMBER_SUFFIX_RE.search(body)
    suffix = suffix_match.group() if suffix_match else ""
    digits = body[: len(body) - len(suffix)] if suffix else body
    if suffix in ORDINAL_SUFFIXES and digits.isdigit():
        yield _row(str(int(digits)), start, end, TokenKind.number, ordinal=int(digits))
        return
    if suffix in TIME_UNIT_WORDS and not currency:
        # "24hours", "35mins": a number and its unit of time, glued together.
        if DIGIT_RANGE_RE.fullmatch(digits):
            yield from _range_pieces(digits, start, end)
        else:
            yield from _number_pieces(digits, start, end)
        yield _row(suffix, start, end)
        return
    if suffix in ("a", "p") and not currency and TIME_RE.fullmatch(digits):
        # "9:10p": a clock time with its "pm" cut to a letter.
        hours, minutes = digits.split(":")
        yield from _clock_rows(hours, minutes, start, end, scanned, suffix)
        yield _row(suffix + "m", start, end)
        return
    if suffix and suffix != "%" and suffix not in TIME_MARKERS and suffix not in ("k",):
        # "4g", "12ab": an identifier, compared as written.
        yield _row(raw, start, end, TokenKind.id)
        return
    if TIME_RE.fullmatch(digits):
        hours, minutes = digits.split(":")
        yield from _clock_rows(hours, minutes, start, end, scanned, suffix[0] if suffix in ("am", "pm") else "")
    elif DATE_RE.fullmatch(digits) and ("/" in digits or digits.count("-") == 2):
        yield _row(digits, start, end, TokenKind.date)
    elif not currency and not suffix and LEADING_ZERO_DIGITS_RE.fullmatch(digits):
        # "05418" as written: the zero is part of it, as in "zero five four one eight" read out digit by digit.
        yield _row(digits, start, end, TokenKind.number)
    elif GROUPED_NUMBER_RE.fullmatch(digits) or PLAIN_NUMBER_RE.fullmatch(digits):
        value = _canonical_number(digits)
        if suffix == "k":
            value = _canonical_number(str(Decimal(value) * 1000))
        yield _row(value, start, end, TokenKind.number)
    else:
        # Version strings, phone numbers, "11.1.2": compared as written.
        yield _row(digits, start, end, TokenKind.id)
    if currency:
        yield _row(currency, start, end)
    if suffix == "%":
        yield _row("percent", start, end)
    elif suffix in TIME_MARKERS:
        yield _row(suffix, start, end)


def _clock_rows(hours: str, minutes: str, start: int, end: int, scanned: str, meridiem: str = "") -> list[_Row]:
    """A clock time as a 12-hour clock says it, so that every way of writing one time compares equal: "3:00"
    is "3" ("three pm" and "3:00 pm"); a 24-hour clock's "19:30" and "at 1930" are "7:30 pm", "0800" and
    "08:00" "8 am", "00:15" "12:15 am". Hours 1 to 12 without a leading zero say no half of the day ("10:30",
    "at 1130", as ASR writes "eleven thirty"). `meridiem`: "a" or "p" when the token itself ends in its
    half of the day ("9:10p"); one said after the token ("14:30 pm") is looked for in `scanned`. A time with
    its half of the day said leaves it to those words; one it contradicts ("14:30 am") stays as written."""
    hour = int(hours)
    half = ""
    if hour > 12:
        hour, half = hour - 12, "p"
    elif hour == 0:
        hour, half = 12, "a"
    elif len(hours) == 2 and hours[0] == "0":
        half = "a"
    if half:
        said = meridiem or _meridiem_after(scanned, end)
        if said and said != half:
            hour = int(hours)
        if said:
            half = ""
    clock = _row(str(hour) if minutes == "00" else f"{hour}:{minutes}", start, end, TokenKind.time)
    return [clock, _row(half + "m", start, end)] if half else [clock]


def _meridiem_after(scanned: str, end: int) -> str:
    """"a" or "p" when "am" or "pm" is said right after position `end` of `scanned`, else ""."""
    said = MERIDIEM_AFTER_RE.match(scanned, end)
    return said.group(1).lower() if said is not None else ""


def _canonical_number(digits: str) -> str:
    """'1,200.50' -> '1200.5', '030' -> '30'; anything unparseable is returned unchanged."""
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:
        return digits
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


@functools.lru_cache(maxsize=1 << 16)
def _plain_template(raw: str) -> tuple[_WordTemplate, int]:
    """A word's template with the raw-pass flags it raises."""
    template = _word_template(raw)
    flags = 0
    for piece_text, kind, spoken, ordinal in template:
        if spoken:
            flags |= _HAS_SPOKEN_NUMBER | _HAS_NUMBER
        elif piece_text == "m":
            flags |= _HAS_LETTER_M
        if kind is not TokenKind.word or ordinal is not None:
            flags |= _HAS_SPECIAL_KIND
    return template, flags


@functools.lru_cache(maxsize=1 << 16)
def _word_template(raw: str) -> _WordTemplate:
    """The normalized pieces of one raw word (cached: the vocabulary of calls is small)."""
    word = TokenKind.word
    if raw in FILLERS:
        return ()
    if "'" in raw:
        return tuple((text, word, False, None) for text in _expand_apostrophe(raw))
    expansion = BARE_CONTRACTIONS.get(raw)
    if expansion is not None:
        return tuple((text, word, False, None) for text in expansion)
    canonical = CANONICAL_WORDS.get(raw, raw)
    if canonical in NUMBER_WORDS:
        return ((canonical, word, True, None),)
    if canonical in ORDINALS:
        return ((canonical, word, False, ORDINALS[canonical]),)
    if not canonical.isalpha() and any(character.isdigit() for character in canonical):
        return ((canonical, TokenKind.id, False, None),)
    return ((canonical, word, False, None),)


def _expand_apostrophe(word: str) -> tuple[str, ...]:
    whole = APOSTROPHE_CONTRACTIONS.get(word)
    if whole is not None:
        return whole
    for suffix, expansion in SUFFIX_CONTRACTIONS.items():
        if word.endswith(suffix) and len(word) > len(suffix):
            host = word[: -len(suffix)]
            return (*_expand_apostrophe(host), *expansion) if "'" in host else (host, *expansion)
    if word.endswith("'s"):
        host = word[:-2]
        if host in IS_CONTRACTION_HOSTS:
            return (host, "is")
    return (word.replace("'", ""),)


# --- pass 2: spoken numbers -> digits -----------------------------------------------------------


def _compose_numbers(pieces: list[_Piece], text: str) -> list[_Piece]:
    """Combine runs of spoken number words: 'one hundred and thirty five' -> '135'.

    A run of bare single digits ("one two three four", as account numbers are read out) becomes one
    digit string. A lone "one" stays a word unless a unit follows ("one dollar"), because "a new one"
    is a pronoun, not a quantity.
    """
    result: list[_Piece] = []
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        starts_number = piece.spoken_number or (
            piece.text == "a" and index + 1 < len(pieces) and pieces[index + 1].text in ("hundred", "thousand")
        )
        if not starts_number:
            result.append(piece)
            index += 1
            continue
        groups, consumed = _read_spoken_numbers(pieces, index)
        for value, first, last in groups:
            result.append(
                _Piece(str(value), pieces[first].start, pieces[last].end, TokenKind.number, from_words=True)
            )
        index += consumed
        # "twenty third" (a day of the month, said): one ordinal, 23, as "23rd" is, not 20 and a third.
        following = pieces[index] if index < len(pieces) else None
        tens = result[-1] if groups else None
        if following is not None and following.ordinal is not None and following.ordinal < _TENS_STEP \
                and following.kind is TokenKind.word and tens is not None and tens.text in _ORDINAL_TENS \
                and _ORDINAL_JOIN.fullmatch(text[tens.end : following.start]) \
                and (following.text != "second" or _a_day_around(result, pieces, index)):
            ordinal = int(tens.text) + following.ordinal
            result[-1] = _Piece(str(ordinal), tens.start, following.end, TokenKind.number, ordinal=ordinal,
                                from_words=True)
            index += 1
    return _merge_digit_sequences(result)


def _a_day_around(result: list[_Piece], pieces: list[_Piece], ordinal_at: int) -> bool:
    """Whether "twenty second" at `ordinal_at` is a day: a month before it, or "of" or a month after it ("a
    thirty second pause", "the thirty second wait" are lengths of time)."""
    before = result[-2].text if len(result) > 1 else ""
    after = pieces[ordinal_at + 1].text if ordinal_at + 1 < len(pieces) else ""
    return before in MONTHS or after == "of" or after in MONTHS


# Between the tens and the ordinal of one number: a space or a hyphen ("twenty-third"), not a sentence's end
# ("... twenty. First, ...").
_ORDINAL_JOIN = re.compile(r"[ \t]*-?[ \t]*")


_TENS_STEP = 10
# The tens a spoken ordinal below ten follows in a day of the month or an ordinal of a larger number.
_ORDINAL_TENS = frozenset(str(tens) for tens in range(20, 100, _TENS_STEP))


def _merge_spelled_time_markers(pieces: list[_Piece]) -> list[_Piece]:
    """ASR spells the time of day out: 'nine thirty a m' -> 'nine thirty am'."""
    merged: list[_Piece] = []
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        if (
            piece.text in ("a", "p")
            and merged
            and (merged[-1].kind in (TokenKind.number, TokenKind.time) or merged[-1].text in TIME_MARKERS)
            and index + 1 < len(pieces)
            and pieces[index + 1].text == "m"
        ):
            if merged[-1].text != piece.text + "m":  # "a m a m" is a stutter
                merged.append(_Piece(piece.text + "m", piece.start, pieces[index + 1].end))
            index += 2
            continue
        merged.append(piece)
        index += 1
    return _merge_spoken_clock_times(merged)


def _merge_spoken_clock_times(pieces: list[_Piece]) -> list[_Piece]:
    """'nine thirty am' -> '9:30 am', so it compares equal to '9:30am'."""
    merged: list[_Piece] = []
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        if (
            index + 2 < len(pieces)
            and piece.from_words
            and pieces[index + 1].from_words
            and pieces[index + 2].text in ("am", "pm")
            and piece.text.isdigit()
            and pieces[index + 1].text.isdigit()
            and 1 <= int(piece.text) <= 12
            and 10 <= int(pieces[index + 1].text) <= 59
        ):
            clock = f"{piece.text}:{pieces[index + 1].text}"
            merged.append(_Piece(clock, piece.start, pieces[index + 1].end, TokenKind.time, from_words=True))
            index += 2
            continue
        merged.append(piece)
        index += 1
    return merged


def _read_spoken_numbers(pieces: list[_Piece], begin: int) -> tuple[list[tuple[int, int, int]], int]:
    """Read consecutive number words from `begin`; return (value, first, last piece) groups and count."""
    groups: list[tuple[int, int, int]] = []
    total = 0
    current = 0
    group_start = begin
    last_in_group = begin
    last_kind = ""
    index = begin

    def close_group() -> None:
        nonlocal total, current
        groups.append((total + current, group_start, last_in_group))
        total = 0
        current = 0

    while index < len(pieces):
        word = pieces[index].text
        if word == "a" and index == group_start and index + 1 < len(pieces):
            # "a hundred": the article stands for one.
            current = 1
            last_kind = "unit"
            last_in_group = index
            index += 1
            continue
        if word == "and" and last_kind == "scale" and index + 1 < len(pieces):
            following = pieces[index + 1]
            if following.spoken_number and following.text not in SCALES:
                index += 1
                continue
            break
        if not pieces[index].spoken_number:
            break
        if word in UNITS or word in TEENS:
            value = UNITS.get(word, TEENS.get(word, 0))
            fits = last_kind in ("", "scale") or (last_kind == "tens" and word in UNITS and word != "zero")
            if not fits:
                close_group()
                group_start = index
                last_kind = ""
            current += value
            last_kind = "teen" if word in TEENS else ("tens_unit" if last_kind == "tens" else "unit")
        elif word in TENS:
            if last_kind not in ("", "scale") or current % 100:
                close_group()
                group_start = index
            current += TENS[word]
            last_kind = "tens"
        else:
            scale = SCALES[word]
            if last_kind == "":
                current = 1
            if scale == 100:
                if current >= 100 or current == 0:
                    current = current or 1
                current *= 100
            else:
                total += (current or 1) * scale
                current = 0
            last_kind = "scale"
        last_in_group = index
        index += 1
    if index == begin:
        # A lone article that did not start a number after all.
        return [], 0
    groups.append((total + current, group_start, last_in_group))
    return groups, max(index, last_in_group + 1) - begin


def _merge_digit_sequences(result: list[_Piece]) -> list[_Piece]:
    """Join runs of MIN_DIGIT_RUN or more single digits into one number; keep a lone 1 the word "one"."""
    merged: list[_Piece] = []
    index = 0
    while index < len(result):
        piece = result[index]
        if _is_single_digit(piece):
            run_end = index
            while (
                run_end + 1 < len(result)
                and _is_single_digit(result[run_end + 1])
                and result[run_end + 1].start >= result[run_end].end
            ):
                run_end += 1
            if run_end - index + 1 >= MIN_DIGIT_RUN:
                digits = "".join(result[position].text for position in range(index, run_end + 1))
                merged.append(
                    _Piece(digits, piece.start, result[run_end].end, TokenKind.number, from_words=True)
                )
                index = run_end + 1
                continue
        merged.append(piece)
        index += 1
    for position, piece in enumerate(merged):
        # Written or spoken, a lone 1 without a unit reads as the word: "a new one", "step 1".
        if piece.kind is TokenKind.number and piece.text == "1" and piece.ordinal is None:
            following = merged[position + 1].text if position + 1 < len(merged) else ""
            if following not in QUANTITY_UNITS:
                piece.text = "one"
                piece.kind = TokenKind.word
    return merged


def _is_single_digit(piece: _Piece) -> bool:
    """A digit said on its own ("seven") or written on its own ("7"), as account numbers are read out."""
    return piece.kind is TokenKind.number and len(piece.text) == 1 and piece.text.isdigit() and piece.ordinal is None


# --- stutters (run right after the raw pass) --------------------------------------------------


# Spoken digits are never collapsed: "two two five" is a number, not a stutter.
_NEVER_STUTTERS = frozenset({*UNITS, *TEENS, *TENS})


def _may_repeat(texts: list[str], flags: int) -> bool:
    """Whether `_drop_stutters` may have something to do: a broken-off word, or a token repeated.

    (A word expands to at most two pieces, "gotta" -> "got to", so a repeat shows within two.)
    """
    return bool(
        flags & _HAS_CUT_OFF
        or any(map(operator.eq, texts, texts[1:]))
        or any(map(operator.eq, texts, texts[2:]))
    )


def _drop_stutters(pieces: list[_Piece], text: str) -> list[_Piece]:
    """'I I will' -> 'I will', "won't won't" -> "won't", 'wh- what' -> 'what'.

    Runs before number composition, on whole source words: a word (with all the pieces its
    contraction expanded to) that repeats the word before it is dropped. Digits never are.
    """
    count = len(pieces)
    words: list[list[_Piece]] = []
    for index, piece in enumerate(pieces):
        if piece.cut_off and index + 1 < count and pieces[index + 1].text.startswith(piece.text):
            continue
        if words and words[-1][0].start == piece.start:
            words[-1].append(piece)
        else:
            words.append([piece])
    kept: list[_Piece] = []
    previous: list[_Piece] | None = None
    for word in words:
        # Most words differ from the one before at their first piece: no need to look further.
        if previous is None or word[0].text != previous[0].text or not _repeats(word, previous, text):
            kept.extend(word)
        previous = word
    return kept


def _repeats(word: list[_Piece], before: list[_Piece], text: str) -> bool:
    return (
        len(word) == len(before)
        and before[0].end <= word[0].start
        and not text[word[0].gap_start : word[0].start].strip(STUTTER_GAP_CHARACTERS)
        and all(
            mine.text == theirs.text and mine.kind is TokenKind.word and mine.text not in _NEVER_STUTTERS
            for mine, theirs in zip(word, before, strict=True)
        )
    )


# --- kinds (last) ------------------------------------------------------------------------------


# Words whose kind depends on them or their neighbours; every other word stays a plain word.
_KIND_SENSITIVE_WORDS = frozenset(
    {*NEGATIONS, *WEEKDAYS, *RELATIVE_DAYS, *MONTHS, *TIME_MARKERS, *CURRENCY_WORDS, "percent"}
)


def _assign_kinds(texts: list[str], kinds: list[TokenKind], ordinals: Sequence[int | None]) -> None:
    """Give each token its kind, in place, from the token and its neighbours (earlier ones already done)."""
    count = len(texts)
    word = TokenKind.word
    for index, text in enumerate(texts):
        kind = kinds[index]
        ordinal = ordinals[index]
        if kind is word and ordinal is None and text not in _KIND_SENSITIVE_WORDS:
            continue
        previous = texts[index - 1] if index else ""
        following = texts[index + 1] if index + 1 < count else ""
        previous_kind = kinds[index - 1] if index else None
        if kind is word:
            if text in NEGATIONS:
                kinds[index] = TokenKind.negation
            elif text in WEEKDAYS or text in RELATIVE_DAYS:
                kinds[index] = TokenKind.date
            elif text in MONTHS:
                after_ordinal_date = previous == "of" and index > 1 and kinds[index - 2] is TokenKind.date
                # "May 20", "May 20th", "May the 20th" (not "May the two of us").
                next_is_number = index + 1 < count and (
                    kinds[index + 1] is TokenKind.number
                    or ordinals[index + 1] is not None
                    or (following == "the" and index + 2 < count and ordinals[index + 2] is not None)
                )
                # A number before a month has just become a date itself: "20 Dec". Not so for "may" and "march",
                # words as often: "a second. May I ask" (a spoken ordinal is a date before a month name). After
                # a day of the month in digits they are months ("20 May"): the number's turn made them dates.
                previous_is_number = previous_kind is TokenKind.number or (
                    previous_kind is TokenKind.date and previous.isdigit() and MONTH_FULL_NAMES[text] != text
                )
                if text not in AMBIGUOUS_MONTHS or next_is_number or previous_is_number or after_ordinal_date:
                    kinds[index] = TokenKind.date
                    texts[index] = MONTH_FULL_NAMES[text]
            elif ordinal is not None and (
                following in MONTHS
                or previous in MONTHS
                or (following == "of" and index + 2 < count and texts[index + 2] in MONTHS)
                or (previous == "the" and index > 1 and texts[index - 2] in MONTHS)
            ):
                texts[index] = str(ordinal)
                kinds[index] = TokenKind.date
            elif ordinal is not None and following in ORDINAL_PERIODS:
                # "the second week" vs "the first week" is the difference between two dates.
                texts[index] = str(ordinal)
                kinds[index] = TokenKind.number
            elif text in TIME_MARKERS and previous_kind in (TokenKind.number, TokenKind.time):
                kinds[index] = TokenKind.time
            elif text in CURRENCY_WORDS and previous_kind is TokenKind.amount:
                # The unit is part of the amount: "$20" and "20%" must not compare equal.
                kinds[index] = TokenKind.amount
            elif text == "percent" and previous_kind is TokenKind.percent:
                kinds[index] = TokenKind.percent
            continue
        if kind is TokenKind.number:
            if following in CURRENCY_WORDS:
                kinds[index] = TokenKind.amount
            elif following == "percent":
                kinds[index] = TokenKind.percent
            elif following in TIME_MARKERS:
                kinds[index] = TokenKind.time
            elif (
                following in MONTHS
                or previous in MONTHS
                or (ordinal is not None and following == "of" and index + 2 < count and texts[index + 2] in MONTHS)
                or (ordinal is not None and previous == "the" and index > 1 and texts[index - 2] in MONTHS)
            ):
                # "20 Dec", "Dec 20", "the 31st of Dec", "Dec the 31st".
                kinds[index] = TokenKind.date
                if following in AMBIGUOUS_MONTHS and len(text) <= 2 and text.isdigit() and int(text) <= 31:
                    # "20 May", "the 20th March": a day of the month makes the month after it a date, "may" and
                    # "march" too. The month's own turn, next, cannot tell this number from a spoken "second"
                    # (both are dates by then) and leaves those two words.
                    kinds[index + 1] = TokenKind.date
                    texts[index + 1] = MONTH_FULL_NAMES[following]
            elif len(text) >= MIN_ID_DIGITS and text.isdigit() and ordinal is None:
                kinds[index] = TokenKind.id
