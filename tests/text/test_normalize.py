"""Speech-aware normalization: what compares equal, what stays critical, and where tokens came from."""

from __future__ import annotations

import random

import pytest

import app.text.normalize as normalize_module
from app.text.lexicon import CRITICAL_KINDS
from app.text.normalize import NEGATION_VALUE, NormalizedText, TokenKind, _Piece, _repeats, normalize
from bench.grounding.cases import load_harper_valley, load_tweetsumm
from tests.support.data import require_shared_data


def tokens(text: str) -> tuple[str, ...]:
    return normalize(text).tokens


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("I'll refund the $30 today.", "i will refund the thirty dollars today"),
        ("You won't be charged.", "you will not be charged"),
        ("I can’t log in", "i can not log in"),  # curly apostrophe, and "can't" = "can not"
        ("I cannot log in", "I can't log in"),
        ("It's 5-7 business days", "it is five to seven business days"),
        ("twenty five", "25"),
        ("a hundred and thirty five dollars", "$135"),
        ("one hundred thirty-five dollars", "135 dollars"),
        ("Um, I I will, uh, send it", "I will send it"),
        ("wh- what is the balance", "what is the balance"),
        ("dont worry im here", "don't worry I'm here"),
        ("20% off", "twenty percent off"),
        ("call me at 9:30am", "call me at nine thirty a m"),
        ("at 3:00 p.m.", "at three pm"),
        ("my account is 4 1 4 8 8", "my account is four one four eight eight"),
        ("the U.S. office", "the us office"),
        ("[noise] hello there", "hello there"),
        ("a new one", "a new 1"),
        ("e-mail follow-up", "e mail follow up"),
    ],
)
def test_equivalent_forms_normalize_alike(written: str, spoken: str) -> None:
    assert tokens(written) == tokens(spoken)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("$30", "$40"),
        ("I will send it", "I won't send it"),
        ("five to seven days", "five to ten days"),
        ("$20", "20%"),
        ("3 pm", "3 am"),
        ("order #A12345", "order #A12346"),
        ("on Friday", "on Monday"),
        ("I like it", "I'd like it"),  # "like" is content, never dropped as a filler
        ("do you know my balance", "do my balance"),  # nor is "you know"
    ],
)
def test_different_facts_do_not_normalize_alike(left: str, right: str) -> None:
    assert tokens(left) != tokens(right)


def test_every_token_maps_back_to_the_original_text() -> None:
    text = "Um, I’ll refund the $1,234.50 on March 3rd — order #A12345, okay?"
    normalized = normalize(text)
    slices = [text[start:end] for start, end in zip(normalized.starts, normalized.ends, strict=True)]
    assert slices == ["I’ll", "I’ll", "refund", "the", "$1,234.50", "$1,234.50", "on", "March", "3rd",
                      "order", "#A12345", "okay"]
    assert normalized.tokens[:6] == ("i", "will", "refund", "the", "1234.5", "dollars")


def test_spoken_number_runs_map_to_their_whole_span() -> None:
    text = "that is one hundred and three dollars"
    normalized = normalize(text)
    index = normalized.tokens.index("103")
    assert text[normalized.starts[index] : normalized.ends[index]] == "one hundred and three"
    assert normalized.kinds[index] is TokenKind.amount


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("refund of $45", TokenKind.amount, "45"),
        ("about 20%", TokenKind.percent, "20"),
        ("at 3:30", TokenKind.time, "3:30"),
        ("on Friday", TokenKind.date, "friday"),
        ("March 3rd", TokenKind.date, "3"),
        ("case 123456", TokenKind.id, "123456"),
        ("order #A12345", TokenKind.id, "#a12345"),
        ("call 1-800-IFLYSWA", TokenKind.id, "1-800-iflyswa"),
        ("I never got it", TokenKind.negation, NEGATION_VALUE),
        ("it doesn't work", TokenKind.negation, NEGATION_VALUE),
        ("wait 5 days", TokenKind.number, "5"),
    ],
)
def test_critical_tokens_are_recognised(text: str, kind: TokenKind, value: str) -> None:
    assert (kind, value) in normalize(text).critical_values()


def test_may_and_march_are_dates_only_next_to_a_number() -> None:
    assert normalize("you may march on").critical_values() == ()
    assert (TokenKind.date, "may") in normalize("on may 5").critical_values()


def test_ordinary_words_are_not_critical() -> None:
    assert normalize("first of all, one second please").critical_values() == ()


def test_repeated_digits_are_not_stutters() -> None:
    assert tokens("two two five") == ("225",)
    assert tokens("two two") == ("2", "2")


def test_negation_from_a_contraction_is_not_a_stutter_of_the_next_one() -> None:
    assert tokens("this isn't not a problem").count("not") == 2
    assert tokens("no no updates").count("no") == 1


