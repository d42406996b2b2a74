"""WebVTT (voice tags, Teams stamps, Zoom prefixes) and SRT (speaker prefixes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ingest import ParsedTranscript, load_transcript
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


def _cues(parsed: ParsedTranscript) -> list[tuple[str, float | None, float | None, str]]:
    return [(u.speaker, u.start, u.end, u.text) for u in parsed.transcript.utterances]


THREE_CUES = [
    ("Agent", 1.0, 3.0, "Thanks for calling, how can I help?"),
    ("Customer", 4.0, 6.0, "My card was stolen."),
    ("Agent", 7.0, 9.0, "I'm sorry to hear that."),
]


@pytest.mark.parametrize("numbered", [True, False])
def test_srt_cue_run_into_the_previous_one_is_split_at_its_timing(numbered: bool) -> None:
    # The blank line between cues 1 and 2 is lost: cue 2's number and timing follow cue 1's text.
    text = (
        "1\n00:00:01,000 --> 00:00:03,000\nAgent: Thanks for calling, how can I help?\n"
        "2\n00:00:04,000 --> 00:00:06,000\nCustomer: My card was stolen.\n\n"
        "3\n00:00:07,000 --> 00:00:09,000\nAgent: I'm sorry to hear that.\n"
    )
    if not numbered:
        text = text.replace("?\n2\n", "?\n")
    assert _cues(parse_text(text)) == THREE_CUES


def test_vtt_cue_run_into_the_previous_one_is_split_at_its_timing() -> None:
    parsed = parse_text(
        "WEBVTT\n\n"
        "1\n00:00:01.000 --> 00:00:03.000\n<v Agent>Thanks for calling, how can I help?</v>\n"
        "2\n00:00:04.000 --> 00:00:06.000\n<v Customer>My card was stolen.</v>\n"
        "00:00:07.000 --> 00:00:09.000\n<v Agent>I'm sorry to hear that.</v>\n"
    )
    assert parsed.detected_format == "webvtt"
    assert _cues(parsed) == THREE_CUES


def test_cue_split_from_the_previous_one_names_its_own_line() -> None:
    error = ingest_error("1\n00:00:01,000 --> 00:00:02,000\nA: hi\n2\n00:00:03,000 --> 00:00:75,000\nB: yo\n")
    assert error.location == "line 5"
    assert "invalid time stamp" in error.problem


@pytest.mark.parametrize(
    "head",
    ["WEBVTT\n", "WEBVTT - exported\nKind: captions\n", "WEBVTT\n1\n", "WEBVTT\n\nNOTE from the recorder\n"],
)
def test_vtt_first_cue_right_under_the_header_or_a_note_is_kept(head: str) -> None:
    parsed = parse_text(
        f"{head}00:00:01.000 --> 00:00:03.000\n<v Agent>Thanks for calling, how can I help?</v>\n\n"
        "00:00:04.000 --> 00:00:06.000\n<v Customer>My card was stolen.</v>\n"
    )
    assert _cues(parsed) == THREE_CUES[:2]
