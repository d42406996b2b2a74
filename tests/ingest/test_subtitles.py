"""WebVTT (voice tags, Teams stamps, Zoom prefixes) and SRT (speaker prefixes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ingest import load_transcript
from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_text
from tests.support.data import require_shared_data

FIXTURES = Path(__file__).parent / "fixtures"


def test_teams_voice_tags_and_unpadded_stamps() -> None:
    path = require_shared_data("stt_formats", "webvtt", "teams_timeframe.vtt")
    parsed = load_transcript(path)
    assert parsed.detected_format == "webvtt"
    assert [(u.speaker, u.text, u.start, u.end) for u in parsed.transcript.utterances] == [
        ("Yuri Bakulin", "There you go.", 0.0, 0.57),
        ("Adrian Petrescu", "Why hello there, Yuri.", 0.21, 1.13),
    ]


def test_voice_variants_several_voices_in_one_cue_and_markup() -> None:
    parsed = load_transcript(FIXTURES / "webvtt_voices.vtt")
    utterances = parsed.transcript.utterances
    assert [(u.speaker, u.text) for u in utterances] == [
        ("Ana Ruiz", "Thanks for calling Fabrikam, how may I help you?"),
        ("Ben Ode", "I'd like to cancel my subscription."),
        ("Ana Ruiz", "Of course, one moment. Can I have your account number & zip code?"),
    ]
    assert (utterances[2].start, utterances[2].end) == (2.4, 7.0)  # two cues merged into one turn
    assert [u.role for u in utterances] == [Role.agent, Role.customer, Role.agent]


def test_zoom_style_name_prefixes_and_note_blocks() -> None:
    parsed = load_transcript(FIXTURES / "webvtt_zoom.vtt")
    assert [u.speaker for u in parsed.transcript.utterances] == ["Sam Lee", "Jordan Park", "Sam Lee"]
    assert parsed.transcript.utterances[0].role is Role.agent


def test_srt_with_named_speakers() -> None:
    parsed = load_transcript(FIXTURES / "srt_named_speakers.srt")
    assert parsed.detected_format == "srt"
    assert [(u.speaker, u.role, u.text) for u in parsed.transcript.utterances] == [
        ("Agent", Role.agent, "Thank you for calling Northwind Energy, this is Priya. How can I help you today?"),
        ("Customer", Role.customer, "Hi, my bill doubled this month and I don't understand why."),
        ("Agent", Role.agent, "I'm sorry to hear that. Let me check your account & meter readings."),
    ]
    assert parsed.transcript.utterances[0].start == 0.5
    assert parsed.transcript.utterances[0].end == 5.0


def test_srt_cues_without_names_stay_apart() -> None:
    parsed = parse_text("1\n00:00:01,000 --> 00:00:02,000\nHello.\n\n2\n00:00:02,500 --> 00:00:03,000\nHi.\n")
    assert [u.text for u in parsed.transcript.utterances] == ["Hello.", "Hi."]
    assert any("one speaker" in warning for warning in parsed.warnings)


@pytest.mark.parametrize(
    ("text", "location", "fragment"),
    [
        ("WEBVTT\n\n00:00:01.000 --> 00:00:75.000\n<v A>hi</v>\n", "line 3", "invalid time stamp"),
        ("WEBVTT\n\n1\nhello there\n", "line 4", "cue timing"),
        ("WEBVTT\n\n00:00:05.000 --> 00:00:01.000\n<v A>hi</v>\n", "line 3", "before it starts"),
        ("1\n00:00:01,000 --> 00:00:02,000\nhi\n\nnot a cue\n", "line 5", "timing"),
        (
            "1\n00:00:09,000 --> 00:00:10,000\nA: hi\n\n2\n00:00:01,000 --> 00:00:02,000\nB: yo\n",
            "line 6",
            "time order",
        ),
    ],
)
def test_broken_subtitles_name_the_line(text: str, location: str, fragment: str) -> None:
    error = ingest_error(text)
    assert error.location == location
    assert fragment in error.problem


def test_vtt_with_only_empty_cues_is_an_error() -> None:
    error = ingest_error("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v A></v>\n")
    assert "text" in error.problem
