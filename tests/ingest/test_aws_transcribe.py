"""Amazon Transcribe standard output: speaker labels, channel labels, punctuation items."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.ingest import load_transcript
from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_json_value

FIXTURES = Path(__file__).parent / "fixtures"


def test_speaker_labelled_items_with_punctuation() -> None:
    parsed = load_transcript(FIXTURES / "aws_transcribe_speaker_labels.json")
    transcript = parsed.transcript
    assert parsed.detected_format == "aws_transcribe"
    assert [(u.speaker, u.role, u.text) for u in transcript.utterances] == [
        ("spk_0", Role.agent, "Thank you for calling. How can I help?"),
        ("spk_1", Role.customer, "My card was declined."),
    ]
    assert (transcript.utterances[0].start, transcript.utterances[0].end) == (0.5, 2.4)
    assert transcript.metadata.external_id == "call-2024-0517-0042"
    assert transcript.metadata.language == "en-US"


def test_channel_labels_are_interleaved_by_time() -> None:
    parsed = load_transcript(FIXTURES / "aws_transcribe_channel_labels.json")
    assert [(u.speaker, u.text) for u in parsed.transcript.utterances] == [
        ("ch_0", "Hello, thanks for calling Fabrikam."),
        ("ch_1", "Hi, I want to return my order."),
        ("ch_0", "Sure, I can help with that."),
    ]
    assert parsed.transcript.utterances[0].role is Role.agent


def _older_diarized_output() -> dict[str, Any]:
    """Older output: speakers only in speaker_labels.segments, matched to items by start time."""
    document: dict[str, Any] = json.loads((FIXTURES / "aws_transcribe_speaker_labels.json").read_text())
    segments: dict[str, list[dict[str, str]]] = {}
    for item in document["results"]["items"]:
        label = item.pop("speaker_label", None)
        if label is not None:
            segments.setdefault(label, []).append(
                {"start_time": item["start_time"], "end_time": item["end_time"], "speaker_label": label}
            )
    document["results"]["speaker_labels"]["segments"] = [
        {"speaker_label": label, "items": items} for label, items in segments.items()
    ]
    return document


def test_older_output_maps_speakers_from_segments() -> None:
    parsed = parse_json_value(_older_diarized_output())
    assert [u.speaker for u in parsed.transcript.utterances] == ["spk_0", "spk_1"]


def test_failed_job_is_rejected() -> None:
    document = json.loads((FIXTURES / "aws_transcribe_speaker_labels.json").read_text())
    document["status"] = "FAILED"
    error = ingest_error(document)
    assert error.location == "status"
    assert "FAILED" in error.problem


def test_item_without_alternatives_names_the_item() -> None:
    document = json.loads((FIXTURES / "aws_transcribe_speaker_labels.json").read_text())
    del document["results"]["items"][2]["alternatives"]
    error = ingest_error(document)
    assert error.location == "results.items[2].alternatives"


def test_unparseable_time_string_names_the_item() -> None:
    document = json.loads((FIXTURES / "aws_transcribe_speaker_labels.json").read_text())
    document["results"]["items"][0]["start_time"] = "0.5s"
    error = ingest_error(document)
    assert error.location == "results.items[0].start_time"


def test_items_missing_falls_back_to_the_transcript_text() -> None:
    document = {"jobName": "j", "results": {"transcripts": [{"transcript": "Hello there."}], "items": []}}
    parsed = parse_json_value(document)
    assert [u.text for u in parsed.transcript.utterances] == ["Hello there."]
    error = ingest_error({"jobName": "j", "results": {"transcripts": [{"transcript": ""}], "items": []}})
    assert "no utterances" in error.problem


def _word(content: str, channel: str, start: float | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "pronunciation", "alternatives": [{"content": content}], "channel_label": channel}
    if start is not None:
        item.update(start_time=str(start), end_time=str(start + 0.4))
    return item


CHANNEL_WORDS = {
    "ch_0": [_word("Hello", "ch_0", 0.5), _word("agent", "ch_0", 1.0), _word("here", "ch_0", None)],
    "ch_1": [_word("Hi", "ch_1", None), _word("there", "ch_1", 4.0)],
}


@pytest.mark.parametrize("layout", ["items", "channel_labels"])
def test_a_word_without_a_time_keeps_its_place_in_its_channel(layout: str) -> None:
    results: dict[str, Any] = {"transcripts": [{"transcript": "Hello agent here Hi there"}]}
    if layout == "items":  # current output: every item carries its channel
        results["items"] = CHANNEL_WORDS["ch_1"] + CHANNEL_WORDS["ch_0"]
    else:  # older output: one item list per channel
        results["channel_labels"] = {
            "channels": [{"channel_label": label, "items": items} for label, items in CHANNEL_WORDS.items()]
        }
        results["items"] = []
    parsed = parse_json_value({"jobName": "j", "results": results})
    assert [(u.speaker, u.text) for u in parsed.transcript.utterances] == [
        ("ch_0", "Hello agent here"),
        ("ch_1", "Hi there"),
    ]
