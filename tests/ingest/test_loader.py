"""The public API: files and bytes in, one transcript or one IngestError out."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from app.errors import IngestError
from app.ingest import SUPPORTED_FORMATS, detect_format, load_transcript, parse_bytes
from app.ingest.assemble import MAX_CALL_SECONDS
from tests.ingest.helpers import SOURCE, ingest_error

TEXT_CALL = "Agent: Thank you for calling.\nCustomer: My card is blocked.\n"


def native_call(*utterances: dict[str, object]) -> dict[str, object]:
    return {"utterances": list(utterances)}


def test_load_transcript_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(TEXT_CALL, encoding="utf-8")
    parsed = load_transcript(good)
    assert parsed.detected_format == "text"
    assert len(parsed.transcript.utterances) == 2

    bad = tmp_path / "bad.json"
    bad.write_text('{"utterances": [', encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        load_transcript(bad)
    assert caught.value.source == str(bad)
    assert str(bad) in str(caught.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="file not found"):
        load_transcript(tmp_path / "nope.json")
    with pytest.raises(IngestError, match="directory"):
        load_transcript(tmp_path)


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text(TEXT_CALL * 10, encoding="utf-8")
    with pytest.raises(IngestError, match="over the 100-byte limit") as caught:
        load_transcript(path, max_bytes=100)
    assert caught.value.source == str(path)
    error = ingest_error(TEXT_CALL.encode() * 10, max_bytes=100)
    assert "limit" in error.problem


def test_size_limit_defaults_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("POSTCALL_MAX_TRANSCRIPT_BYTES", "20")
    get_settings.cache_clear()
    try:
        error = ingest_error(TEXT_CALL)
    finally:
        get_settings.cache_clear()
    assert "20-byte limit" in error.problem


@pytest.mark.parametrize("data", [b"", b"   \n\t\n"])
def test_empty_file(data: bytes) -> None:
    error = ingest_error(data)
    assert "empty" in error.problem


def test_non_utf8_bytes_name_line_and_byte() -> None:
    valid_prefix = b"Agent: hello\nCustomer: caf"
    error = ingest_error(valid_prefix + b"\xe9 au lait\n")  # Latin-1 "é"
    assert error.location == f"line 2 (byte {len(valid_prefix)})"
    assert "UTF-8" in error.problem


def test_utf16_with_bom_and_utf8_bom_are_accepted() -> None:
    for encoded in (codecs.BOM_UTF8 + TEXT_CALL.encode(), TEXT_CALL.encode("utf-16")):
        parsed = parse_bytes(encoded, source_name=SOURCE)
        assert parsed.transcript.utterances[0].text == "Thank you for calling."


@pytest.mark.parametrize(
    ("data", "culprit"),
    [
        ('{"utterances": [{"speaker": "A", "text": "hi"}', None),  # cut off: the error is at the end
        ('{"utterances": [{"speaker": "A", "text": "hi}]}', '"hi}'),  # unterminated string
        ('{\n  "utterances": [\n    {"speaker": "A", "text": "hi",}\n  ]\n}', "}\n  ]"),  # trailing comma
    ],
)
def test_invalid_json_points_at_line_and_column(data: str, culprit: str | None) -> None:
    offset = len(data) if culprit is None else data.index(culprit)
    line = data.count("\n", 0, offset) + 1
    column = offset - (data.rfind("\n", 0, offset) + 1) + 1
    error = ingest_error(data)
    assert error.location == f"line {line}, column {column}"
    assert error.problem.startswith("invalid JSON")


def test_truncated_json_says_so() -> None:
    error = ingest_error('{"utterances": [{"speaker": "A", "text": "hi"}')
    assert "truncated" in error.problem


def test_nan_is_not_a_number_here() -> None:
    error = ingest_error('{"utterances": [{"speaker": "A", "text": "hi", "start": NaN}]}')
    assert "NaN" in error.problem


@pytest.mark.parametrize(
    "document",
    [{"hello": "world"}, [1, 2, 3], {"segments": "nope"}, {"results": {}}],
)
def test_json_of_no_known_format_lists_supported_formats(document: object) -> None:
    error = ingest_error(json.dumps(document))
    assert "supported formats" in error.problem
    for name in SUPPORTED_FORMATS:
        assert name in error.problem


def test_text_of_no_known_format() -> None:
    error = ingest_error("Lorem ipsum dolor sit amet\nconsectetur adipiscing elit\n")
    assert "supported formats" in error.problem


def test_unknown_format_name() -> None:
    error = ingest_error(TEXT_CALL, fmt="docx")
    assert "unknown format 'docx'" in error.problem


def test_forced_format_that_does_not_fit_fails_in_that_parser() -> None:
    error = ingest_error(TEXT_CALL, fmt="native")
    assert "invalid JSON" in error.problem


def test_detect_format() -> None:
    assert detect_format(TEXT_CALL.encode()) == "text"
    assert detect_format(b'{"utterances": []}') == "native"
    with pytest.raises(IngestError):
        detect_format(b"<html></html>", source_name="page.html")


@pytest.mark.parametrize(
    ("utterance", "location", "fragment"),
    [
        ({"start": -1.0, "end": 2.0}, "utterances[1].start", "negative time"),
        ({"start": 5.0, "end": 3.0}, "utterances[1]", "before it starts"),
        ({"start": 3.0, "end": MAX_CALL_SECONDS + 1.0}, "utterances[1].end", "24 hours"),
    ],
)
def test_absurd_times_are_rejected(utterance: dict[str, float], location: str, fragment: str) -> None:
    error = ingest_error(
        native_call(
            {"speaker": "A", "start": 0.0, "end": 1.0, "text": "Hello."},
            {"speaker": "B", "text": "Hi.", **utterance},
        )
    )
    assert error.location == location
    assert fragment in error.problem


def test_utterances_out_of_time_order_are_rejected_beyond_tolerance() -> None:
    slightly_early = native_call(
        {"speaker": "A", "start": 10.0, "text": "Hello."},
        {"speaker": "B", "start": 9.5, "text": "Hi (overlapping)."},
    )
    assert len(parse_bytes(json.dumps(slightly_early).encode(), source_name=SOURCE).transcript.utterances) == 2
    error = ingest_error(
        native_call(
            {"speaker": "A", "start": 10.0, "text": "Hello."},
            {"speaker": "B", "start": 3.0, "text": "Hi."},
        )
    )
    assert error.location == "utterances[1].start"
    assert "time order" in error.problem


def test_agent_speaker_overrides_and_must_exist() -> None:
    call = "Sam: Thank you for calling Acme, how can I help?\nJo: I lost my card.\n"
    parsed = parse_bytes(call.encode(), source_name=SOURCE, agent_speaker="Jo")
    roles = {u.speaker: (u.role.value, u.role_confidence) for u in parsed.transcript.utterances}
    assert roles == {"Jo": ("agent", 1.0), "Sam": ("customer", 1.0)}
    error = ingest_error(call, agent_speaker="Alex")
    assert "'Alex'" in error.problem
    assert "'Sam'" in error.problem
