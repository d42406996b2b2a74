"""What an integrator probe found: a plain-text metadata header read as speech, millisecond times read as
seconds, errors that did not say which format was tried, a declared charset ignored, JSON arrays of calls and
NDJSON refused, and --agent-speaker demoting a labelled supervisor."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from app.errors import IngestError
from app.ingest import FormatParseError, load_calls, parse_bytes, parse_calls
from app.ingest.source import UnknownEncodingError, declared_charset, text_encoding
from app.schemas.transcript import Role
from tests.ingest.helpers import SOURCE, ingest_error, parse_json_value, parse_text

# ---------------------------------------------------------------- 1. a metadata header in plain text

HEADER_CALL = """Call ID: 12345
Date: 2026-11-30 10:02
Duration: 00:04:31
Queue: Billing
Agent name: Dana Smith

Agent: Thank you for calling Acme, this is Dana.
Customer: Hi, I was charged twice this month.
"""


def test_a_leading_metadata_header_is_not_speech() -> None:
    parsed = parse_text(HEADER_CALL)
    utterances = parsed.transcript.utterances
    assert [(u.speaker, u.role) for u in utterances] == [("Agent", Role.agent), ("Customer", Role.customer)]
    metadata = parsed.transcript.metadata
    assert metadata.external_id == "12345"
    assert metadata.started_at == datetime(2026, 11, 30, 10, 2)
    skipped = next(w for w in parsed.warnings if w.startswith("header lines not kept"))
    assert skipped.endswith("Duration, Queue, Agent name")
    assert any("no time zone" in warning for warning in parsed.warnings)


def test_a_header_date_and_time_on_two_lines_make_the_start() -> None:
    parsed = parse_text("Date: 2026-11-30\nTime: 10:02:05+01:00\nAgent ID: a-17\nLanguage: en-GB\n"
                        "Agent: Hello.\nCaller: Hi.\n")
    metadata = parsed.transcript.metadata
    assert metadata.started_at is not None
    assert metadata.started_at.isoformat() == "2026-11-30T10:02:05+01:00"
    assert (metadata.agent_id, metadata.language) == ("a-17", "en-GB")
    assert not any("header" in warning for warning in parsed.warnings)


def test_an_unreadable_header_date_is_named_not_guessed() -> None:
    parsed = parse_text("Call ID: 9\nDate: 30/11/2026\nAgent: Hello.\nCustomer: Hi.\n")
    assert parsed.transcript.metadata.started_at is None
    assert any("Date ('30/11/2026' is not an ISO 8601" in warning for warning in parsed.warnings)


def test_speech_is_never_taken_for_a_header() -> None:
    # "Agent" is a speaker, not a metadata key, even at the top and even saying something metadata-like.
    parsed = parse_text("Agent: thank you for calling\nCustomer: Date: tomorrow please\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["Agent", "Customer"]
    # A header key that speaks again below is a speaker: the header ends before it, no turn is lost.
    parsed = parse_text("Call ID: 7\nSource: I called yesterday.\nAgent: Thank you for calling.\n"
                        "Source: Sure, my card is blocked.\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["Source", "Agent", "Source"]
    assert parsed.transcript.metadata.external_id == "7"


def test_a_header_without_any_turn_is_an_error() -> None:
    error = ingest_error("Call ID: 1\nQueue: Billing\n")
    assert "only a header of call metadata (Call ID, Queue)" in error.problem


# ---------------------------------------------------------------- 2. times in the wrong unit

MILLISECOND_CALL = {"utterances": [
    {"speaker": "Agent", "start": 0, "end": 2400, "text": "Thank you for calling Acme."},
    {"speaker": "Customer", "start": 2600, "end": 5100, "text": "Hi, I was charged twice."},
]}


def test_milliseconds_in_a_format_of_seconds_are_warned_about_on_a_short_call() -> None:
    parsed = parse_json_value(MILLISECOND_CALL)
    warning = next(w for w in parsed.warnings if "look like milliseconds" in w)
    assert "(start, end)" in warning
    assert "divide them by 1000" in warning
    assert parsed.transcript.utterances[1].start == 2600  # kept as given: the format says seconds


def test_seconds_in_a_format_of_seconds_carry_no_unit_warning() -> None:
    seconds = {"utterances": [{**u, "start": u["start"] / 1000, "end": u["end"] / 1000}  # type: ignore[operator]
                              for u in MILLISECOND_CALL["utterances"]]}
    assert not any("milliseconds" in w for w in parse_json_value(seconds).warnings)
    # A long hold (one slow segment) does not make a call's times look like milliseconds.
    held = {"utterances": [
        {"speaker": "Agent", "start": 0, "end": 3, "text": "Please hold."},
        {"speaker": "Agent", "start": 3, "end": 600, "text": "[music]"},
        {"speaker": "Customer", "start": 601, "end": 604, "text": "Hello? Are you still there?"},
    ]}
    assert not any("milliseconds" in w for w in parse_json_value(held).warnings)


def test_milliseconds_beyond_a_day_say_they_may_be_milliseconds() -> None:
    error = ingest_error({"utterances": [{"speaker": "A", "start": 0, "end": 93000, "text": "Hello there."}]})
    assert "more than 24 hours" in error.problem
    assert "are these milliseconds?" in error.problem


def test_seconds_in_a_format_of_milliseconds_are_warned_about() -> None:
    assemblyai = {"id": "t", "status": "completed", "audio_url": "https://x/a.wav", "utterances": [
        {"speaker": "A", "start": 0, "end": 3, "text": "Thank you for calling Acme, how can I help?"},
        {"speaker": "B", "start": 3, "end": 6, "text": "Hi, I was charged twice this month."},
    ]}
    parsed = parse_json_value(assemblyai)
    assert any("look like seconds, not milliseconds" in w for w in parsed.warnings)


# ---------------------------------------------------------------- 3. errors name the format

def test_an_error_names_the_detected_format() -> None:
    error = ingest_error({"utterances": [{"speaker": "A", "text": ""}]})
    assert isinstance(error, FormatParseError)
    assert error.format == "native"
    assert "(read as format native, detected from the content)" in str(error)


def test_an_error_names_the_asked_format() -> None:
    error = ingest_error({"utterances": [{"speaker": "A", "text": "hi"}]}, fmt="deepgram")
    assert isinstance(error, FormatParseError)
    assert error.format == "deepgram"
    assert "(read as format deepgram, as asked)" in str(error)


def test_no_format_detected_says_what_was_tried_and_why() -> None:
    error = ingest_error({"call": 1, "turns": []})
    assert isinstance(error, FormatParseError)
    assert error.format is None
    assert "'call', 'turns'" in error.problem
    assert "native: 'utterances'" in error.problem
    assert "native" in error.formats_tried and "text" in error.formats_tried
    error = ingest_error('{"utterances": [')
    assert isinstance(error, FormatParseError)
    assert "no format detected: the JSON formats need valid JSON" in error.problem


# ---------------------------------------------------------------- 4. a declared charset

LATIN_1_CALL = "Agent: Bienvenue chez Acme, ici Hélène.\nCustomer: J'ai été débité deux fois.\n".encode("latin-1")


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "windows-1252", "cp1252"])
def test_a_declared_charset_is_honoured(charset: str) -> None:
    parsed = parse_bytes(LATIN_1_CALL, source_name=SOURCE, encoding=charset)
    assert parsed.transcript.utterances[0].text == "Bienvenue chez Acme, ici Hélène."


def test_without_a_charset_latin_1_is_refused_saying_how_to_declare_one() -> None:
    error = ingest_error(LATIN_1_CALL)
    assert "not valid UTF-8" in error.problem
    assert "charset=" in error.problem and "--encoding" in error.problem


@pytest.mark.parametrize("charset", ["klingon", "base64", "rot13", "unicode_escape", ""])
def test_an_unknown_charset_is_a_clear_error(charset: str) -> None:
    error = ingest_error(LATIN_1_CALL, encoding=charset)
    assert "encoding" in error.problem or "character set" in error.problem
    with pytest.raises(UnknownEncodingError):
        text_encoding(charset)


def test_a_byte_order_mark_wins_over_a_declared_charset() -> None:
    data = b"\xef\xbb\xbf" + "Agent: Hélène here.\nCustomer: Hi.\n".encode()
    parsed = parse_bytes(data, source_name=SOURCE, encoding="latin-1")
    assert parsed.transcript.utterances[0].text == "Hélène here."


def test_the_charset_of_a_content_type() -> None:
    assert declared_charset('text/plain; charset="latin-1"') == "latin-1"
    assert declared_charset("text/plain;charset=ISO-8859-1") == "ISO-8859-1"
    assert declared_charset("application/json") is None
    assert declared_charset(None) is None


# ---------------------------------------------------------------- 5. several calls in one file

CALL_A = {"external_id": "a", "utterances": [{"speaker": "Agent", "text": "Hello."},
                                              {"speaker": "Customer", "text": "Hi."}]}
CALL_B = {"utterances": [{"speaker": "Agent", "text": "Good morning."}, {"speaker": "Customer", "text": "Hey."}]}


def test_a_json_array_of_calls_is_read_call_by_call() -> None:
    bad = {"utterances": [{"speaker": "A", "text": ""}]}
    calls = parse_calls(json.dumps([CALL_A, bad, 7, CALL_B]).encode(), source_name="calls.json")
    assert [call.position for call in calls] == ["[0]", "[1]", "[2]", "[3]"]
    assert calls[0].parsed is not None and calls[0].parsed.transcript.metadata.external_id == "a"
    assert calls[3].parsed is not None and calls[3].parsed.transcript.utterances[0].text == "Good morning."
    assert calls[1].error is not None and str(calls[1].error).startswith("calls.json[1]: utterances[0].text")
    assert calls[2].error is not None and "expected a call (a JSON object), got a number" in str(calls[2].error)


def test_ndjson_is_read_line_by_line() -> None:
    text = "\n".join([json.dumps(CALL_A), "", '{"utterances": [', json.dumps(CALL_B)]) + "\n"
    calls = parse_calls(text.encode(), source_name="calls.ndjson")
    assert [call.position for call in calls] == ["line 1", "line 3", "line 4"]
    assert calls[0].parsed is not None and calls[2].parsed is not None
    assert calls[1].error is not None
    assert str(calls[1].error).startswith("calls.ndjson line 3: column 17: invalid JSON")


def test_a_one_call_file_is_one_call_and_parse_bytes_refuses_several() -> None:
    (only,) = parse_calls(json.dumps(CALL_A).encode(), source_name=SOURCE)
    assert only.position is None and only.parsed is not None
    error = ingest_error([CALL_A, CALL_B])
    assert "holds 2 calls (a JSON array of calls)" in error.problem
    error = ingest_error(json.dumps(CALL_A) + "\n" + json.dumps(CALL_B))
    assert "holds 2 calls (NDJSON" in error.problem


def test_an_array_of_utterances_is_not_an_array_of_calls() -> None:
    error = ingest_error([{"speaker": "Agent", "text": "Hello."}, {"speaker": "Customer", "text": "Hi."}])
    assert "utterances, not calls" in error.problem
    with pytest.raises(IngestError, match="empty JSON array"):
        parse_calls(b"[]", source_name=SOURCE)


def test_load_calls_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "calls.json"
    path.write_text(json.dumps([CALL_A, CALL_B]), encoding="utf-8")
    assert [call.parsed is not None for call in load_calls(path)] == [True, True]


# ---------------------------------------------------------------- 6. --agent-speaker and labelled staff

def test_agent_speaker_keeps_a_labelled_supervisor_on_the_agents_side() -> None:
    call = ("Dana: Thank you for calling Acme.\nJo: I was charged twice.\n"
            "Supervisor: I'm the supervisor, I have refunded the charge.\n")
    parsed = parse_text(call, agent_speaker="Dana")
    roles = {u.speaker: u.role for u in parsed.transcript.utterances}
    assert roles == {"Dana": Role.agent, "Jo": Role.customer, "Supervisor": Role.agent}


def test_agent_speaker_keeps_a_source_stated_supervisor() -> None:
    analytics = {"JobName": "j", "Transcript": [
        {"ParticipantRole": "AGENT", "Content": "Thank you for calling.", "BeginOffsetMillis": 0,
         "EndOffsetMillis": 1500},
        {"ParticipantRole": "CUSTOMER", "Content": "My card is blocked.", "BeginOffsetMillis": 1600,
         "EndOffsetMillis": 3000},
        {"ParticipantRole": "SUPERVISOR", "Content": "I've unblocked it.", "BeginOffsetMillis": 3100,
         "EndOffsetMillis": 4500},
    ]}
    parsed = parse_json_value(analytics, agent_speaker="AGENT")
    roles = {u.speaker: u.role for u in parsed.transcript.utterances}
    assert roles["SUPERVISOR"] is Role.agent
    assert roles["CUSTOMER"] is Role.customer


def test_agent_speaker_still_fixes_a_customer_labelled_with_a_staff_title() -> None:
    # "Tech" is a staff title, but beside the named agent nobody else is the customer: the operator's word wins.
    parsed = parse_text("Agent: Thank you for calling.\nTech: My router is broken.\n", agent_speaker="Agent")
    roles = {u.speaker: u.role for u in parsed.transcript.utterances}
    assert roles == {"Agent": Role.agent, "Tech": Role.customer}
    assert any("'Tech': on the agent's side by label or source" in w for w in parsed.warnings)
