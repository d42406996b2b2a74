"""Role assignment: labels that name roles, inference from what is said, overrides, benchmarks."""

from __future__ import annotations

import pytest

from app.ingest import parse_bytes
from app.ingest.roles import (
    COMPLEMENT_ROLE_CONFIDENCE,
    EXTRA_SPEAKER_CONFIDENCE,
    LOW_CONFIDENCE_WARNING_BELOW,
    MAX_INFERRED_CONFIDENCE,
    assign_agent,
    infer_roles,
    role_from_label,
    roles_of,
)
from app.llm.heuristic import extract_heuristic
from app.schemas.extraction import Owner
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
        # Departments named after whom they serve answer for the company: the first word ("Customer") made
        # them the customer, and the real customer the agent by complement.
        ("Customer Service", Role.agent),
        ("Member Services", Role.agent),
        ("Client Services", Role.agent),
        ("Guest Relations", Role.agent),
        ("User Support", Role.agent),
        ("Customer Care", Role.agent),
        ("CUSTOMER SUPPORT", Role.agent),
        ("Customer Success", Role.agent),
        ("Customer Help", Role.agent),
        ("Help Desk", Role.agent),
        ("Tech Support", Role.agent),
        ("Customer Service Representative", Role.agent),
        ("Dana (Customer Service)", Role.agent),
        ("Customer Care Dana", Role.agent),
        # The company's staff.
        ("Supervisor", Role.agent),
        ("Manager", Role.agent),
        ("Team Lead", Role.agent),
        ("Rep", Role.agent),
        ("Specialist", Role.agent),
        ("Advisor", Role.agent),
        ("Associate", Role.agent),
        ("Operator", Role.agent),
        ("Technician", Role.agent),
        ("Account Manager", Role.agent),
        # Machines are neither party.
        ("IVR", Role.unknown),
        ("System", Role.unknown),
        ("Bot", Role.unknown),
        ("Virtual Agent", Role.unknown),
        ("Auto Attendant", Role.unknown),
        ("Automated", Role.unknown),
        ("Recording", Role.unknown),
        ("Announcement", Role.unknown),
        ("Hold Message", Role.unknown),
        ("Customer Support Bot", Role.unknown),
        # Words that name a role only in their phrase.
        ("Lead", None),  # a sales prospect as often as not
        ("Help", None),
        ("Auto Claims", None),
        ("Customer 2 Home", Role.customer),
        # A customer with a title of their own, and people whose labels hold a machine's word (review).
        ("Customer (IT Manager)", Role.customer),
        ("Customer - Office Manager", Role.customer),
        ("Caller, Manager", Role.customer),
        ("Customer Consultant", Role.customer),
        ("Customer System", Role.customer),
        ("Customer Recording", Role.customer),
        ("System Admin", None),
        ("Music Teacher", None),
        ("Billing IVR", Role.unknown),
        ("Bot 2", Role.unknown),
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
        utterances(("spk_1", "I need to cancel my order."), ("spk_0", "Sure.")), known={"spk_0": Role.agent}
    )
    roles = {u.speaker: (u.role, u.role_confidence) for u in inference.utterances}
    assert roles == {"spk_0": (Role.agent, 1.0), "spk_1": (Role.customer, COMPLEMENT_ROLE_CONFIDENCE)}
    assert inference.warnings == []


