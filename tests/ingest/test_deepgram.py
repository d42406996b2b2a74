"""Deepgram pre-recorded JSON: real samples (utterances, diarized words, plain) and synthetic variants."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from app.ingest import load_transcript
from app.ingest.assemble import LONG_PAUSE_SECONDS, MAX_TURN_SECONDS
from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_json_value
from tests.support.data import require_shared_data

FIXTURES = Path(__file__).parent / "fixtures"


def sample(name: str) -> Path:
    return require_shared_data("stt_formats", "deepgram", name)


def test_diarized_utterances_keep_deepgram_utterances_and_speakers() -> None:
    path = sample("dg_speakers.json")
    raw = json.loads(path.read_text())
    parsed = load_transcript(path)
    transcript = parsed.transcript
    assert parsed.detected_format == "deepgram"
    assert len(transcript.utterances) == len(raw["results"]["utterances"])
    first = raw["results"]["utterances"][0]
    assert transcript.utterances[0].text == first["transcript"]
    assert transcript.utterances[0].start == first["start"]
    assert {u.speaker for u in transcript.utterances} == {
        f"speaker {u['speaker']}" for u in raw["results"]["utterances"]
    }
    # request_id names Deepgram's API request, not the call: the file name is the better external id.
    assert transcript.metadata.external_id is None
    assert all(u.role in (Role.agent, Role.customer) for u in transcript.utterances)


def test_diarized_words_without_utterances_are_grouped_into_turns() -> None:
    path = sample("dg_speakers_no_utterances.json")
    raw = json.loads(path.read_text())
    words = raw["results"]["channels"][0]["alternatives"][0]["words"]
    utterances = load_transcript(path).transcript.utterances
    assert len(utterances) < len(words)
    # every word is kept, in order, under its own speaker
    assert " ".join(u.text for u in utterances) == " ".join(w["punctuated_word"] for w in words)
    for previous, current in itertools.pairwise(utterances):
        if previous.speaker == current.speaker:  # only a long pause or a long turn splits one speaker
            assert current.start is not None
            assert previous.start is not None
            assert previous.end is not None
            paused = current.start - previous.end > LONG_PAUSE_SECONDS
            assert paused or previous.end - previous.start > MAX_TURN_SECONDS
    speaker_changes = sum(1 for a, b in itertools.pairwise(words) if a["speaker"] != b["speaker"])
    assert len(utterances) >= speaker_changes + 1


@pytest.mark.parametrize("name", ["dg_transcription.json", "dg_whisper_transcription.json", "dg_utterances.json"])
def test_undiarized_output_is_one_speaker_with_a_warning(name: str) -> None:
    parsed = load_transcript(sample(name))
    assert {u.speaker for u in parsed.transcript.utterances} == {"speaker"}
    assert {u.role for u in parsed.transcript.utterances} == {Role.unknown}
    assert any("one speaker" in warning for warning in parsed.warnings)


def test_whisper_hosted_words_without_punctuation_use_the_plain_word() -> None:
    path = sample("dg_whisper_transcription.json")
    words = json.loads(path.read_text())["results"]["channels"][0]["alternatives"][0]["words"]
    text = " ".join(u.text for u in load_transcript(path).transcript.utterances)
    assert text == " ".join(w["word"] for w in words)


def test_multichannel_words_are_interleaved_by_time_with_channel_labels() -> None:
    parsed = load_transcript(FIXTURES / "deepgram_multichannel.json")
    utterances = parsed.transcript.utterances
    assert [u.speaker for u in utterances] == ["channel 0", "channel 1", "channel 0"]
    assert [u.role for u in utterances] == [Role.agent, Role.customer, Role.agent]
    assert parsed.transcript.metadata.language == "en"
    starts = [u.start or 0.0 for u in utterances]
    assert all(u.start is not None for u in utterances)
    assert starts == sorted(starts)


def _minimal(words: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"request_id": "r-1"},
        "results": {"channels": [{"alternatives": [{"transcript": "", "words": words}]}]},
    }


def test_bad_word_time_names_the_word() -> None:
    words = [
        {"word": "hello", "start": 0.1, "end": 0.4, "speaker": 0},
        {"word": "there", "start": -2.0, "end": 0.8, "speaker": 0},
    ]
    error = ingest_error(_minimal(words))
    assert error.location == "results.channels[0].alternatives[0].words[1].start"
    assert "negative" in error.problem


def test_word_without_text_names_the_field() -> None:
    error = ingest_error(_minimal([{"start": 0.1, "end": 0.4}]))
    assert error.location == "results.channels[0].alternatives[0].words[0].word"
    assert "missing" in error.problem


def test_empty_words_are_dropped_but_all_empty_is_an_error() -> None:
    words = [{"word": "", "start": 0.1, "end": 0.2}, {"word": "hi", "start": 0.3, "end": 0.5}]
    parsed = parse_json_value(_minimal(words))
    assert [u.text for u in parsed.transcript.utterances] == ["hi"]
    assert any("dropped 1 empty" in warning for warning in parsed.warnings)
    error = ingest_error(_minimal([{"word": " ", "start": 0.1, "end": 0.2}]))
    assert "text" in error.problem


def test_no_channels_is_an_error() -> None:
    error = ingest_error({"metadata": {}, "results": {"channels": []}})
    assert "no utterances" in error.problem


def test_long_pause_splits_a_turn() -> None:
    words = [
        {"word": "hello", "start": 0.0, "end": 0.4, "speaker": 0},
        {"word": "anyone", "start": 10.0, "end": 10.5, "speaker": 0},
        {"word": "yes", "start": 11.0, "end": 11.2, "speaker": 1},
    ]
    utterances = parse_json_value(_minimal(words)).transcript.utterances
    assert [u.text for u in utterances] == ["hello", "anyone", "yes"]


def test_utterances_with_bad_speaker_type() -> None:
    document = _minimal([])
    document["results"]["utterances"] = [{"start": 0.0, "end": 1.0, "transcript": "hi", "speaker": [0]}]
    error = ingest_error(copy.deepcopy(document))
    assert error.location == "results.utterances[0].speaker"


def test_multichannel_word_without_a_time_keeps_its_place_in_its_channel() -> None:
    channel_words = [
        [
            {"word": "hello", "start": 0.5, "end": 0.9},
            {"word": "agent", "start": 1.0, "end": 1.4},
            {"word": "here"},  # no time: it follows "agent", it does not move to the start of the call
        ],
        [{"word": "hi"}, {"word": "there", "start": 4.0, "end": 4.4}],
    ]
    document = {
        "metadata": {"request_id": "r-1"},
        "results": {"channels": [{"alternatives": [{"transcript": "", "words": words}]} for words in channel_words]},
    }
    utterances = parse_json_value(document).transcript.utterances
    assert [(u.speaker, u.text) for u in utterances] == [("channel 0", "hello agent here"), ("channel 1", "hi there")]


def test_multichannel_utterance_without_a_time_keeps_its_place_in_its_channel() -> None:
    document = {
        "metadata": {"request_id": "r-1"},
        "results": {
            "channels": [{"alternatives": [{"transcript": ""}]}, {"alternatives": [{"transcript": ""}]}],
            "utterances": [
                {"channel": 0, "start": 0.5, "end": 2.0, "transcript": "Thanks for calling."},
                {"channel": 0, "transcript": "How can I help?"},
                {"channel": 1, "start": 2.5, "end": 4.0, "transcript": "My card was stolen."},
                {"channel": 0, "start": 4.5, "end": 6.0, "transcript": "I'm sorry to hear that."},
            ],
        },
    }
    utterances = parse_json_value(document).transcript.utterances
    assert [u.text for u in utterances] == [
        "Thanks for calling.",
        "How can I help?",
        "My card was stolen.",
        "I'm sorry to hear that.",
    ]
