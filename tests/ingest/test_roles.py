"""Role assignment: labels that name roles, inference from what is said, overrides, benchmarks."""

from __future__ import annotations

import pytest

from app.ingest.roles import (
    COMPLEMENT_ROLE_CONFIDENCE,
    LOW_CONFIDENCE_WARNING_BELOW,
    MAX_INFERRED_CONFIDENCE,
    assign_agent,
    infer_roles,
    role_from_label,
    roles_of,
)
from app.schemas.transcript import Role, Utterance
from bench.roles.convert import harper_valley_calls, tweetsumm_calls
from bench.roles.run import TARGET_CALL_ACCURACY, score
from tests.support.data import require_shared_data


def utterances(*lines: tuple[str, str]) -> list[Utterance]:
    return [Utterance(index=i, speaker=speaker, text=text) for i, (speaker, text) in enumerate(lines)]


BANK_CALL = (
    ("X", "Thank you for calling First Harbor Bank, my name is Lee, how can I help you today?"),
    ("Y", "Hi, I lost my debit card and I need to cancel it."),
    ("X", "I'm sorry to hear that. Can I have your account number for verification?"),
    ("Y", "Sure, it's 4471 2290."),
    ("X", "Thank you. I've blocked the card and I'll send you a new one within five days."),
)


@pytest.mark.parametrize(
    ("label", "role"),
    [
        ("Agent", Role.agent),
        ("AGENT", Role.agent),
        ("agent 2", Role.agent),
        ("spk_agent", Role.agent),
        ("Representative", Role.agent),
        ("Customer", Role.customer),
        ("caller", Role.customer),
        ("Speaker Customer", Role.customer),
        ("A", None),
        ("spk_0", None),
        ("Dana Smith", None),
        ("Agent Smith from accounts", None),  # a sentence-like label names nobody's role
    ],
)
def test_role_from_label(label: str, role: Role | None) -> None:
    assert role_from_label(label) is role


def test_inferred_agent_is_the_one_who_serves_whoever_speaks_first() -> None:
    forward = infer_roles(utterances(*BANK_CALL))
    customer_first = infer_roles(utterances(*BANK_CALL[1:]))
    for inference in (forward, customer_first):
        assert {u.speaker: u.role for u in inference.utterances} == {"X": Role.agent, "Y": Role.customer}
        assert inference.confidence is not None
        assert LOW_CONFIDENCE_WARNING_BELOW <= inference.confidence <= MAX_INFERRED_CONFIDENCE
        assert inference.warnings == []


def test_inference_reads_typographic_apostrophes() -> None:
    inference = infer_roles(
        utterances(("P", "My parcel still hasn’t arrived."), ("Q", "We’re sorry to hear that, can you DM us?"))
    )
    assert {u.speaker: u.role for u in inference.utterances} == {"P": Role.customer, "Q": Role.agent}


def test_no_cues_means_low_confidence_and_a_warning() -> None:
    inference = infer_roles(utterances(("A", "Okay."), ("B", "Right."), ("A", "Yes.")))
    assert inference.confidence == 0.5
    assert any("low confidence" in warning for warning in inference.warnings)
    assert {u.role for u in inference.utterances} == {Role.agent, Role.customer}


def test_single_speaker_roles_unknown_with_warning() -> None:
    inference = infer_roles(utterances(("spk_0", "Thank you for calling."), ("spk_0", "Hello?")))
    assert inference.confidence is None
    assert {(u.role, u.role_confidence) for u in inference.utterances} == {(Role.unknown, None)}
    assert any("one speaker" in warning for warning in inference.warnings)


def test_known_roles_are_kept_and_the_rest_take_the_complement() -> None:
    inference = infer_roles(
        utterances(("spk_1", "I need to cancel my order."), ("spk_0", "Sure."), ("spk_2", "Me too.")),
        known={"spk_0": Role.agent},
    )
    roles = {u.speaker: (u.role, u.role_confidence) for u in inference.utterances}
    assert roles == {
        "spk_0": (Role.agent, 1.0),
        "spk_1": (Role.customer, COMPLEMENT_ROLE_CONFIDENCE),
        "spk_2": (Role.customer, COMPLEMENT_ROLE_CONFIDENCE),
    }


