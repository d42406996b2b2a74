"""Follow-ups to the integrator probe (tests/ingest/test_integrator_probe.py), from a review: a declared
single-byte charset garbling UTF-8 and JSON honouring a charset, header values overriding explicit ones,
header keys eating one-line speakers, one error per element of an array of no calls, arrays held to one
call's object budget, and charset edge cases."""

from __future__ import annotations

import codecs
import json

import pytest

from app.errors import IngestError
from app.ingest import FormatParseError, parse_bytes, parse_calls
from app.ingest.source import declared_charset, is_single_byte_charset
from tests.ingest.helpers import SOURCE, ingest_error, parse_text
from tests.support.data import require_shared_data

UTF8_CALL = "Agent: Bonjour, café à Zürich.\nCustomer: Très bien, merci.\n".encode()
NATIVE_CALL = {"utterances": [{"speaker": "Agent", "text": "Grüezi, café?"},
                              {"speaker": "Customer", "text": "Très bien."}]}

# ---------------------------------------------------------------- 1. declared single-byte charset vs UTF-8


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "windows-1252", "iso-8859-15", "us-ascii"])
def test_utf8_declared_single_byte_is_read_as_utf8_with_a_warning(charset: str) -> None:
    parsed = parse_bytes(UTF8_CALL, source_name=SOURCE, encoding=charset)
    assert parsed.transcript.utterances[0].text == "Bonjour, café à Zürich."
    warning = next(w for w in parsed.warnings if "was overridden" in w)
    assert repr(charset) in warning and "valid UTF-8" in warning
    # Real single-byte text is still read in its charset, without a warning.
    if charset == "us-ascii":
        return
    latin = UTF8_CALL.decode().encode(charset)
    parsed = parse_bytes(latin, source_name=SOURCE, encoding=charset)
    assert parsed.transcript.utterances[0].text == "Bonjour, café à Zürich."
    assert not any("charset" in w for w in parsed.warnings)
    # A multi-byte charset is not second-guessed.
    assert parse_bytes("Agent: こんにちは\nCustomer: はい\n".encode("shift_jis"), source_name=SOURCE,
                       encoding="shift_jis").transcript.utterances[0].text == "こんにちは"


def test_single_byte_charsets_are_told_apart() -> None:
    assert all(is_single_byte_charset(codecs.lookup(name).name)
               for name in ("latin-1", "cp1252", "iso-8859-5", "koi8-r", "mac-roman", "ascii", "cp437"))
    assert not any(is_single_byte_charset(codecs.lookup(name).name)
                   for name in ("utf-8", "utf-16", "shift_jis", "euc-jp", "iso2022_jp", "cp037", "big5"))


def test_json_ignores_a_declared_charset() -> None:
    data = json.dumps(NATIVE_CALL, ensure_ascii=False).encode()
    parsed = parse_bytes(data, source_name=SOURCE, encoding="windows-1252")
    assert parsed.transcript.utterances[0].text == "Grüezi, café?"
    assert any("JSON is UTF-8 (RFC 8259)" in w for w in parsed.warnings)
    # JSON in latin-1 is not JSON as RFC 8259 defines it: an error that says to convert it, not a garble.
    error = ingest_error(json.dumps(NATIVE_CALL, ensure_ascii=False).encode("latin-1"), encoding="latin-1")
    assert "JSON is always UTF-8 (RFC 8259)" in error.problem
    # A JSON array of calls too, each call warned.
    calls = parse_calls(json.dumps([NATIVE_CALL, NATIVE_CALL | {"external_id": "b"}], ensure_ascii=False).encode(),
                        source_name="calls.json", encoding="latin-1")
    assert all(c.parsed is not None and c.parsed.transcript.utterances[0].text == "Grüezi, café?" for c in calls)
    assert all(c.parsed is not None and any("RFC 8259" in w for w in c.parsed.warnings) for c in calls)


