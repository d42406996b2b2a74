"""Quote alignment: every status, every evidence-level reason code, offsets, relocation, multi-span."""

from __future__ import annotations

import pytest

from app.grounding import PreparedTranscript, Reason, align_quote
from app.schemas.grounding import EvidenceStatus
from tests.grounding.helpers import assert_offsets_slice_original, utterances

CALL = utterances(
    "Thank you for calling Acme, how can I help you today?",
    "Hi, um, I was charged $40 twice for my order #A12345 on Friday.",
    "I'm sorry about that. I'll refund the $40 today, and you'll see it in 5-7 business days.",
    "You won't be charged again, and I'll call you back at 3 pm.",
    "great thank you so much",
    "Is there anything else I can help you with?",
    "no that was it i lost my debit card last week",
)


def align_one(cited: int, quote: str, turns: list | None = None):  # type: ignore[no-untyped-def]
    turns = CALL if turns is None else turns
    evidence = align_quote(turns, cited, quote)
    assert_offsets_slice_original(turns, evidence)
    assert len(evidence) == 1, evidence
    return evidence[0]


# --- statuses -------------------------------------------------------------------------------------


def test_exact_quote_in_the_cited_utterance() -> None:
    evidence = align_one(2, "I'll refund the $40 today")
    assert evidence.status is EvidenceStatus.exact
    assert (evidence.utterance, evidence.reason, evidence.score) == (2, None, 1.0)
    assert CALL[2].text[evidence.char_start : evidence.char_end] == "I'll refund the $40 today"  # type: ignore[misc]


@pytest.mark.parametrize(
    "quote",
    [
        "i will refund the forty dollars today",  # contraction, spoken amount, case
        "I'll refund the $40 today, and you'll see it in five to seven business days",  # spoken range
        "I’ll, um, refund the $40 today",  # curly apostrophe, filler
        "I will refund the forty bucks today",
    ],
)
def test_normalized_quote(quote: str) -> None:
    evidence = align_one(2, quote)
    assert evidence.status is EvidenceStatus.normalized
    assert evidence.utterance == 2
    assert CALL[2].text[evidence.char_start : evidence.char_end].startswith("I’ll"[0])  # type: ignore[misc]


def test_normalized_span_slices_the_original_text() -> None:
    evidence = align_one(2, "you will see it in five to seven business days")
    assert CALL[2].text[evidence.char_start : evidence.char_end] == "you'll see it in 5-7 business days"  # type: ignore[misc]


def test_fuzzy_quote_with_an_asr_slip() -> None:
    turns = utterances("and what is the destination accounts please")
    evidence = align_one(0, "and what is the destination account please", turns)
    assert evidence.status is EvidenceStatus.fuzzy
    assert 0.9 < evidence.score < 1.0
    assert turns[0].text[evidence.char_start : evidence.char_end] == "and what is the destination accounts please"  # type: ignore[misc]


def test_relocated_quote_gets_the_right_index() -> None:
    evidence = align_one(0, "You won't be charged again")
    assert evidence.status is EvidenceStatus.relocated
    assert (evidence.cited_utterance, evidence.utterance) == (0, 3)


def test_ungrounded_quote_has_no_location() -> None:
    evidence = align_one(2, "We will send a technician to your house on Monday")
    assert evidence.status is EvidenceStatus.ungrounded
    assert evidence.reason == Reason.not_found
    assert (evidence.utterance, evidence.char_start, evidence.char_end) == (None, None, None)
    assert not evidence.grounded


# --- reason codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cited", "quote", "reason"),
    [
        (2, "I'll refund the $45 today", Reason.amount_mismatch),
        (2, "you'll see it in 5-10 business days", Reason.number_mismatch),
        (1, "I was charged $40 twice for my order #A12346", Reason.id_mismatch),
        (1, "charged $40 twice for my order #A12345 on Monday", Reason.date_mismatch),
        (3, "I'll call you back at 4 pm", Reason.time_mismatch),
        (3, "You will be charged again", Reason.negation_mismatch),
        (6, "i lost my credit card last week", Reason.content_mismatch),
    ],
)
def test_changed_critical_or_content_word_is_ungrounded_with_its_reason(cited: int, quote: str, reason: Reason) -> None:
    evidence = align_one(cited, quote)
    assert evidence.status is EvidenceStatus.ungrounded
    assert evidence.reason == reason
    # It still points at what the transcript says there, for the reviewer.
    assert evidence.utterance == cited


