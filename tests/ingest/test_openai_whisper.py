"""OpenAI verbose_json / diarized_json and Whisper-style segment JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.ingest import load_transcript
from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_json_value
from tests.support.data import require_shared_data

FIXTURES = Path(__file__).parent / "fixtures"


def test_diarized_json_example_keeps_named_agent() -> None:
    path = require_shared_data("stt_formats", "openai_transcription", "openapi_example_diarization.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    assert parsed.detected_format == "openai_diarized_json"
    utterances = parsed.transcript.utterances
    assert [u.speaker for u in utterances] == [s["speaker"] for s in raw["segments"]]
    # "agent" names the role outright; the other speaker is the customer, slightly less certain.
    assert [(u.role, u.role_confidence) for u in utterances] == [
        (Role.agent, 1.0),
        (Role.customer, 0.9),
        (Role.agent, 1.0),
    ]


@pytest.mark.parametrize("unlabel", ["missing", "null"])
def test_diarized_json_segment_without_speaker_keeps_the_others(unlabel: str) -> None:
    path = require_shared_data("stt_formats", "openai_transcription", "openapi_example_diarization.json")
    raw = json.loads(path.read_text())
    if unlabel == "missing":
        del raw["segments"][1]["speaker"]
    else:
        raw["segments"][1]["speaker"] = None
    parsed = parse_json_value(raw)
    assert parsed.detected_format == "openai_diarized_json"
    assert [u.speaker for u in parsed.transcript.utterances] == ["agent", "speaker", "agent"]
    assert parsed.transcript.utterances[0].role is Role.agent
    assert "segments[1] has no speaker label: its speaker is unknown" in parsed.warnings


def test_diarized_json_warning_names_the_first_unlabelled_segments() -> None:
    segments = [
        {"start": float(n), "end": n + 0.5, "text": f"Line {n}.", **({"speaker": "A"} if n == 0 else {})}
        for n in range(8)
    ]
    parsed = parse_json_value({"task": "transcribe", "text": "", "segments": segments})
    assert parsed.detected_format == "openai_diarized_json"
    assert (
        "7 segments have no speaker label (segments[1], segments[2], segments[3], segments[4], segments[5], "
        "...): their speaker is unknown"
    ) in parsed.warnings


def test_verbose_json_example_is_undiarized() -> None:
    path = require_shared_data("stt_formats", "openai_transcription", "openapi_example_segment_timestamps.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    assert parsed.detected_format == "openai_verbose_json"
    utterance = parsed.transcript.utterances[0]
    assert utterance.text == raw["segments"][0]["text"].strip()
    assert (utterance.start, utterance.end) == (raw["segments"][0]["start"], raw["segments"][0]["end"])
    assert parsed.transcript.metadata.language == raw["language"]
    assert utterance.role is Role.unknown


def test_verbose_json_without_segments_uses_text() -> None:
    parsed = parse_json_value({"task": "transcribe", "language": "english", "duration": 2.0, "text": "Hello."})
    assert [u.text for u in parsed.transcript.utterances] == ["Hello."]


def test_whisper_timestamped_sample() -> None:
    path = require_shared_data("stt_formats", "whisper", "whisper_timestamped.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    assert parsed.detected_format == "whisper"
    assert [u.text for u in parsed.transcript.utterances] == [s["text"].strip() for s in raw["segments"]]
    assert parsed.transcript.metadata.language == raw["language"]


def test_whisperx_speakers_become_labels_with_roles() -> None:
    parsed = load_transcript(FIXTURES / "whisperx_speakers.json")
    roles = {u.speaker: u.role for u in parsed.transcript.utterances}
    assert roles == {"SPEAKER_01": Role.agent, "SPEAKER_00": Role.customer}


def test_segment_beyond_a_day_is_rejected() -> None:
    error = ingest_error({"text": "hi", "segments": [{"start": 0.0, "end": 90_000.0, "text": "hi"}]})
    assert error.location == "segments[0].end"
    assert "24 hours" in error.problem


def test_segments_not_a_list() -> None:
    error = ingest_error({"task": "transcribe", "text": "hi", "segments": {"0": "hi"}})
    assert error.location == "segments"
    assert "array" in error.problem
