"""AssemblyAI transcript JSON: real one-speaker samples and a synthetic two-speaker word list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.ingest import load_transcript
from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_json_value
from tests.support.data import require_shared_data

FIXTURES = Path(__file__).parent / "fixtures"


def test_real_utterances_sample_converts_milliseconds() -> None:
    path = require_shared_data("stt_formats", "assemblyai", "assemblyai_utterances.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    utterance = parsed.transcript.utterances[0]
    assert parsed.detected_format == "assemblyai"
    assert len(parsed.transcript.utterances) == len(raw["utterances"])
    assert utterance.start == raw["utterances"][0]["start"] / 1000
    assert utterance.end == raw["utterances"][0]["end"] / 1000
    assert utterance.speaker == raw["utterances"][0]["speaker"]
    # AssemblyAI's id names the transcription job, not the call: the file name is the better external id.
    assert parsed.transcript.metadata.external_id is None
    assert parsed.transcript.metadata.language == raw["language_code"]
    # Only speaker "A" speaks: accepted, roles unknown, with a warning.
    assert utterance.role is Role.unknown
    assert any("one speaker" in warning for warning in parsed.warnings)


def test_real_words_sample_without_utterances() -> None:
    path = require_shared_data("stt_formats", "assemblyai", "assemblyai_transcription.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    assert raw["utterances"] is None
    assert " ".join(u.text for u in parsed.transcript.utterances) == " ".join(w["text"] for w in raw["words"])


def test_two_speaker_words_become_turns_with_inferred_roles() -> None:
    parsed = load_transcript(FIXTURES / "assemblyai_words_two_speakers.json")
    utterances = parsed.transcript.utterances
    assert [(u.speaker, u.role) for u in utterances] == [
        ("A", Role.agent),
        ("B", Role.customer),
        ("A", Role.agent),
    ]
    assert utterances[1].text == "Hi Omar, I was charged twice for my order."


def _transcript(**fields: Any) -> dict[str, Any]:
    return {"id": "t-1", "status": "completed", "audio_url": "https://example.invalid/a.wav", **fields}


def test_failed_transcript_is_rejected_with_its_error() -> None:
    error = ingest_error(_transcript(status="error", error="Audio file could not be decoded", text=None))
    assert error.location == "status"
    assert "could not be decoded" in error.problem


def test_text_only_transcript_is_one_block() -> None:
    parsed = parse_json_value(_transcript(text="Hello there.", words=[], utterances=None))
    assert [u.text for u in parsed.transcript.utterances] == ["Hello there."]


def test_bad_utterance_time_names_the_field() -> None:
    utterances = [{"speaker": "A", "text": "hi", "start": 5000, "end": 1000}]
    error = ingest_error(_transcript(utterances=utterances))
    assert error.location == "utterances[0]"
    assert "before it starts" in error.problem


def test_time_as_text_is_rejected() -> None:
    error = ingest_error(_transcript(utterances=[{"speaker": "A", "text": "hi", "start": "soon", "end": 1}]))
    assert error.location == "utterances[0].start"