def test_quote_that_drops_a_negation_just_outside_it_is_ungrounded() -> None:
    turns = utterances("I will not refund the fee", "Never flying with you again!")
    assert align_one(0, "I will", turns).reason == Reason.negation_mismatch
    assert align_one(1, "flying with you again!", turns).reason == Reason.negation_mismatch


@pytest.mark.parametrize(("said", "quote"), [
    ("I will not, unfortunately, refund the fee.", "refund the fee"),  # an aside between commas
    ("I'm not able to, uh, waive the fee.", "waive the fee"),
    ("I am not able to waive the fee.", "waive the fee"),  # "able to" bridges the negation to the verb
    ("There is no way I will waive the fee.", "I will waive the fee"),
])
def test_a_negation_reaching_past_an_aside_or_a_bridge_still_refuses_the_quote(said: str, quote: str) -> None:
    # Each quote is verbatim; without the negation before it, it says the opposite.
    assert align_one(0, quote, utterances(said)).reason == Reason.negation_mismatch


@pytest.mark.parametrize(("said", "quote"), [
    ("I don't know, I will refund it myself.", "I will refund it myself"),
    ("I don't know, uh, I'll check with my supervisor and call you back.",
     "I'll check with my supervisor and call you back"),  # a clause ending in a word, not in its negation
    ("No, that's not right, sorry, I'll refund the difference.", "I'll refund the difference"),
    ("Don't forget to bring your receipt to the store.", "bring your receipt to the store"),  # no bridge
    ("Please don't hesitate to call us back.", "call us back"),
])
def test_a_clause_of_its_own_keeps_the_quote(said: str, quote: str) -> None:
    assert align_one(0, quote, utterances(said)).status is EvidenceStatus.exact


def test_negation_in_another_clause_does_not_count() -> None:
    turns = utterances("No. I will refund the fee.", "Then you missed my flight. Not enough staff.")
    assert align_one(0, "I will refund the fee.", turns).status is EvidenceStatus.exact
    assert align_one(1, "Then you missed my flight.", turns).status is EvidenceStatus.exact


@pytest.mark.parametrize(
    ("said", "quote"),
    [
        ("no thank you that was it", "thank you that was it"),
        ("No thanks, that's everything", "thanks, that's everything"),
        ("uh no i didn't get the email", "i didn't get the email"),
        ("nope that's all I needed", "that's all I needed"),
        ("oh no it's fine, really", "it's fine, really"),
    ],
)
def test_a_turn_initial_no_answering_the_other_party_negates_nothing_in_the_answer(said: str, quote: str) -> None:
    # "Anything else?" - "no thank you that was it": calls end this way every day.
    assert align_one(0, quote, utterances(said)).status is EvidenceStatus.exact


@pytest.mark.parametrize(
    ("said", "quote"),
    [
        ("no fees apply to this account", "fees apply to this account"),
        ("no problem at all", "problem at all"),
        ("there is no charge for that", "charge for that"),
        ("well I said no refunds will be issued", "refunds will be issued"),
        ("you will not be charged", "be charged"),
    ],
)
def test_a_no_that_negates_the_quoted_words_still_refuses_the_quote(said: str, quote: str) -> None:
    assert align_one(0, quote, utterances(said)).reason == Reason.negation_mismatch


def test_exact_match_never_cuts_a_number_or_word() -> None:
    turns = utterances("I'll refund the $45 today", "I can't do that")
    assert align_one(0, "I'll refund the $4", turns).status is EvidenceStatus.ungrounded
    assert align_one(1, "I can", turns).status is EvidenceStatus.ungrounded


