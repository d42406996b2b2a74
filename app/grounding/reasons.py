"""Reason codes: why a piece of evidence or a claim is not grounded (or was moved).

They are stored as short strings (`VerifiedEvidence.reason`, `VerifiedClaim.reason`); this enum is
the list of every value the verifier writes. docs/grounding.md explains each one.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # Evidence level.
    not_found = "not_found"
    """Nothing in the transcript is close enough to the quote."""
    bad_index = "bad_index"
    """The cited utterance index does not exist; on a relocated span it says why it was moved."""
    number_mismatch = "number_mismatch"
    amount_mismatch = "amount_mismatch"
    date_mismatch = "date_mismatch"
    time_mismatch = "time_mismatch"
    id_mismatch = "id_mismatch"
    negation_mismatch = "negation_mismatch"
    content_mismatch = "content_mismatch"
    """The closest span differs in a content word that is not an ASR slip ("debit" vs "credit")."""
    mixed_speakers = "mixed_speakers"
    """The pieces of a quote joined by an ellipsis were said by different speakers: one passage is one
    speaker's."""

    # Claim level.
    no_evidence = "no_evidence"
    unsupported_number = "unsupported_number"
    """The claim states a number, amount, time or numeric date its evidence does not contain."""
    unsupported_date = "unsupported_date"
    """The claim names a day or month ("Friday", "tomorrow") its evidence does not contain."""
    unsupported_id = "unsupported_id"
    unsupported_name = "unsupported_name"
    """The claim gives a name (a capitalized word inside a sentence, a given name opening one before its verb or
    written in capitals) that the call never says: "Elizabeth Brown reported a lost card" when the caller said
    "my name is patricia brown", "Susan paid the balance" or "Escalated to MARIA" when nobody said either."""
    unsupported_negation = "unsupported_negation"
    """The claim is negative ("will not") but none of its evidence is."""
    negated_in_evidence = "negated_in_evidence"
    """The claim states positively what its evidence says only under a negation: "the customer cancelled"
    on "I did not cancel", "the agent will waive the fee" on "I will not waive the fee"."""
    conditional_in_evidence = "conditional_in_evidence"
    """The claim states as a fact what its evidence says only under a condition or a wish: "the agent will
    send a replacement" on "if it has not arrived by Friday, I will send a replacement", "the agent waived
    the fee" on "I wish I could waive the fee"."""
    asked_in_evidence = "asked_in_evidence"
    """The claim states as a fact what its evidence only asks: "the agent waived the late fee" on "Can you
    waive the late fee?"."""
    future_in_evidence = "future_in_evidence"
    """The claim says done what its evidence says only will, can or should be done: "the agent issued a refund"
    on "I'll issue the refund today", "the customer got a refund" on "you can't get a refund until Friday"."""
    opposite_in_evidence = "opposite_in_evidence"
    """The claim says a word whose opposite its evidence says instead: "the refund was approved" on "your
    refund has been denied", "debit card" on "credit card" (app/text/lexicon.py OPPOSITE_WORDS)."""
    mixed_scripts = "mixed_scripts"
    """A word of the claim mixes Latin letters with look-alikes of another alphabet ("n\u043et", a Cyrillic
    о): it reads as a word its characters are not, so its details cannot be checked."""
    owner_mismatch = "owner_mismatch"
    """An agent-owned action item rests only on customer speech."""
    speaker_mismatch = "speaker_mismatch"
    """The claim says what "the customer" (or "the agent") said, but none of its evidence is that party's
    speech: all of it is the other party's, or a speaker of unknown role."""