def test_a_json_media_type_has_no_charset() -> None:
    assert declared_charset("application/json; charset=ISO-8859-1") is None
    assert declared_charset("application/vnd.acme+json; charset=latin-1") is None
    assert declared_charset("application/x-ndjson; charset=latin-1") is None
    assert declared_charset("text/plain; charset=ISO-8859-1") == "ISO-8859-1"


# ---------------------------------------------------------------- 2. header values yield to explicit ones

HEADER = "Call ID: 5551234\nTeam: Retention\nAgent ID: a-9\n\nAgent: Thanks for calling.\nCustomer: My card.\n"


def test_an_explicit_value_overrides_a_header_value_with_a_warning() -> None:
    parsed = parse_text(HEADER)
    assert parsed.from_header == {"external_id": "Call ID", "team": "Team", "agent_id": "Agent ID"}
    assert parsed.prefer_explicit("external_id", "CRM-77", given_as="the query's external_id")
    assert parsed.transcript.metadata.external_id == "CRM-77"
    warning = "the header's Call ID '5551234' was overridden by the query's external_id 'CRM-77'"
    assert warning in parsed.warnings and warning in parsed.transcript.warnings
    assert parsed.prefer_explicit("team", "Retention", given_as="x")  # the same: no warning
    assert sum("overridden" in w for w in parsed.warnings) == 1


def test_a_formats_own_field_is_not_overridden() -> None:
    parsed = parse_bytes(json.dumps({**NATIVE_CALL, "external_id": "X-1"}).encode(), source_name=SOURCE)
    assert parsed.from_header == {}
    assert not parsed.prefer_explicit("external_id", "CRM-77", given_as="the query's external_id")
    assert parsed.transcript.metadata.external_id == "X-1"
    empty = parse_bytes(json.dumps(NATIVE_CALL).encode(), source_name=SOURCE)
    assert empty.prefer_explicit("team", "billing", given_as="y")  # an empty field is filled, silently
    assert empty.transcript.metadata.team == "billing" and not any("overridden" in w for w in empty.warnings)


# ---------------------------------------------------------------- 3. a header key that speaks once


@pytest.mark.parametrize("line", [
    "Recording: This call may be recorded for quality and training purposes.",
    "Queue: You are caller number three.",
    "Title: Hello there, I need help.",
    "Date: Hi, I'm calling about my card",
])
def test_a_sentence_after_a_header_key_is_speech(line: str) -> None:
    parsed = parse_text(f"{line}\nAgent: Thank you for calling.\nCustomer: My card is blocked.\n")
    utterances = parsed.transcript.utterances
    assert len(utterances) == 3
    assert utterances[0].speaker == line.split(":")[0]
    assert utterances[0].text == line.split(": ", 1)[1]
    assert not any("header" in w for w in parsed.warnings)