def test_bad_index_relocated() -> None:
    evidence = align_one(42, "great thank you so much")
    assert evidence.status is EvidenceStatus.relocated
    assert (evidence.utterance, evidence.reason) == (4, Reason.bad_index)


def test_bad_index_not_found() -> None:
    evidence = align_one(-3, "nothing like this was said at all")
    assert evidence.status is EvidenceStatus.ungrounded
    assert evidence.reason == Reason.bad_index


# --- relocation by distance -----------------------------------------------------------------------

REPEATS = utterances(
    "hello",
    "let me check that for you",  # 1
    "okay",
    "thanks",
    "sure",
    "one moment",
    "still there?",
    "let me check that for you",  # 7
)


@pytest.mark.parametrize(("cited", "expected"), [(2, 1), (3, 1), (5, 7), (6, 7), (4, 1)])
def test_repeated_phrase_resolves_to_the_occurrence_nearest_the_citation(cited: int, expected: int) -> None:
    # From 4 both are 3 away: the earlier one wins.
    evidence = align_one(cited, "let me check that for you", REPEATS)
    assert evidence.status is EvidenceStatus.relocated
    assert evidence.utterance == expected


def test_cited_occurrence_wins_over_any_other() -> None:
    assert align_one(7, "let me check that for you", REPEATS).status is EvidenceStatus.exact


# --- multi-span -----------------------------------------------------------------------------------


def test_ellipsis_joins_pieces_each_located() -> None:
    evidence = align_quote(CALL, 2, "I'll refund the $40 … in 5-7 business days")
    assert_offsets_slice_original(CALL, evidence)
    assert [piece.quote for piece in evidence] == ["I'll refund the $40", "in 5-7 business days"]
    assert all(piece.status is EvidenceStatus.exact and piece.utterance == 2 for piece in evidence)


def test_ellipsis_pieces_may_span_neighbouring_utterances_with_three_dots() -> None:
    turns = utterances(*[("agent", u.text) if u.index in (2, 3) else (u.speaker, u.text) for u in CALL])
    evidence = align_quote(turns, 2, "I'll refund the $40 today... I'll call you back at 3 pm")
    assert_offsets_slice_original(turns, evidence)
    assert [piece.utterance for piece in evidence] == [2, 3]
    assert all(piece.grounded for piece in evidence)


def test_ellipsis_pieces_said_by_different_speakers_are_refused() -> None:
    # The customer's words joined to the agent's: each piece verbatim, the whole said by nobody.
    evidence = align_quote(CALL, 2, "I was charged $40 twice ... I'll refund the $40 today")
    assert [piece.utterance for piece in evidence] == [1, 2]
    assert all(piece.status is EvidenceStatus.ungrounded and piece.reason == Reason.mixed_speakers
               for piece in evidence)


def test_ellipsis_piece_far_from_the_citation_is_not_accepted() -> None:
    evidence = align_quote(CALL, 0, "Thank you for calling Acme … i lost my debit card last week")
    assert evidence[0].status is EvidenceStatus.exact
    assert evidence[1].status is EvidenceStatus.ungrounded


def test_ellipsis_that_is_part_of_the_text_is_matched_whole() -> None:
    turns = utterances("Did as instructed... didn't stop the alerts!")
    evidence = align_quote(turns, 0, "Did as instructed... didn't stop the alerts!")
    assert len(evidence) == 1 and evidence[0].status is EvidenceStatus.exact


def test_quote_running_over_adjacent_utterances_of_one_speaker() -> None:
    turns = utterances(
        ("customer", "my name is patricia brown"),
        ("customer", "i lost my debit card"),
        ("agent", "which card would you like to replace"),
    )
    evidence = align_quote(turns, 0, "My name is Patricia Brown. I lost my debit card.")
    assert_offsets_slice_original(turns, evidence)
    assert [piece.utterance for piece in evidence] == [0, 1]
    assert all(piece.status is EvidenceStatus.normalized for piece in evidence)
    assert "".join(piece.quote for piece in evidence).replace(" ", "") == "MynameisPatriciaBrown.Ilostmydebitcard."