def test_text_with_only_punctuation_or_fillers_has_no_tokens() -> None:
    assert tokens("... um, uh!") == ()


# --- the cheaper paths against the code they replaced ------------------------------------------------


def test_every_kind_but_word_is_critical() -> None:
    """`NormalizedText.critical_values` tests "critical" as "not a word" (an identity test): it holds while
    this does."""
    assert frozenset(TokenKind) - CRITICAL_KINDS == {TokenKind.word}


def replaced_drop_stutters(pieces: list[_Piece], text: str) -> list[_Piece]:
    """`_drop_stutters` before it ruled a word out at its first piece."""
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
        if previous is None or not _repeats(word, previous, text):
            kept.extend(word)
        previous = word
    return kept


def test_real_texts_normalize_and_give_critical_values_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """On every turn of the real dialogs: the same tokens as with the stutter pass it replaced, and the
    same critical values (whole text, remembered; and any slice) as the set-lookup loop computed them."""
    root = require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl").parents[1]
    texts = [turn.text for _, turns, _ in load_tweetsumm(root) for turn in turns]
    texts += [turn.text for _, human, asr in load_harper_valley(root) for turn in (*human, *asr)]
    uncached = normalize.__wrapped__
    current = [uncached(text) for text in texts]
    monkeypatch.setattr(normalize_module, "_drop_stutters", replaced_drop_stutters)
    assert current == [uncached(text) for text in texts]
    rng = random.Random(5)
    with_critical = 0
    for normalized in current:
        first = rng.randrange(len(normalized) + 1)
        last = rng.randrange(first, len(normalized) + 1)
        for _ in range(2):  # the second call answers from what the first remembered
            assert normalized.critical_values() == _set_lookup_critical_values(normalized, 0, len(normalized))
        assert normalized.critical_values(first, last) == _set_lookup_critical_values(normalized, first, last)
        assert normalized.critical_values(first) == _set_lookup_critical_values(normalized, first, len(normalized))
        with_critical += bool(normalized.critical_values())
    assert len(texts) > 10_000 and with_critical > 1_000


def _set_lookup_critical_values(text: NormalizedText, first: int, stop: int) -> tuple[tuple[TokenKind, str], ...]:
    values: list[tuple[TokenKind, str]] = []
    for position in range(first, stop):
        kind = text.kinds[position]
        if kind in CRITICAL_KINDS:
            values.append((kind, NEGATION_VALUE if kind is TokenKind.negation else text.tokens[position]))
    return tuple(values)


# --- one value written two ways (a probe's honest claims flagged) -----------------------------------


@pytest.mark.parametrize(
    ("written", "other"),
    [
        ("an estimated departure of 9:10p.", "an estimated departure of 9:10 PM"),
        ("leaves at 8:25p", "leaves at 8:25 pm"),
        ("opens at 9:30a", "opens at 9:30 am"),
        ("tomorrow at 1430!", "tomorrow at 14:30"),
        ("until 0900", "until 9:00 am"),
        ("within 24hours of your", "within 24 hours of your"),
        ("waited 35mins", "waited 35 mins"),
        ("takes 6-8weeks", "takes 6-8 weeks"),
        ("flights up to 31st of Dec.", "flights up to 31st of December"),
        ("the 20th Dec", "the 20th December"),
        ("on 28 oct", "on 28 October"),
        ("California 05418", "California zero five four one eight"),
        ("case 007", "case zero zero seven"),
    ],
)
def test_one_value_written_two_ways_normalizes_alike(written: str, other: str) -> None:
    assert tokens(written) == tokens(other)


@pytest.mark.parametrize(
    ("text", "critical"),
    [
        ("at 1430", ((TokenKind.time, "2:30"), (TokenKind.time, "pm"))),
        ("at 9:10p", ((TokenKind.time, "9:10"), (TokenKind.time, "pm"))),
        ("within 24hours", ((TokenKind.number, "24"),)),
        ("up to 31st of Dec", ((TokenKind.date, "31"), (TokenKind.date, "december"))),
        ("the 20th Dec", ((TokenKind.date, "20"), (TokenKind.date, "december"))),
        ("zip 05418", ((TokenKind.id, "05418"),)),
    ],
)
def test_glued_and_abbreviated_values_are_read_as_what_they_say(
    text: str, critical: tuple[tuple[TokenKind, str], ...]
) -> None:
    assert normalize(text).critical_values() == critical


