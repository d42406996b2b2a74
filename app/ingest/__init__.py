"""Ingestion: transcript files in any supported format -> one canonical `Transcript`.

    from app.ingest import load_transcript
    parsed = load_transcript(Path("call.json"))          # format detected
    parsed.transcript, parsed.detected_format, parsed.warnings

Every failure is an `app.errors.IngestError` naming the file, the place and the problem.
"""

from app.ingest.formats import SUPPORTED_FORMATS
from app.ingest.loader import (
    AUTO_FORMAT,
    CallInFile,
    FormatParseError,
    detect_format,
    load_calls,
    load_transcript,
    parse_bytes,
    parse_calls,
)
from app.ingest.model import ParsedTranscript
from app.ingest.roles import infer_roles

__all__ = [
    "AUTO_FORMAT",
    "SUPPORTED_FORMATS",
    "CallInFile",
    "FormatParseError",
    "ParsedTranscript",
    "detect_format",
    "infer_roles",
    "load_calls",
    "load_transcript",
    "parse_bytes",
    "parse_calls",
]