def test_quote_running_over_a_speaker_change_is_not_joined() -> None:
    turns = utterances(("customer", "i lost my debit card"), ("agent", "which card would you like to replace"))
    evidence = align_quote(turns, 0, "i lost my debit card which card would you like to replace")
    assert all(not piece.grounded for piece in evidence)


# --- fuzzy guards ---------------------------------------------------------------------------------


def test_invented_sentence_is_not_aligned_to_a_matching_prefix() -> None:
    turns = utterances("I'll refund the fee")
    evidence = align_one(0, "I'll refund the fee and upgrade your plan to premium for a year", turns)
    assert evidence.status is EvidenceStatus.ungrounded


@pytest.mark.parametrize(("original", "swapped"), [("debit", "credit"), ("checking", "savings"), ("cancel", "renew")])
def test_content_word_swap_is_never_exact_or_normalized(original: str, swapped: str) -> None:
    turns = utterances(f"okay so I will {original} the card on the {original} account today")
    evidence = align_one(0, f"I will {swapped} the card on the {original} account today", turns)
    assert evidence.status is EvidenceStatus.ungrounded
    assert evidence.reason == Reason.content_mismatch


def test_swapped_pronoun_is_a_content_change() -> None:
    turns = utterances("you will receive a replacement card in the mail")
    assert align_one(0, "I will receive a replacement card in the mail", turns).status is EvidenceStatus.ungrounded


def test_asr_style_text_against_written_quote() -> None:
    turns = utterances(
        "okay so i have order your replacement credit card and you should receive it in three to five business days"
    )
    written = "Okay, so I have ordered your replacement credit card; you should receive it in 3-5 business days."
    evidence = align_one(0, written, turns)
    assert evidence.status is EvidenceStatus.fuzzy
    assert evidence.utterance == 0


def test_asr_number_error_is_not_papered_over() -> None:
    turns = utterances("we will send your payment of one hundred and thirty dollars")
    evidence = align_one(0, "we will send your payment of one hundred and thirty five dollars", turns)
    assert evidence.reason == Reason.amount_mismatch


# --- the index ------------------------------------------------------------------------------------


def test_prepared_transcript_agrees_with_align_quote() -> None:
    prepared = PreparedTranscript(CALL)
    for cited, quote in [(2, "I'll refund the $40 today"), (0, "great thank you so much"), (1, "charged $41")]:
        assert prepared.align_quote(cited, quote) == align_quote(CALL, cited, quote)


def test_align_quote_does_not_reuse_an_index_across_transcripts() -> None:
    first = utterances("the fee is $10")
    second = utterances("the fee is $20")
    assert align_one(0, "the fee is $10", first).status is EvidenceStatus.exact
    assert align_one(0, "the fee is $10", second).reason == Reason.amount_mismatch


def test_empty_quote_is_ungrounded() -> None:
    assert align_one(0, " … ").reason == Reason.not_found
    assert align_one(0, "um, uh").reason == Reason.not_found


def test_fuzzy_relocation_in_a_long_call_finds_the_right_utterance() -> None:
    filler = [f"line {number} about nothing in particular, weather and traffic" for number in range(200)]
    filler[137] = "so the replacement card goes out to your home address tomorrow morning"
    turns = utterances(*filler)
    evidence = align_one(3, "the replacement card goes out to your home adress tomorrow morning", turns)
    assert evidence.status is EvidenceStatus.relocated
    assert evidence.utterance == 137
    assert evidence.score < 1.0


# --- the fuzzy stage decided at the cited utterance --------------------------------------------------


def test_number_said_nowhere_else_is_refused_at_the_citation_without_ranking_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_ranking(*_: object) -> None:
        raise AssertionError("candidates were ranked although no other utterance says $45")

    monkeypatch.setattr(PreparedTranscript, "_rank", no_ranking)
    evidence = align_one(2, "I'll refund the $45 today")
    assert evidence.status is EvidenceStatus.ungrounded
    assert evidence.reason == Reason.amount_mismatch
    assert evidence.utterance == 2