def test_a_second_unnamed_speaker_is_a_guess_with_a_warning_not_a_confident_customer() -> None:
    # All unnamed speakers took the complement at 0.9, silently: a transferred agent became a confident
    # customer. The most customer-like one is the other party; the rest are a guess, and say so.
    inference = infer_roles(
        utterances(
            ("spk_1", "I need to cancel my order."),
            ("spk_0", "Sure, let me transfer you."),
            ("spk_2", "Thanks for holding, this is Mike from billing. I've cancelled the order."),
        ),
        known={"spk_0": Role.agent},
    )
    roles = {u.speaker: (u.role, u.role_confidence) for u in inference.utterances}
    assert roles == {
        "spk_0": (Role.agent, 1.0),
        "spk_1": (Role.customer, COMPLEMENT_ROLE_CONFIDENCE),
        "spk_2": (Role.customer, EXTRA_SPEAKER_CONFIDENCE),
    }
    [warning] = inference.warnings
    assert "more than two speakers: 'spk_2' taken as customer with low confidence (0.50)" in warning
    assert "second agent" in warning
    assert inference.confidence == EXTRA_SPEAKER_CONFIDENCE
    # Only a customer named: the most agent-like unnamed speaker is the agent, the others a guess.
    named_customer = infer_roles(
        utterances(("Caller", "My card was declined."), ("A", "Okay."), ("B", "Thanks for calling, I'll check that.")),
    )
    assert {u.speaker: (u.role, u.role_confidence) for u in named_customer.utterances} == {
        "Caller": (Role.customer, 1.0),
        "B": (Role.agent, COMPLEMENT_ROLE_CONFIDENCE),
        "A": (Role.agent, EXTRA_SPEAKER_CONFIDENCE),
    }


def test_an_unnamed_speaker_beside_both_named_parties_is_a_guess() -> None:
    inference = infer_roles(
        utterances(("Agent", "How can I help?"), ("Customer", "My card was declined."), ("Dana", "Hello?"))
    )
    assert {u.speaker: (u.role, u.role_confidence) for u in inference.utterances} == {
        "Agent": (Role.agent, 1.0),
        "Customer": (Role.customer, 1.0),
        "Dana": (Role.customer, EXTRA_SPEAKER_CONFIDENCE),
    }
    assert any("'Dana' taken as customer" in warning for warning in inference.warnings)


def test_a_department_label_is_the_agent_and_its_caller_the_customer() -> None:
    # The probe's call: "Customer Service" was stored as the customer (1.0), John as the agent (0.9), and
    # the refund the agent promised became the customer's task.
    parsed = parse_bytes(
        b"Customer Service: Thank you for calling Acme, this is Dana. I will refund the duplicate charge today.\n"
        b"John Smith: Hi, I was charged twice for my order last week.\n",
        source_name="probe.txt",
    )
    transcript = parsed.transcript
    assert [(u.speaker, u.role, u.role_confidence) for u in transcript.utterances] == [
        ("Customer Service", Role.agent, 1.0),
        ("John Smith", Role.customer, COMPLEMENT_ROLE_CONFIDENCE),
    ]
    items = extract_heuristic(transcript).action_items
    assert items and all(item.owner is Owner.agent for item in items if "refund" in item.text.lower())


def test_a_supervisor_is_the_agents_side_and_a_machine_neither_party() -> None:
    inference = infer_roles(
        utterances(
            ("IVR", "Your call may be recorded. Please hold for the next available agent."),
            ("Agent", "Thanks for calling, how can I help?"),
            ("Maria", "I was charged a late fee."),
            ("Supervisor", "I'll waive the fee today."),
        )
    )
    roles = {u.speaker: (u.role, u.role_confidence) for u in inference.utterances}
    assert roles == {
        "IVR": (Role.unknown, 1.0),
        "Agent": (Role.agent, 1.0),
        "Maria": (Role.customer, COMPLEMENT_ROLE_CONFIDENCE),
        "Supervisor": (Role.agent, 1.0),
    }
    assert inference.warnings == []


def test_a_machine_is_left_out_of_inference_between_the_two_parties() -> None:
    inference = infer_roles(utterances(("Auto Attendant", "Thank you for calling Acme. Please hold."), *BANK_CALL))
    roles = {u.speaker: u.role for u in inference.utterances}
    assert roles == {"Auto Attendant": Role.unknown, "X": Role.agent, "Y": Role.customer}
    assert inference.warnings == []


def test_one_speaker_besides_a_machine_is_unknown_with_a_warning() -> None:
    inference = infer_roles(utterances(("System", "Please hold."), ("spk_0", "Hello? I need help with my bill.")))
    assert {u.speaker: (u.role, u.role_confidence) for u in inference.utterances} == {
        "System": (Role.unknown, 1.0),
        "spk_0": (Role.unknown, None),
    }
    assert any("only one speaker label ('spk_0') besides 'System'" in warning for warning in inference.warnings)