@pytest.mark.parametrize(
    ("text", "critical"),
    [
        # Four digits are a time only after "at", "by", "from", "until", "till", and never a likely year.
        ("in 2017", ((TokenKind.number, "2017"),)),
        ("by 2022", ((TokenKind.number, "2022"),)),
        ("until 1930", ((TokenKind.number, "1930"),)),
        ("at 2021 this is not the time", ((TokenKind.number, "2021"), (TokenKind.negation, NEGATION_VALUE))),
        ("changed to 1123", ((TokenKind.number, "1123"),)),
        ("until 1260", ((TokenKind.number, "1260"),)),
        ("at 2400", ((TokenKind.number, "2400"),)),
        # Nor when more of a number, or a currency, follows them.
        ("from 0906 706 0010", ((TokenKind.number, "0906"), (TokenKind.number, "706"), (TokenKind.number, "0010"))),
        ("from 0906 seven hundred and six", ((TokenKind.number, "0906"), (TokenKind.number, "706"))),
        ("at 1500 dollars", ((TokenKind.amount, "1500"), (TokenKind.amount, "dollars"))),
        # A letter or a unit other than one of time after a number keeps it an identifier.
        ("seat 9a", ((TokenKind.id, "9a"),)),
        ("my 4g signal", ((TokenKind.id, "4g"),)),
        ("a 50mb plan", ((TokenKind.id, "50mb"),)),
        # A leading zero is kept only with two more digits, and not in zeros alone.
        ("row 05", ((TokenKind.number, "5"),)),
        ("code 000", ((TokenKind.number, "0"),)),
        ("$050", ((TokenKind.amount, "50"), (TokenKind.amount, "dollars"))),
        # "May" and "March" after a spoken ordinal stay words: "second" is as often a moment.
        ("wait a second. May I ask who is calling", ((TokenKind.date, "2"),)),
        ("the 3rd of them", ((TokenKind.number, "3"),)),
    ],
)
def test_what_only_looks_like_a_time_a_unit_or_a_date_is_left_as_it_was(
    text: str, critical: tuple[tuple[TokenKind, str], ...]
) -> None:
    assert normalize(text).critical_values() == critical


def test_a_glued_value_still_maps_back_to_its_whole_token() -> None:
    text = "leaves at 9:10p within 24hours"
    normalized = normalize(text)
    slices = [text[start:end] for start, end in zip(normalized.starts, normalized.ends, strict=True)]
    assert normalized.tokens == ("leaves", "at", "9:10", "pm", "within", "24", "hours")
    assert slices == ["leaves", "at", "9:10p", "9:10p", "within", "24hours", "24hours"]


# --- one date or time written the other way round, or on the other clock ---------------------------


@pytest.mark.parametrize(
    ("written", "other"),
    [
        # Day first, as "20 Dec" already read: "May" and "March" after a day of the month are months too.
        ("on 20 May", "on May 20"),
        ("on 20th May", "on May 20th"),
        ("on the 20th of May", "on May the 20th"),
        ("on the twentieth of march", "on march the twentieth"),
        ("on the 3rd of Dec", "on December the 3rd"),
        ("by 20 March", "by March 20"),
        ("on 20 May 2026", "on May 20, 2026"),
        # A 24-hour clock, with or without its colon, as a 12-hour clock says it.
        ("at 1930", "at 7:30 pm"),
        ("at 19:30", "at 7:30 pm"),
        ("at 2000", "at 8 pm"),
        ("at 2100", "at 9 pm"),
        ("at 0000", "at 12 am"),
        ("at 0015", "at 12:15 am"),
        ("at 0800 hours", "at 8 am"),
        ("until 1930 hours", "until 7:30 pm"),
        ("at 0800hrs", "at 8 am"),
        ("until 1930Hrs", "until 7:30 pm"),
        ("at 08:00", "at 8 am"),
        ("from 13:00", "from 1 pm"),
        ("at 17:45", "at 5:45 p.m."),
    ],
)
def test_one_date_or_time_written_two_ways_has_the_same_critical_values(written: str, other: str) -> None:
    # As a claim's details are compared with its evidence's: values, in any order.
    assert sorted(value for _, value in normalize(written).critical_values()) == sorted(
        value for _, value in normalize(other).critical_values()
    )