def test_a_key_repeated_in_the_header_is_a_speaker() -> None:
    parsed = parse_text("From: Hello is this the bank?\nTo: Yes.\nFrom: my card\n")
    assert [(u.speaker, u.text) for u in parsed.transcript.utterances] == [
        ("From", "Hello is this the bank?"), ("To", "Yes."), ("From", "my card")]
    # Short values repeating a key: speech too (every line is a turn), not "only a header".
    parsed = parse_text("From: hi\nTo: yes\nFrom: card\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["From", "To", "From"]


def test_metadata_values_still_make_a_header() -> None:
    parsed = parse_text("Call ID: 12\nAgent name: Smith, John\nLocation: Austin, TX, USA\n"
                        "Recording URL: https://rec.example.com/a/b.wav\nDisposition: Call resolved.\n\n"
                        "Agent: Hello.\nCustomer: Hi.\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["Agent", "Customer"]
    assert parsed.transcript.metadata.external_id == "12"
    # A sentence-like value ends the header there: the lines below it are speech, none is lost.
    parsed = parse_text("Call ID: 12\nRecording: This call is recorded.\nQueue: Billing\nAgent: Hello.\n"
                        "Customer: Hi.\n")
    assert [u.speaker for u in parsed.transcript.utterances] == ["Recording", "Queue", "Agent", "Customer"]
    assert parsed.transcript.metadata.external_id == "12"


# ---------------------------------------------------------------- 4. an array of no calls: one error


def test_a_raw_harper_valley_file_is_one_error() -> None:
    path = require_shared_data("harper_valley_bank", "transcript", "0002f70f7386445b.json")
    with pytest.raises(IngestError) as caught:
        parse_calls(path.read_bytes(), source_name=path.name)
    assert "a JSON array of 18 objects" in caught.value.problem
    assert "'human_transcript'" in caught.value.problem and "utterances, not calls" in caught.value.problem


def test_an_array_of_unknown_objects_is_one_error_naming_the_keys() -> None:
    with pytest.raises(FormatParseError) as caught:
        parse_calls(json.dumps([{"call": i, "turns": []} for i in range(20)]).encode(), source_name=SOURCE)
    assert "a JSON array of 20 elements, none of them a call" in caught.value.problem
    assert "'call', 'turns'" in caught.value.problem and "native: 'utterances'" in caught.value.problem
    # One known call among them: each element is its own result again.
    calls = parse_calls(json.dumps([{"call": 1}, NATIVE_CALL]).encode(), source_name=SOURCE)
    assert calls[0].error is not None and calls[1].parsed is not None


# ---------------------------------------------------------------- 5. an array's object budget is per call


def test_an_array_of_calls_is_not_held_to_one_calls_object_budget() -> None:
    calls = [{"utterances": [{"speaker": "Agent", "text": f"Hello {i}."}, {"speaker": "Customer", "text": "Hi."}]}
             for i in range(10)]
    results = parse_calls(json.dumps(calls).encode(), source_name="many.json", max_utterances=2)
    assert [r.parsed is not None for r in results] == [True] * 10
    # One element over a call's budget is named.
    too_big = {"utterances": [{"speaker": "A", "text": "x"}] * 50}
    with pytest.raises(IngestError, match=r"element \[1\] holds more than 20 JSON objects"):
        parse_calls(json.dumps([calls[0], too_big]).encode(), source_name="many.json", max_utterances=2)
    # Parsed element by element, the array keeps JSON's errors.
    for text, expected in (("[{}, ", "looks truncated"), ("[{} {}]", "Expecting ',' delimiter"),
                           ("[{}] x", "Extra data"), ('[{"a": 1, "a": 2}]', "'a' appears twice")):
        with pytest.raises(IngestError, match=expected):
            parse_calls(text.encode(), source_name=SOURCE)


# ---------------------------------------------------------------- 6. charset edge cases


def test_bomless_utf16_is_big_endian_and_little_endian_is_a_clear_error() -> None:
    text = "Agent: Bonjour, café.\nCustomer: Très bien.\n"
    parsed = parse_bytes(text.encode("utf-16-be"), source_name=SOURCE, encoding="utf-16")
    assert parsed.transcript.utterances[1].text == "Très bien."
    error = ingest_error(text.encode("utf-16-le"), encoding="utf-16")
    assert "big-endian (RFC 2781)" in error.problem and "utf-16-le" in error.problem
    assert not any("\u3000" <= ch <= "\u9fff" for ch in str(error))  # no garbled CJK echoed
    parsed = parse_bytes(text.encode("utf-32-be"), source_name=SOURCE, encoding="utf-32")
    assert parsed.transcript.utterances[0].text == "Bonjour, café."


@pytest.mark.parametrize("declared", [None, "utf-32", "latin-1"])
def test_a_utf32_byte_order_mark_is_not_taken_for_utf16s(declared: str | None) -> None:
    data = "Agent: Grüezi.\nCustomer: Hallo.\n".encode("utf-32")  # FF FE 00 00 on little-endian machines
    assert data.startswith(codecs.BOM_UTF32_LE) or data.startswith(codecs.BOM_UTF32_BE)
    parsed = parse_bytes(data, source_name=SOURCE, encoding=declared)
    assert parsed.transcript.utterances[0].text == "Grüezi."


def test_an_empty_declared_charset_is_ignored() -> None:
    assert declared_charset("text/plain; charset=") is None
    assert declared_charset('text/plain; charset=""') is None