def test_a_source_that_says_unknown_is_kept_not_complemented() -> None:
    inference = infer_roles(
        utterances(("Agent", "How can I help?"), ("spk_9", "Please hold."), ("Dana", "My card was declined.")),
        known={"spk_9": Role.unknown},
    )
    assert {u.speaker: u.role for u in inference.utterances} == {
        "Agent": Role.agent, "spk_9": Role.unknown, "Dana": Role.customer,
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
    # The third speaker's side is a guess: it says so, and its confidence is no more than a coin's.
    assert next(u.role_confidence for u in inference.utterances if u.speaker == "Z") == EXTRA_SPEAKER_CONFIDENCE
    assert any("'Z' taken as customer" in warning for warning in inference.warnings)


def test_assign_agent_overrides_everything() -> None:
    assigned = assign_agent(utterances(*BANK_CALL), "Y").utterances
    assert {(u.speaker, u.role, u.role_confidence) for u in assigned} == {
        ("X", Role.customer, 1.0),
        ("Y", Role.agent, 1.0),
    }


def test_assign_agent_leaves_a_machine_neither_party() -> None:
    assigned = assign_agent(utterances(("IVR", "Please hold."), *BANK_CALL), "X").utterances
    assert {u.speaker: u.role for u in assigned} == {"IVR": Role.unknown, "X": Role.agent, "Y": Role.customer}


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


def test_roles_of_keeps_a_stored_unknown_that_has_a_confidence() -> None:
    # Ingestion stored the IVR as neither party (1.0): reading the call back must not make it a customer.
    stored = _utterances(
        [("IVR", "Please hold."), ("Dana", "Thanks for calling."), ("Sam", "My card was declined.")],
        [Role.unknown, Role.agent, Role.customer],
    )
    stored[0] = stored[0].model_copy(update={"role_confidence": 1.0})
    assert roles_of(stored) == [Role.unknown, Role.agent, Role.customer]


def test_roles_of_does_not_take_the_first_speaker_as_agent() -> None:
    # Outbound calls and chats open with the customer: order is no cue, content is.
    utterances = _utterances(
        [
            ("S1", "Hi, my internet is not working and I need help."),
            ("S2", "I'm sorry to hear that. Can I have your account number?"),
        ]
    )
    assert roles_of(utterances) == [Role.customer, Role.agent]


def test_the_extra_speakers_warning_names_a_few_and_counts_the_rest() -> None:
    lines = [("spk_0", "Thank you for calling, how can I help you?")]
    lines += [(f"spk_{n}", "My card was declined.") for n in range(1, 10)]
    [warning] = infer_roles(utterances(*lines), known={"spk_0": Role.agent}).warnings
    assert "'spk_2', 'spk_3', 'spk_4', 'spk_5', 'spk_6' and 3 more taken as customer" in warning


@pytest.mark.parametrize(("text", "warned"), [
    # A customer labelled with a staff title: both speakers on the agent's side, and nothing else said so.
    (b"Agent: Thank you for calling Acme, how can I help?\nTech: My router keeps dropping the connection.\n", True),
    (b"Customer: Hi, I was charged twice.\nCaller: Yes, that's my account.\n", True),
    (b"Agent: Thank you for calling Acme.\nCustomer: Hi, I was charged twice.\n", False),
    (b"IVR: Your call may be recorded.\nAgent: Thank you for calling Acme.\nCustomer: Hi.\n", False),
    (b"IVR: Your call may be recorded.\nAgent: Thank you for calling Acme, this is Dana.\n", False),  # one side
])
def test_a_call_whose_speakers_are_all_on_one_side_is_flagged(text: bytes, warned: bool) -> None:
    warnings = parse_bytes(text, source_name="call.txt").transcript.warnings
    assert any("every speaker is on the" in warning for warning in warnings) is warned
