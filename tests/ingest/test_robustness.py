"""Damaged input of every format fails cleanly: an IngestError from the parser, never anything else."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from app.errors import IngestError
from app.ingest import SUPPORTED_FORMATS, ParsedTranscript, parse_bytes
from tests.support.data import shared_data_dir

FIXTURES = Path(__file__).parent / "fixtures"
MUTATIONS_PER_FILE = 60
# The loader's last-resort wrapper for a parser that let a raw exception through; seeing it here
# means a parser has a gap to fix.
FALLBACK_PROBLEM = "unexpected structure"


def sample_files() -> list[Path]:
    files = sorted(FIXTURES.iterdir())
    shared = shared_data_dir()
    if shared is not None:
        files += sorted(p for p in (shared / "stt_formats").rglob("*") if p.suffix in (".json", ".vtt"))
    return files


def mutations(data: bytes, rng: random.Random) -> list[bytes]:
    variants = [data[: rng.randrange(len(data))] for _ in range(MUTATIONS_PER_FILE // 3)]
    for _ in range(MUTATIONS_PER_FILE // 3):  # swap a few bytes for syntax, or for invalid UTF-8
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.choice(b'{}[]":,-0 \nx\xff')
        variants.append(bytes(mutated))
    text = data.decode("utf-8", errors="replace")
    for _ in range(MUTATIONS_PER_FILE // 3):  # replace one JSON value by a value of another type
        start = rng.randrange(len(text))
        colon = text.find(": ", start)
        if colon < 0:
            continue
        end = min((i for i in (text.find(",", colon), text.find("\n", colon)) if i > 0), default=len(text))
        replacement = rng.choice(["null", "[]", "{}", '"x"', "-1", "true", "1e999", '""'])
        variants.append((text[: colon + 2] + replacement + text[end:]).encode())
    return variants


def parse_or_error(data: bytes, source_name: str) -> ParsedTranscript | IngestError:
    """The parse result, or the IngestError it raised; any other exception fails the test."""
    try:
        return parse_bytes(data, source_name=source_name)
    except IngestError as error:
        return error


@pytest.mark.parametrize("path", sample_files(), ids=lambda path: path.name)
def test_damaged_files_fail_with_ingest_errors_only(path: Path) -> None:
    rng = random.Random(path.name)  # deterministic per file
    data = path.read_bytes()
    for variant in mutations(data, rng):
        outcome = parse_or_error(variant, path.name)
        if isinstance(outcome, IngestError):
            assert outcome.source == path.name
            assert outcome.problem
            assert FALLBACK_PROBLEM not in outcome.problem, (str(outcome), variant[:300])
        else:
            assert outcome.transcript.utterances
            assert len(outcome.transcript.content_hash()) == 64  # every string is storable UTF-8


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
@pytest.mark.parametrize("data", [b"{}", b"[]", b'{"results": 1, "Transcript": 1, "segments": 1}', b"hello"])
def test_forcing_a_format_on_foreign_input_names_the_problem(fmt: str, data: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        parse_bytes(data, source_name="x.bin", fmt=fmt)
    assert FALLBACK_PROBLEM not in caught.value.problem


# ------------------------------------------------------------ hostile content, every format

SAMPLES = Path(__file__).parents[2] / "samples"
# One valid file per format: the fixtures and samples, and inline documents for the formats without one.
INLINE_EXAMPLES: dict[str, dict[str, Any]] = {
    "openai_diarized_json": {
        "task": "transcribe", "duration": 4.0, "text": "Thanks for calling. My card is lost.",
        "segments": [
            {"type": "transcript.text.segment", "id": "seg_0", "start": 0.0, "end": 2.0,
             "text": "Thanks for calling.", "speaker": "agent"},
            {"type": "transcript.text.segment", "id": "seg_1", "start": 2.0, "end": 4.0,
             "text": "My card is lost.", "speaker": "A"},
        ],
    },
    "openai_verbose_json": {
        "task": "transcribe", "language": "english", "duration": 4.0, "text": "Thanks for calling.",
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 2.0, "text": "Thanks for calling.", "tokens": [1],
                      "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}],
    },
    "aws_call_analytics": {
        "JobName": "call-7", "JobStatus": "COMPLETED", "LanguageCode": "en-US", "Channel": "VOICE",
        "Participants": [{"ParticipantRole": "AGENT"}, {"ParticipantRole": "CUSTOMER"}],
        "Transcript": [
            {"ParticipantRole": "AGENT", "Content": "Thanks for calling.", "BeginOffsetMillis": 0,
             "EndOffsetMillis": 2000},
            {"ParticipantRole": "CUSTOMER", "Content": "My card is lost.", "BeginOffsetMillis": 2100,
             "EndOffsetMillis": 4000},
        ],
    },
}


def example_per_format() -> dict[str, bytes]:
    examples: dict[str, bytes] = {name: json.dumps(doc).encode() for name, doc in INLINE_EXAMPLES.items()}
    for path in [*sorted(FIXTURES.iterdir()), *sorted(SAMPLES.glob("*.json")), *sorted(SAMPLES.glob("*.txt"))]:
        data = path.read_bytes()
        examples.setdefault(parse_bytes(data, source_name=path.name).detected_format, data)
    return examples


EXAMPLES = example_per_format()
TEXT_FORMATS = ["webvtt", "srt", "text"]
JSON_FORMATS = [name for name in SUPPORTED_FORMATS if name not in TEXT_FORMATS]


def test_there_is_an_example_of_every_format() -> None:
    assert set(EXAMPLES) == set(SUPPORTED_FORMATS)


def first_string_value(text: str) -> int:
    """The offset just inside the first JSON string value that holds spoken text (after `": "`)."""
    for key in ('"text": "', '"Content": "', '"transcript": "', '"content": "', '"text":"', '"Content":"'):
        at = text.find(key)
        if at >= 0:
            return at + len(key)
    raise AssertionError("no text field found")


def inject(data: bytes, fmt: str, payload: str) -> bytes:
    """`payload` (JSON escapes for JSON formats, raw characters otherwise) inside the first spoken text."""
    text = data.decode("utf-8-sig")
    if fmt in JSON_FORMATS:
        at = first_string_value(text)
        return (text[:at] + payload + text[at:]).encode()
    lines = text.splitlines(keepends=True)
    middle = len(lines) // 2
    target = next(i for i in range(middle, len(lines)) if len(lines[i].strip()) > 3)
    line = lines[target]
    lines[target] = line[: len(line) // 2] + payload + line[len(line) // 2 :]
    return "".join(lines).encode()


def escaped(payload: str, fmt: str) -> str:
    return json.dumps(payload)[1:-1] if fmt in JSON_FORMATS else payload


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_a_nul_character_is_refused_naming_where_it_is(fmt: str) -> None:
    data = inject(EXAMPLES[fmt], fmt, escaped("x\x00y", fmt))
    error = parse_or_error(data, "call.bin")
    assert isinstance(error, IngestError), f"{fmt}: a NUL character was accepted"
    assert "NUL" in error.problem
    assert error.location  # a line, or the JSON field path
    assert "valid JSON" not in str(error)  # it is valid JSON: one of its strings is refused, nothing else


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_a_lone_surrogate_escape_is_refused_and_a_pair_is_accepted(fmt: str) -> None:
    error = parse_or_error(inject(EXAMPLES[fmt], fmt, "\\ud800"), "call.json")
    assert isinstance(error, IngestError), f"{fmt}: a lone surrogate was accepted"
    assert "surrogate" in error.problem
    assert "valid JSON" not in str(error)
    assert error.location and error.location != "(top level)"
    paired = parse_or_error(inject(EXAMPLES[fmt], fmt, "\\ud83d\\ude00 "), "call.json")
    assert isinstance(paired, ParsedTranscript), paired
    assert len(paired.transcript.content_hash()) == 64


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_an_encoded_surrogate_in_a_text_format_is_invalid_utf8(fmt: str) -> None:
    data = EXAMPLES[fmt].replace(b"a", b"\xed\xa0\x80", 1)
    error = parse_or_error(data, "call.txt")
    assert isinstance(error, IngestError)
    assert "UTF-8" in error.problem


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_more_utterances_than_the_limit_is_refused(fmt: str) -> None:
    data = EXAMPLES[fmt]
    accepted = parse_bytes(data, source_name="call", max_utterances=10_000)
    count = len(accepted.transcript.utterances)
    with pytest.raises(IngestError) as caught:
        parse_bytes(data, source_name="call", max_utterances=count - 1 if count > 1 else 0)
    assert "limit" in caught.value.problem
    assert FALLBACK_PROBLEM not in caught.value.problem


def test_a_native_file_of_many_tiny_utterances_is_refused_before_it_is_parsed_whole() -> None:
    utterances = ",".join('{"speaker":"A","text":"x"}' for _ in range(50_000))
    data = f'{{"external_id":"big","utterances":[{utterances}]}}'.encode()
    with pytest.raises(IngestError) as caught:
        parse_bytes(data, source_name="big.json", max_utterances=1_000)
    # Parsing stopped at the JSON object bound, long before 50,000 objects were built.
    assert "JSON objects" in caught.value.problem


def test_a_text_file_of_many_lines_is_refused_before_it_is_split() -> None:
    data = "".join(f"Agent: line {n}\n" for n in range(20_001)).encode()
    with pytest.raises(IngestError) as caught:
        parse_bytes(data, source_name="big.txt", max_utterances=2_000)
    assert "lines" in caught.value.problem


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_a_duplicate_key_is_refused(fmt: str) -> None:
    text = EXAMPLES[fmt].decode("utf-8-sig")
    at = text.index("{") + 1
    data = (text[:at] + '"dup": 1, "dup": 2, ' + text[at:]).encode()
    error = parse_or_error(data, "call.json")
    assert isinstance(error, IngestError)
    assert "'dup' appears twice" in error.problem


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_start_time_without_a_utc_instant_is_refused(stamp: str) -> None:
    document = {"external_id": "t", "started_at": stamp, "utterances": [{"speaker": "A", "text": "Hello."}]}
    error = parse_or_error(json.dumps(document).encode(), "call.json")
    assert isinstance(error, IngestError)
    assert error.location == "started_at"
    assert "UTC" in error.problem


@pytest.mark.parametrize("fmt", ["webvtt", "srt"])
@pytest.mark.parametrize("cut", ["<v", "<v Dana", "</", "<i"])
def test_a_subtitle_file_cut_inside_a_tag_is_refused(fmt: str, cut: str) -> None:
    head = "WEBVTT\n\n" if fmt == "webvtt" else "1\n"
    data = f"{head}00:00:00.000 --> 00:00:02.000\nThanks for calling.\n\n00:00:02.500 --> 00:00:04.000\n{cut}"
    if fmt == "srt":
        data = data.replace(".", ",").replace("Thanks for calling,", "Thanks for calling.").replace(
            "\n\n00", "\n\n2\n00")
    error = parse_or_error(data.encode(), f"call.{fmt}")
    assert isinstance(error, IngestError), error
    assert "truncated" in error.problem


@pytest.mark.parametrize("fmt", ["webvtt", "srt"])
def test_a_subtitle_file_cut_after_a_timing_is_refused(fmt: str) -> None:
    if fmt == "webvtt":
        data = "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nThanks for calling.\n\n00:00:02.500 --> 00:00:04.000\n"
    else:
        data = "1\n00:00:00,000 --> 00:00:02,000\nThanks for calling.\n\n2\n00:00:02,500 --> 00:00:04,000\n"
    error = parse_or_error(data.encode(), f"call.{fmt}")
    assert isinstance(error, IngestError), error
    assert "truncated" in error.problem


def test_an_escaped_less_than_sign_in_a_cue_is_text() -> None:
    data = b"WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v Dana>Under &lt;5 minutes.</v>\n"
    parsed = parse_bytes(data, source_name="call.vtt")
    assert parsed.transcript.utterances[0].text == "Under <5 minutes."


@pytest.mark.parametrize("label", ["   ", "\u200b\u200b", "\t"])
def test_a_blank_speaker_label_is_the_undiarized_speaker_with_a_warning(label: str) -> None:
    # A label of spaces was kept as the speaker: an invisible speaker on the call page, in exports and in
    # the role inference.
    parsed = parse_bytes(json.dumps({"utterances": [
        {"speaker": label, "text": "Hello, thanks for calling."},
        {"speaker": "Customer", "text": "Hi, my card was charged twice."},
        {"speaker": label, "text": "Let me check that for you."},
    ]}).encode(), source_name="blank.json", fmt="native")
    assert [u.speaker for u in parsed.transcript.utterances] == ["speaker", "Customer", "speaker"]
    assert any("2 utterances with a blank speaker label" in warning for warning in parsed.warnings)
