"""Property checks over many generated calls (a seeded random loop, no extra dependency).

For any quote cut from a generated utterance, under any normalization-only rewrite, the verifier
accepts it, puts it in the right utterance, and its offsets slice the original text; the same quote
with one number changed or its negation flipped is never accepted.
"""

from __future__ import annotations

import random
import re

from app.grounding import PreparedTranscript
from app.schemas.grounding import EvidenceStatus
from app.schemas.transcript import Role, Utterance
from app.text.normalize import normalize
from tests.grounding.helpers import assert_offsets_slice_original

SEED = 20240601
CALLS = 60
QUOTES_PER_CALL = 8

OPENERS = ["I", "We", "You", "The agent", "My wife", "Our team"]
VERBS = ["will send", "can refund", "should receive", "did cancel", "have ordered", "will check"]
# Objects are drawn without replacement within a call, so a sentence (and a fabrication made from it)
# cannot turn up again in another utterance of the same call.
OBJECTS = [
    f"the {adjective} {noun}"
    for adjective in ("replacement", "new", "late", "annual", "second", "broken", "premium", "spare")
    for noun in ("card", "invoice", "router", "fee", "statement", "order", "modem", "plan")
]
TAILS = [
    "by Friday",
    "within {n} business days",
    "for ${n}",
    "before {n} pm",
    "on order {id}",
    "as soon as possible",
    "today",
    "if that is okay",
]
FILLERS = ["um", "uh", "you know,", "so", "well,"]
CONTRACTIONS = [("I will", "I'll"), ("will not", "won't"), ("can not", "can't"), ("We will", "We'll")]


def _sentence(rng: random.Random, objects: list[str]) -> str:
    tail = rng.choice(TAILS).format(n=rng.randint(2, 90), id=rng.randint(10000, 99999))
    verb = rng.choice(VERBS)
    if rng.random() < 0.3:
        verb = re.sub(r"\b(will|can)\b", r"\1 not", verb)
    sentence = f"{rng.choice(OPENERS)} {verb} {objects.pop()} {tail}"
    for long, short in CONTRACTIONS:
        if rng.random() < 0.5:
            sentence = re.sub(rf"\b{long}\b", short, sentence)
    return sentence + rng.choice([".", "!", "", "?"])


def _call(rng: random.Random) -> list[Utterance]:
    turns = []
    objects = rng.sample(OBJECTS, len(OBJECTS))
    for index in range(rng.randint(4, 12)):
        text = " ".join(_sentence(rng, objects) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.3:
            text = rng.choice(FILLERS) + " " + text
        role = Role.agent if index % 2 == 0 else Role.customer
        turns.append(Utterance(index=index, speaker=role.value, role=role, text=text))
    return turns


def _rewrite(quote: str, rng: random.Random) -> str:
    """A rewrite that changes the form but not one fact."""
    choice = rng.randrange(6)
    if choice == 0:
        return re.sub(r"[.,!?]", "", quote.lower())
    if choice == 1:
        for long, short in CONTRACTIONS:
            quote = re.sub(rf"\b{short}(?!\w)", long, quote)
        return quote
    if choice == 2:
        words = quote.split()
        position = rng.randrange(len(words))
        return " ".join([*words[:position], rng.choice(["um", "uh"]), *words[position:]])
    if choice == 3:
        return quote.replace("'", "’")
    if choice == 4:
        return re.sub(r"\$(\d+)", r"\1 dollars", quote)
    return "  ".join(quote.split())


def _change_number(quote: str, rng: random.Random) -> str | None:
    numbers = list(re.finditer(r"\d+", quote))
    if not numbers:
        return None
    match = rng.choice(numbers)
    return quote[: match.start()] + str(int(match.group()) + rng.randint(1, 9)) + quote[match.end() :]


def _flip_negation(quote: str) -> str | None:
    for negative, positive in [("won't", "will"), ("will not", "will"), ("can not", "can"), ("can't", "can")]:
        if negative in quote:
            return quote.replace(negative, positive, 1)
    for positive, negative in [("will", "will not"), ("can", "can not")]:
        if re.search(rf"\b{positive}\b", quote):
            return re.sub(rf"\b{positive}\b", negative, quote, count=1)
    return None


NEGATIVE_WORDS = re.compile(r"^(not|never|no|won't|can't|cannot)\W*$", re.IGNORECASE)


def _quotes(turns: list[Utterance], rng: random.Random) -> list[tuple[int, str]]:
    """Word spans of utterances. Not one that starts right after a negation or stops right before one:
    quoting "send it" out of "won't send it" drops the negation, which the verifier refuses by design."""
    picked: list[tuple[int, str]] = []
    while len(picked) < QUOTES_PER_CALL:
        index = rng.randrange(len(turns))
        words = turns[index].text.split()
        length = rng.randint(min(4, len(words)), len(words))
        start = rng.randint(0, len(words) - length)
        around = [*words[max(start - 2, 0) : start], *words[start + length : start + length + 1]]
        if any(NEGATIVE_WORDS.match(word) for word in around):
            continue
        picked.append((index, " ".join(words[start : start + length])))
    return picked


def test_genuine_quotes_under_rewrites_are_accepted_where_they_are() -> None:
    rng = random.Random(SEED)
    for _ in range(CALLS):
        turns = _call(rng)
        prepared = PreparedTranscript(turns)
        for index, quote in _quotes(turns, rng):
            for candidate in (quote, _rewrite(quote, rng)):
                cited = index if rng.random() < 0.8 else rng.randrange(len(turns))
                evidence = prepared.align_quote(cited, candidate)
                assert_offsets_slice_original(turns, evidence)
                assert all(piece.grounded for piece in evidence), (turns[index].text, candidate, evidence)
                # Generated calls repeat phrases: the place found must say the same thing.
                for piece in evidence:
                    assert piece.utterance is not None
                    if piece.utterance != index:
                        assert piece.status is EvidenceStatus.relocated or piece.utterance == cited


def test_changed_numbers_and_flipped_negations_are_never_accepted() -> None:
    rng = random.Random(SEED + 1)
    checked = 0
    for _ in range(CALLS):
        turns = _call(rng)
        prepared = PreparedTranscript(turns)
        # A "fabrication" that some utterance really says (generated calls repeat phrases) is not one.
        said = " | ".join(normalize(turn.text).joined for turn in turns)
        for index, quote in _quotes(turns, rng):
            for fabricated in (_change_number(quote, rng), _flip_negation(quote)):
                if fabricated is None or f" {normalize(fabricated).joined} " in f" {said} ":
                    continue
                evidence = prepared.align_quote(index, fabricated)
                assert_offsets_slice_original(turns, evidence)
                assert any(not piece.grounded for piece in evidence), (turns[index].text, fabricated, evidence)
                checked += 1
    assert checked > CALLS * 2  # the generator really produced fabrications to check