def test_number_refused_at_the_citation_is_still_found_where_it_was_said() -> None:
    # The cited utterance says $30; another says $40 in nearly the quote's words: that one is the answer.
    turns = utterances(
        "I will refund you the $30 tomorrow morning for the late fee.",
        "okay thanks",
        "Sorry, let me correct that.",
        "So I will refund you the $40 tomorrow morning for the late fee.",
    )
    evidence = align_one(0, "I'll refund you $40 tomorrow morning for the late fee", turns)
    assert evidence.status is EvidenceStatus.relocated
    assert evidence.utterance == 3
    assert evidence.reason is None


def test_refusal_decided_at_the_citation_matches_the_full_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipping the ranking never changes an answer: every quote gets what the full search gives."""
    turns = utterances(
        ("agent", "Thanks for calling, I can see order 48213 and the $120 charge from March 3rd."),
        ("customer", "Yes that is the one, I was not expecting it until the 10th of March."),
        ("customer", "And I still have not received the refund of $45 you promised."),
        ("agent", "I'll refund the $45 today and waive the $12 fee on order 48213."),
        ("agent", "It will not show for 5-7 business days, and you'll get an email at 3 pm."),
        ("customer", "Great, and the other order 48214 was $120 as well."),
    )
    quotes = [
        (0, "I can see order 48218 and the $120 charge from March 3rd"),
        (1, "I was not expecting it until the 12th of March"),
        (2, "I still have received the refund of $45 you promised"),
        (2, "I still have not received the refund of $54 you promised"),
        (3, "I'll refund the $45 today and waive the $12 fee on order 48214"),
        (3, "I'll refund the $46 today and waive the $12 fee on order 48213"),
        (4, "It will not show for 5-9 business days"),
        (4, "It will show for 5-7 business days, and you'll get an email at 3 pm"),
        (5, "the other order 48214 was $125 as well"),
        (1, "And I still have not received the refund of $40 you promised"),
    ]
    shortcut = PreparedTranscript(turns)
    taken: list[object] = []
    decide = PreparedTranscript._decided_at_cited

    def counting(self: PreparedTranscript, *args: object) -> object:
        answer = decide(self, *args)  # type: ignore[arg-type]
        taken.extend([answer] if answer is not None else [])
        return answer

    monkeypatch.setattr(PreparedTranscript, "_decided_at_cited", counting)
    decided = [shortcut.align_quote(cited, quote) for cited, quote in quotes]
    assert len(taken) >= 5, "the shortcut under test was hardly taken"
    monkeypatch.setattr(PreparedTranscript, "_decided_at_cited", lambda *_: None)
    full = PreparedTranscript(turns)
    assert decided == [full.align_quote(cited, quote) for cited, quote in quotes]
    assert all(not piece.grounded for evidence in decided for piece in evidence)


def test_refusal_over_a_turn_break_outscores_the_cited_utterance_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # The quote runs from the cited utterance into the same speaker's next one, with one amount changed:
    # the refusal reported is the closer, two-utterance span, with or without the ranking of candidates.
    turns = utterances(
        ("agent", "I'll refund the $45 today and waive the $12 late fee on your"),
        ("agent", "account today"),
        ("customer", "Thanks"),
    )
    quote = "refund the $45 today and waive the $13 late fee on your account today"
    full_search = PreparedTranscript(turns)
    monkeypatch.setattr(PreparedTranscript, "_decided_at_cited", lambda *_: None)
    expected = full_search.align_quote(0, quote)
    monkeypatch.undo()

    def no_ranking(*_: object) -> None:
        raise AssertionError("candidates were ranked although no other utterance says $13")

    monkeypatch.setattr(PreparedTranscript, "_rank", no_ranking)
    (evidence,) = PreparedTranscript(turns).align_quote(0, quote)
    assert [evidence] == expected
    assert evidence.status is EvidenceStatus.ungrounded
    assert evidence.reason == Reason.amount_mismatch
    assert evidence.utterance == 0
    # Scored on the span over both utterances, not on the cited one alone.
    single = PreparedTranscript(turns[:1]).align_quote(0, quote)[0]
    assert evidence.score is not None and single.score is not None and evidence.score > single.score