def test_only_customer_named_makes_the_other_the_agent() -> None:
    inference = infer_roles(utterances(("Caller", "Hello?"), ("Dana", "Hi.")))
    assert {u.speaker: u.role for u in inference.utterances} == {"Caller": Role.customer, "Dana": Role.agent}


def test_three_speakers_one_agent() -> None:
    inference = infer_roles(utterances(*BANK_CALL, ("Z", "My wife lost her card too, can you help me?")))
    assert {u.speaker: u.role for u in inference.utterances} == {
        "X": Role.agent,
        "Y": Role.customer,
        "Z": Role.customer,
    }


def test_assign_agent_overrides_everything() -> None:
    assigned = assign_agent(utterances(*BANK_CALL), "Y")
    assert {(u.speaker, u.role, u.role_confidence) for u in assigned} == {
        ("X", Role.customer, 1.0),
        ("Y", Role.agent, 1.0),
    }


def test_harper_valley_roles_hidden_are_recovered() -> None:
    root = require_shared_data("harper_valley_bank")
    for text_source in ("human", "asr"):
        result = score(f"hvb-{text_source}", harper_valley_calls(root, text_source=text_source))
        assert result.calls == len(list((root / "transcript").glob("*.json")))
        assert result.call_accuracy >= TARGET_CALL_ACCURACY, result.errors


# Every third dialog keeps this test to a few seconds; `python -m bench.roles.run` scores all of them.
TWEETSUMM_SAMPLE_STEP = 3


def test_tweetsumm_roles_hidden_are_recovered() -> None:
    path = require_shared_data("tweetsumm", "tweetsumm_train_joined.jsonl")
    sample = list(tweetsumm_calls(path))[::TWEETSUMM_SAMPLE_STEP]
    result = score("tweetsumm", sample)
    assert result.calls == len(sample) > 250
    assert result.call_accuracy >= TARGET_CALL_ACCURACY, result.errors[:10]


def _utterances(lines: list[tuple[str, str]], roles: list[Role] | None = None) -> list[Utterance]:
    roles = roles or [Role.unknown] * len(lines)
    return [
        Utterance(index=i, speaker=speaker, role=role, text=text)
        for i, ((speaker, text), role) in enumerate(zip(lines, roles, strict=True))
    ]


def test_roles_of_keeps_stored_roles() -> None:
    utterances = _utterances([("A", "Hello"), ("B", "Hi")], [Role.customer, Role.agent])
    assert roles_of(utterances) == [Role.customer, Role.agent]


def test_roles_of_reads_labels_that_name_roles() -> None:
    utterances = _utterances([("Caller", "Hello?"), ("Rep 12", "Hi."), ("Caller", "Hi")])
    assert roles_of(utterances) == [Role.customer, Role.agent, Role.customer]


def test_roles_of_infers_unstored_roles_from_content() -> None:
    utterances = _utterances(
        [
            ("spk_0", "Hi, I'm calling because my card was declined."),
            ("spk_1", "Thank you for calling, how can I help you today?"),
            ("spk_0", "My card was declined at the store."),
        ]
    )
    assert roles_of(utterances) == [Role.customer, Role.agent, Role.customer]


def test_roles_of_fills_a_known_speakers_unstored_turns() -> None:
    utterances = _utterances(
        [("Dana", "Thanks for calling."), ("Sam", "Hi."), ("Dana", "How can I help?")],
        [Role.agent, Role.unknown, Role.unknown],
    )
    assert roles_of(utterances) == [Role.agent, Role.customer, Role.agent]


def test_roles_of_does_not_take_the_first_speaker_as_agent() -> None:
    # Outbound calls and chats open with the customer: order is no cue, content is.
    utterances = _utterances(
        [
            ("S1", "Hi, my internet is not working and I need help."),
            ("S2", "I'm sorry to hear that. Can I have your account number?"),
        ]
    )
    assert roles_of(utterances) == [Role.customer, Role.agent]
