"""Damaged input of every format fails cleanly: an IngestError from the parser, never anything else."""

from __future__ import annotations

import random
from pathlib import Path

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


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
@pytest.mark.parametrize("data", [b"{}", b"[]", b'{"results": 1, "Transcript": 1, "segments": 1}', b"hello"])
def test_forcing_a_format_on_foreign_input_names_the_problem(fmt: str, data: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        parse_bytes(data, source_name="x.bin", fmt=fmt)
    assert FALLBACK_PROBLEM not in caught.value.problem