@pytest.mark.parametrize(
    ("text", "critical"),
    [
        ("on 20 May", ((TokenKind.date, "20"), (TokenKind.date, "may"))),
        ("the 20th March", ((TokenKind.date, "20"), (TokenKind.date, "march"))),
        ("May the 20th", ((TokenKind.date, "may"), (TokenKind.date, "20"))),
        ("at 1930", ((TokenKind.time, "7:30"), (TokenKind.time, "pm"))),
        ("at 0800 hours", ((TokenKind.time, "8"), (TokenKind.time, "am"))),
        # Its "am" or "pm" said after it, the 24-hour time has it once; one it contradicts leaves it as written.
        ("at 14:30 pm", ((TokenKind.time, "2:30"), (TokenKind.time, "pm"))),
        ("at 1430 p.m.", ((TokenKind.time, "2:30"), (TokenKind.time, "pm"))),
        ("at 14:30 am", ((TokenKind.time, "14:30"), (TokenKind.time, "am"))),
        ("at 21:00pm", ((TokenKind.time, "9"), (TokenKind.time, "pm"))),
        ("at 9:10p", ((TokenKind.time, "9:10"), (TokenKind.time, "pm"))),
        ("at 21:10p", ((TokenKind.time, "9:10"), (TokenKind.time, "pm"))),
    ],
)
def test_dates_and_times_are_read_whichever_way_they_are_written(
    text: str, critical: tuple[tuple[TokenKind, str], ...]
) -> None:
    assert normalize(text).critical_values() == critical


@pytest.mark.parametrize(
    ("text", "critical"),
    [
        # Four digits that begin like a year are a time only after "at" on a quarter hour, or before "hours".
        ("in 1930", ((TokenKind.number, "1930"),)),
        ("until 1930", ((TokenKind.number, "1930"),)),
        ("by 2000", ((TokenKind.number, "2000"),)),
        ("at 2021 prices", ((TokenKind.number, "2021"),)),
        # Glued "hrs" after digits that are no time of day, or after no clock word: a number of hours.
        ("at 2500hrs", ((TokenKind.number, "2500"),)),
        ("for 1200hrs", ((TokenKind.number, "1200"),)),
        ("since 1945", ((TokenKind.number, "1945"),)),
        # Four digits after no clock word are a number, an amount or part of an identifier.
        ("account 1930", ((TokenKind.number, "1930"),)),
        ("it was 1930 dollars", ((TokenKind.amount, "1930"), (TokenKind.amount, "dollars"))),
        ("at 1930 dollars", ((TokenKind.amount, "1930"), (TokenKind.amount, "dollars"))),
        ("card ending 0800", ((TokenKind.number, "0800"),)),
        ("at 1930 2040 5566", ((TokenKind.number, "1930"), (TokenKind.number, "2040"), (TokenKind.number, "5566"))),
        # Hours 1 to 12 without a leading zero say no half of the day: ASR writes "eleven thirty" as "1130".
        ("at 1130", ((TokenKind.time, "11:30"),)),
        ("at 10:30", ((TokenKind.time, "10:30"),)),
        ("at 1200", ((TokenKind.time, "12"),)),
        ("9:30 this morning", ((TokenKind.time, "9:30"),)),
        # "May" and "March" without a day of the month beside them stay words.
        ("May I ask who is calling", ()),
        ("we may march on", ()),
        ("may the two of us come", ((TokenKind.number, "2"),)),
        ("may the best one win", ()),
    ],
)
def test_what_is_not_a_clock_time_or_a_day_first_date_is_left_as_it_was(
    text: str, critical: tuple[tuple[TokenKind, str], ...]
) -> None:
    assert normalize(text).critical_values() == critical


def test_the_hours_of_a_24_hour_clock_go_with_it_and_the_time_maps_back_to_its_digits() -> None:
    text = "opens at 0800 hours sharp"
    normalized = normalize(text)
    slices = [text[start:end] for start, end in zip(normalized.starts, normalized.ends, strict=True)]
    assert normalized.tokens == ("opens", "at", "8", "am", "sharp")
    assert slices == ["opens", "at", "0800", "0800", "sharp"]


def test_may_after_a_number_that_is_no_day_of_the_month_stays_a_word() -> None:
    assert "may" not in {value for _, value in normalize("room 250 may be free").critical_values()}
    assert "may" not in {value for _, value in normalize("the 2026 may be later").critical_values()}


@pytest.mark.parametrize(("spoken", "written"), [
    ("December twenty-third", "December 23rd"),
    ("from december twenty third", "from Dec 23"),
    ("the thirty first of May", "the 31st of May"),
    ("on the twenty first", "on the 21st"),
])
def test_a_compound_spoken_ordinal_is_one_number(spoken: str, written: str) -> None:
    assert normalize(spoken).critical_values() == normalize(written).critical_values()
    said = normalize(spoken)
    (number_at,) = [i for i, token in enumerate(said.tokens) if token.isdigit()]
    assert spoken[said.starts[number_at] : said.ends[number_at]].endswith(("third", "first"))  # the whole of it


def test_a_length_in_seconds_is_not_a_day() -> None:
    assert normalize("a thirty second pause").tokens == ("a", "30", "second", "pause")
    assert normalize("may twenty second").tokens == ("may", "22")
    assert normalize("the thirty second wait").tokens == ("the", "30", "second", "wait")
    assert normalize("twenty. First, we").tokens == ("20", "first", "we")  # two sentences, not one number
