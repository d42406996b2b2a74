"""Plain text: `Speaker: text` lines, stamps, continuation lines, odd speaker names."""

from __future__ import annotations

import pytest

from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_text


def test_agent_customer_lines_with_stamps_and_continuations() -> None:
    parsed = parse_text(
        "[00:03] Agent: Thank you for calling Acme.\n"
        "[00:07] Customer: Hi, I'm calling about my bill.\n"
        "   It went up by twenty dollars.\n"
        "\n"
        "[01:02:05.5] Agent: Let me check that for you.\n"
    )
    utterances = parsed.transcript.utterances
    assert parsed.detected_format == "text"
    assert [(u.speaker, u.role, u.role_confidence) for u in utterances] == [
        ("Agent", Role.agent, 1.0),
        ("Customer", Role.customer, 1.0),
        ("Agent", Role.agent, 1.0),
    ]
    assert utterances[1].text == "Hi, I'm calling about my bill. It went up by twenty dollars."
    assert [u.start for u in utterances] == [3.0, 7.0, 3725.5]
    assert all(u.end is None for u in utterances)


def test_stamp_between_speaker_and_colon() -> None:
    parsed = parse_text("Agent [00:01]: Hello.\nCustomer [00:04]: Hi.\n")
    assert [u.start for u in parsed.transcript.utterances] == [1.0, 4.0]


@pytest.mark.parametrize(
    ("line", "speaker", "start"),
    [
        ("Agent (00:05): Thank you for calling.", "Agent", 5.0),
        ("Speaker 1 (0:05): Thank you for calling.", "Speaker 1", 5.0),
        ("Agent (01:02:03): Thank you for calling.", "Agent", 3723.0),
        ("Agent(00:05):Thank you for calling.", "Agent", 5.0),
        ("(00:05) Agent: Thank you for calling.", "Agent", 5.0),
        ("[00:05] Agent: Thank you for calling.", "Agent", 5.0),
        ("Dana (billing) (00:05): Thank you for calling.", "Dana (billing)", 5.0),
    ],
)
def test_parenthesised_stamp_is_the_start_not_part_of_the_name(line: str, speaker: str, start: float) -> None:
    parsed = parse_text(f"{line}\nCustomer (1:02:09): My bill is wrong.\n")
    utterances = parsed.transcript.utterances
    assert parsed.detected_format == "text"
    assert [(u.speaker, u.start, u.text) for u in utterances] == [
        (speaker, start, "Thank you for calling."),
        ("Customer", 3729.0, "My bill is wrong."),
    ]


@pytest.mark.parametrize("stamp", ["(1:5)", "(00:05) Dana", "(ext. 12:30)"])
def test_a_name_never_swallows_a_parenthesised_stamp(stamp: str) -> None:
    # Not `mm:ss` (or words after it): no speaker line, so the name cannot end inside the parentheses.
    parsed = parse_text(f"Agent: Thank you for calling.\nAgent {stamp}: Hello?\nCustomer: Hi.\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["Agent", "Customer"]
    assert parsed.transcript.utterances[0].text == f"Thank you for calling. Agent {stamp}: Hello?"


def test_named_speakers_get_inferred_roles() -> None:
    parsed = parse_text(
        "Dana Smith: Good morning, thank you for calling Harbor Bank, how can I help you?\n"
        "Mr. O'Brien: I lost my debit card yesterday and I need a new one.\n"
        "Dana Smith: I'm sorry to hear that. Can I have your account number?\n"
    )
    roles = {u.speaker: u.role for u in parsed.transcript.utterances}
    assert roles == {"Dana Smith": Role.agent, "Mr. O'Brien": Role.customer}


def test_colon_inside_text_and_urls_are_not_speakers() -> None:
    parsed = parse_text(
        "Agent: The branch opens at 9:30, see https://example.com/hours for details.\n"
        "https://example.com/other is also useful\n"
        "Customer: Thanks.\n"
    )
    utterances = parsed.transcript.utterances
    assert len(utterances) == 2
    assert utterances[0].text.endswith("https://example.com/other is also useful")




def test_leading_line_without_speaker() -> None:
    error = ingest_error("\nthis is a note about the call\nAgent: hello\n", fmt="text")
    assert error.location == "line 2"
    assert "Speaker: text" in error.problem


@pytest.mark.parametrize("stamp", ["[00:75]", "(00:75)"])
def test_invalid_stamp_names_the_line(stamp: str) -> None:
    error = ingest_error(f"[00:01] Agent: hello\nCustomer {stamp}: hi\n")
    assert error.location == "line 2"
    assert stamp in error.problem


def test_stamps_going_backwards_are_rejected() -> None:
    error = ingest_error("[00:10] Agent: hello\n[00:02] Customer: hi\n")
    assert error.location == "line 2"
    assert "time order" in error.problem


def test_empty_speaker_lines_are_dropped_with_a_warning() -> None:
    parsed = parse_text("Agent: Hello, thanks for calling.\nCustomer:\nCustomer: My bill is wrong.\n")
    assert [u.text for u in parsed.transcript.utterances] == [
        "Hello, thanks for calling.",
        "My bill is wrong.",
    ]
    assert any("empty" in warning for warning in parsed.warnings)


def test_one_speaker_only_is_accepted_with_a_warning() -> None:
    parsed = parse_text("Speaker 1: Hello there.\nSpeaker 1: Anyone?\n")
    assert {u.role for u in parsed.transcript.utterances} == {Role.unknown}
    assert any("one speaker" in warning for warning in parsed.warnings)


def test_dialogsum_style_hash_speakers() -> None:
    parsed = parse_text("#Person1#: Hello, how can I help you?\n#Person2#: I need to open an account.\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["#Person1#", "#Person2#"]


def test_one_named_speaker_keeps_its_role_with_a_warning() -> None:
    parsed = parse_text("Agent: Hello, thanks for calling.\nAgent: Hello? Are you there?\n")
    assert {(u.role, u.role_confidence) for u in parsed.transcript.utterances} == {(Role.agent, 1.0)}
    assert any("one speaker" in warning for warning in parsed.warnings)


def test_a_header_block_with_a_key_of_no_call_field_is_read_whole() -> None:
    # "Tenant:" (no call field) ended the header: the "Team:" and "Date:" below it became utterances, the
    # team and the start were lost, and "Team" even got the agent role.
    parsed = parse_text(
        "Call ID: abc-1\nTenant: acme\nTeam: red\nDate: 2026-12-01 10:00\n\n"
        "Agent: Hello, thanks for calling.\nCustomer: Hi, my bill is wrong.\n"
    )
    assert [u.speaker for u in parsed.transcript.utterances] == ["Agent", "Customer"]
    assert (parsed.transcript.metadata.external_id, parsed.transcript.metadata.team) == ("abc-1", "red")
    assert parsed.transcript.metadata.started_at is not None
    assert any("not kept" in w and "Tenant" in w for w in parsed.warnings)


@pytest.mark.parametrize("text", [
    "Title: Call 5\nRep: Hello there\n\nCaller: Hi\nRep: How can I help?\n",  # a party's label: the first turn
    "Title: Call 5\nJohn: Hello there\n\nMary: Hi\nJohn: How can I help?\n",  # speaks below: a speaker
    "Call ID: 7\nBrand: Acme\nRegion: EMEA\n\nAgent: Hi\nCustomer: Hello\n",  # most keys unknown: not a header
])
def test_a_first_block_is_no_header_when_it_may_be_turns(text: str) -> None:
    speakers = [u.speaker for u in parse_text(text).transcript.utterances]
    assert len(speakers) >= 3, speakers
