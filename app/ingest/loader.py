"""Public entry points: a file or bytes in, a canonical transcript (or one IngestError) out."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from app.config import get_settings
from app.errors import IngestError
from app.ingest.assemble import assemble
from app.ingest.formats import FORMATS, FORMATS_BY_NAME, SUPPORTED_FORMATS
from app.ingest.model import ParsedTranscript
from app.ingest.source import SourceDocument, decode_text

AUTO_FORMAT = "auto"

logger = logging.getLogger(__name__)


def _supported_list() -> str:
    return ", ".join(SUPPORTED_FORMATS)


def _size_limit(max_bytes: int | None) -> int:
    return get_settings().max_transcript_bytes if max_bytes is None else max_bytes


def _utterance_limit(max_utterances: int | None) -> int:
    return get_settings().max_utterances_per_call if max_utterances is None else max_utterances


def _too_large(source: str, size: int, limit: int) -> IngestError:
    return IngestError(source, None, f"file is {size:,} bytes, over the {limit:,}-byte limit")


def _detect(doc: SourceDocument) -> str:
    if not doc.text.strip():
        raise doc.error(None, "the file is empty")
    for transcript_format in FORMATS:
        if transcript_format.detect(doc):
            return transcript_format.name
    raise doc.error(None, f"not a transcript format Postcall knows; supported formats: {_supported_list()}")


def detect_format(data: bytes, *, source_name: str = "<input>") -> str:
    """The name of the format `data` is in; IngestError when it is none of SUPPORTED_FORMATS."""
    return _detect(SourceDocument(source_name, decode_text(data, source_name)))


def parse_bytes(
    data: bytes,
    *,
    source_name: str,
    fmt: str = AUTO_FORMAT,
    agent_speaker: str | None = None,
    max_bytes: int | None = None,
    max_utterances: int | None = None,
) -> ParsedTranscript:
    """Parse one transcript held in memory (an upload). `source_name` is used in error messages.

    A call beyond `max_utterances` (default POSTCALL_MAX_UTTERANCES_PER_CALL) is refused as early as its
    size shows: before JSON is fully parsed, before text lines are split."""
    limit = _size_limit(max_bytes)
    utterance_limit = _utterance_limit(max_utterances)
    if len(data) > limit:
        raise _too_large(source_name, len(data), limit)
    if fmt != AUTO_FORMAT and fmt not in FORMATS_BY_NAME:
        raise IngestError(
            source_name, None, f"unknown format {fmt!r}; use {AUTO_FORMAT} or one of {_supported_list()}"
        )
    doc = SourceDocument(source_name, decode_text(data, source_name), max_utterances=utterance_limit)
    if not doc.looks_like_json:
        lines = doc.text.count("\n") + 1
        if doc.max_fragments is not None and lines > doc.max_fragments:
            raise doc.error(None, f"{lines:,} lines is more than a call within the limit of {utterance_limit:,} "
                            "utterances (POSTCALL_MAX_UTTERANCES_PER_CALL) can need")
    name = _detect(doc) if fmt == AUTO_FORMAT else fmt
    if not doc.text.strip():
        raise doc.error(None, "the file is empty")
    try:
        call = FORMATS_BY_NAME[name].parse(doc)
        doc.release()
        return assemble(call, source=source_name, detected_format=name, agent_speaker=agent_speaker,
                        max_utterances=utterance_limit)
    except IngestError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # A parser let a structural surprise through. Bad input must never surface as anything but
        # an IngestError, so report it as one, and log the traceback so the parser can be fixed.
        logger.exception("unexpected %s in the %s parser for %s", type(exc).__name__, name, source_name)
        raise IngestError(source_name, None, f"unexpected structure for format {name}: {exc!r}") from exc


def load_transcript(
    path: Path,
    *,
    fmt: str = AUTO_FORMAT,
    agent_speaker: str | None = None,
    max_bytes: int | None = None,
    max_utterances: int | None = None,
) -> ParsedTranscript:
    """Read and parse one transcript file. The size limit is checked before the file is read."""
    source = str(path)
    limit = _size_limit(max_bytes)
    try:
        if path.is_dir():
            raise IngestError(source, None, "is a directory, not a transcript file")
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            # Opening a named pipe waits for a writer that may never come: the command would hang.
            raise IngestError(source, None, "not a regular file (a pipe, socket or device); give the file itself")
        size = status.st_size
        if size > limit:
            raise _too_large(source, size, limit)
        with path.open("rb") as handle:
            data = handle.read(limit + 1)  # the file may have grown since stat()
    except FileNotFoundError as exc:
        raise IngestError(source, None, "file not found") from exc
    except OSError as exc:
        raise IngestError(source, None, f"cannot read the file: {exc.strerror or exc}") from exc
    return parse_bytes(data, source_name=source, fmt=fmt, agent_speaker=agent_speaker, max_bytes=limit,
                       max_utterances=max_utterances)
