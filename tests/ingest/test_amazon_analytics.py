"""Transcribe Call Analytics and Contact Lens: roles from the source, detected insights as hints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.ingest import load_transcript
from app.ingest.parsers._amazon_analytics import role_of_participant
from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_json_value
from tests.support.data import require_shared_data

FIXTURES = Path(__file__).parent / "fixtures"


def test_call_analytics_sample_keeps_roles_and_insights() -> None:
    path = require_shared_data("stt_formats", "aws_transcribe_call_analytics", "example-call.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    transcript = parsed.transcript
    assert parsed.detected_format == "aws_call_analytics"
    assert len(transcript.utterances) == len(raw["Transcript"])
    for utterance, turn in zip(transcript.utterances, raw["Transcript"], strict=True):
        assert utterance.text == turn["Content"]
        assert utterance.role.value == turn["ParticipantRole"].lower()
        assert utterance.role_confidence == 1.0
        assert utterance.start == turn["BeginOffsetMillis"] / 1000
    assert transcript.metadata.external_id == raw["JobName"]
    hints = transcript.vendor_hints
    assert hints["vendor"] == "aws_call_analytics"
    assert hints["categories"] == raw["Categories"]["MatchedCategories"]
    # Each action item quotes the characters its offsets mark in the utterance it points at.
    assert hints["action_items"]
    for item in hints["action_items"]:
        utterance = transcript.utterances[item["utterance_index"]]
        assert utterance.text[item["char_start"] : item["char_end"]] == item["text"]
    assert "I will email you a confirmation" in hints["action_items"][0]["text"]
    assert {"issues", "outcomes"} <= hints.keys()


def test_contact_lens_sample() -> None:
    path = require_shared_data("stt_formats", "amazon_connect_contact_lens", "contact_lens_postcall_voice_v1.1.0.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    assert parsed.detected_format == "contact_lens"
    transcript = parsed.transcript
    assert transcript.metadata.external_id == raw["CustomerMetadata"]["ContactId"]
    assert [u.speaker for u in transcript.utterances] == [t["ParticipantId"] for t in raw["Transcript"]]
    assert {u.role for u in transcript.utterances} == {Role.agent, Role.customer}
    assert transcript.vendor_hints == {}  # nothing detected in this call


def test_contact_lens_issue_offsets_and_dropped_empty_turn() -> None:
    parsed = load_transcript(FIXTURES / "contact_lens_issues.json")
    transcript = parsed.transcript
    assert len(transcript.utterances) == 3  # the blank turn is dropped...
    assert any("dropped 1 empty" in warning for warning in parsed.warnings)
    issue = transcript.vendor_hints["issues"][0]
    assert issue["utterance_index"] == 1
    assert transcript.utterances[1].text[issue["char_start"] : issue["char_end"]] == issue["text"]
    assert transcript.vendor_hints["categories"] == ["Cancellation"]


def _contact_lens() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / "contact_lens_issues.json").read_text())
    return document


def test_contact_lens_chat_is_rejected() -> None:
    document = _contact_lens()
    document["Channel"] = "CHAT"
    error = ingest_error(document)
    assert error.location == "Channel"


def test_contact_lens_turn_without_content() -> None:
    document = _contact_lens()
    del document["Transcript"][1]["Content"]
    error = ingest_error(document)
    assert error.location == "Transcript[1].Content"
    assert "missing" in error.problem


def test_call_analytics_overlap_beyond_tolerance_is_rejected() -> None:
    document = {
        "JobName": "j",
        "JobStatus": "COMPLETED",
        "Transcript": [
            {"ParticipantRole": "AGENT", "Content": "Hello.", "BeginOffsetMillis": 9000, "EndOffsetMillis": 9500},
            {"ParticipantRole": "CUSTOMER", "Content": "Hi.", "BeginOffsetMillis": 1000, "EndOffsetMillis": 1500},
        ],
    }
    error = ingest_error(document)
    assert error.location == "Transcript[1].BeginOffsetMillis"
    assert "time order" in error.problem


def test_call_analytics_job_in_progress_is_rejected() -> None:
    error = ingest_error({"JobName": "j", "JobStatus": "IN_PROGRESS", "Transcript": []})
    assert error.location == "JobStatus"


ISSUE_TURN = 1  # "I want to cancel my plan because it keeps dropping." (51 characters)


def _issue_with(offsets: dict[str, Any]) -> dict[str, Any]:
    document = _contact_lens()
    document["Transcript"][ISSUE_TURN]["IssuesDetected"] = [{"CharacterOffsets": offsets}]
    return document


@pytest.mark.parametrize(
    ("begin", "end"),
    [(-10, -1), (-10, 5), (0, 52), (40, 200), (20, 10), (1.5, 10)],
)
def test_insight_range_outside_its_turn_is_not_quoted(begin: float, end: float) -> None:
    parsed = parse_json_value(_issue_with({"BeginOffsetChar": begin, "EndOffsetChar": end}))
    transcript = parsed.transcript
    # The hint still points at the turn, quoting all of it, with no offsets that would cut something else.
    assert transcript.vendor_hints["issues"] == [{"utterance_index": 1, "text": transcript.utterances[1].text}]


def test_insight_range_up_to_the_end_of_its_turn_is_quoted() -> None:
    parsed = parse_json_value(_issue_with({"BeginOffsetChar": 36, "EndOffsetChar": 51}))
    issue = parsed.transcript.vendor_hints["issues"][0]
    assert (issue["char_start"], issue["char_end"], issue["text"]) == (36, 51, "keeps dropping.")


def test_insight_offsets_point_into_the_utterance_text_when_the_turn_has_leading_spaces() -> None:
    document = _issue_with({"BeginOffsetChar": 2, "EndOffsetChar": 8})
    turn = document["Transcript"][ISSUE_TURN]
    turn["Content"] = "  " + turn["Content"] + " "
    transcript = parse_json_value(document).transcript
    issue = transcript.vendor_hints["issues"][0]
    assert issue["text"] == "I want"
    assert transcript.utterances[1].text[issue["char_start"] : issue["char_end"]] == "I want"


@pytest.mark.parametrize("blank", ["\u200b", "\u200b\u200d "])
def test_a_turn_that_shows_nothing_does_not_shift_the_hints(blank: str) -> None:
    document = _contact_lens()
    document["Transcript"][0]["Content"] = blank  # dropped, like the file's blank turn
    transcript = parse_json_value(document).transcript
    issue = transcript.vendor_hints["issues"][0]
    utterance = transcript.utterances[issue["utterance_index"]]
    assert utterance.text.startswith("I want to cancel")
    assert utterance.text[issue["char_start"] : issue["char_end"]] == issue["text"]


def test_connect_supervisors_speak_for_the_company_and_system_prompts_for_neither() -> None:
    turn = {"BeginOffsetMillis": 0, "EndOffsetMillis": 500}
    document = {
        "JobName": "j",
        "JobStatus": "COMPLETED",
        "Transcript": [
            {**turn, "ParticipantRole": "SYSTEM", "Content": "Your call may be recorded."},
            {**turn, "ParticipantRole": "AGENT", "Content": "Thanks for calling, this is Dana.",
             "BeginOffsetMillis": 1000, "EndOffsetMillis": 1500},
            {**turn, "ParticipantRole": "CUSTOMER", "Content": "Hi, I was charged twice.",
             "BeginOffsetMillis": 2000, "EndOffsetMillis": 2500},
            {**turn, "ParticipantRole": "SUPERVISOR", "Content": "I'll waive the fee today.",
             "BeginOffsetMillis": 3000, "EndOffsetMillis": 3500},
            {**turn, "ParticipantRole": "CUSTOM_BOT", "Content": "Please rate this call.",
             "BeginOffsetMillis": 4000, "EndOffsetMillis": 4500},
        ],
    }
    roles = [u.role for u in parse_json_value(document).transcript.utterances]
    assert roles == [Role.unknown, Role.agent, Role.customer, Role.agent, Role.unknown]


@pytest.mark.parametrize(("value", "role"), [
    ("AGENT", Role.agent), ("AGENT_2", Role.agent), ("CUSTOMER_1", Role.customer), ("SUPERVISOR", Role.agent),
    ("SYSTEM", Role.unknown), ("CUSTOM_BOT", Role.unknown), ("custom_bot", Role.unknown), ("OTHER", None),
])
def test_every_connect_participant_role_is_read(value: str, role: Role | None) -> None:
    # Read from the source, not guessed from the label: a turn's speaker id may be any string.
    assert role_of_participant(value) is role
