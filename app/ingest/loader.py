"""Public entry points: a file or bytes in, a canonical transcript (or one IngestError) out.

A file may hold several calls: a JSON array of calls, or NDJSON (one call per line). `parse_calls` and
`load_calls` read each of them, with its own result or error; `parse_bytes` and `load_transcript` read
one call, and refuse a file of several with an error that says so.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import get_settings
from app.errors import IngestError
from app.ingest.assemble import assemble
from app.ingest.formats import DETECTION_MARKS, FORMATS, FORMATS_BY_NAME, SUPPORTED_FORMATS
from app.ingest.model import ParsedTranscript
from app.ingest.source import (
    SourceDocument,
    UnstorableJsonError,
    decode_text,
    decode_with_notes,
    describe,
    parse_json,
    parse_json_array,
)

AUTO_FORMAT = "auto"
# How many of an unknown JSON object's keys an error names.
_KEYS_NAMED = 8

logger = logging.getLogger(__name__)


class FormatParseError(IngestError):
    """An IngestError that names the format the file was read as (`format`, and whether it was detected or
    asked for), or, when no format matched, the formats tried (`formats_tried`)."""

    def __init__(
        self,
        source: str,
        location: str | None,
        problem: str,
        *,
        format: str | None,
        detected: bool = True,
        formats_tried: Sequence[str] = (),
    ) -> None:
        super().__init__(source, location, problem)
        self.format = format
        self.detected = detected
        self.formats_tried = tuple(formats_tried) if formats_tried else ((format,) if format else ())
        if format is not None:
            how = "detected from the content" if detected else "as asked"
            message = f"{self.args[0]} (read as format {format}, {how})"
            self.args = (message,)

    @classmethod
    def reading(cls, error: IngestError, fmt: str, *, detected: bool) -> FormatParseError:
        if isinstance(error, FormatParseError):
            return error
        named = cls(error.source, error.location, error.problem, format=fmt, detected=detected)
        named.__cause__ = error.__cause__
        return named


@dataclass(slots=True)
class CallInFile:
    """One call of a file: its place in the file (`[3]`, an element of a JSON array of calls; `line 4`, of
    NDJSON; None when the file is one call) and its transcript, or the error that stopped it."""

    position: str | None
    parsed: ParsedTranscript | None = None
    error: IngestError | None = None


def _supported_list() -> str:
    return ", ".join(SUPPORTED_FORMATS)


def _size_limit(max_bytes: int | None) -> int:
    return get_settings().max_transcript_bytes if max_bytes is None else max_bytes


def _utterance_limit(max_utterances: int | None) -> int:
    return get_settings().max_utterances_per_call if max_utterances is None else max_utterances


def _too_large(source: str, size: int, limit: int) -> IngestError:
    return IngestError(source, None, f"file is {size:,} bytes, over the {limit:,}-byte limit")


def _no_format_reason(doc: SourceDocument) -> str:
    """What the document is, said so that one sees why no format's mark matched it."""
    if doc.looks_like_json:
        value = doc.json()
        if isinstance(value, dict):
            marks = "; ".join(f"{name}: {mark}" for name, mark in DETECTION_MARKS.items())
            return (f"a JSON object with the keys {_keys_of(value)}, which have no format's marks "
                    f"(keys looked for: {marks})")
        return f"JSON, but {describe(value)} at the top level, not a call (an object)"
    first_line = next((line.strip() for line in doc.text.splitlines() if line.strip()), "")
    return (f"text whose first line, {first_line[:60]!r}, is not a 'Speaker: text' line (format text), "
            "'WEBVTT' (webvtt) or an SRT cue number (srt)")


def _detect(doc: SourceDocument) -> str:
    if not doc.text.strip():
        raise doc.error(None, "the file is empty")
    try:
        for transcript_format in FORMATS:
            if transcript_format.detect(doc):
                return transcript_format.name
        reason = _no_format_reason(doc)
    except IngestError as exc:
        if not doc.looks_like_json:
            raise
        # Invalid JSON, found while the JSON formats were being tried: none of them can read it.
        raise _not_json(exc, AUTO_FORMAT) from exc
    raise FormatParseError(
        doc.name, None, f"not a transcript format Postcall knows: {reason}; tried the supported formats: "
        f"{_supported_list()}", format=None, formats_tried=SUPPORTED_FORMATS,
    )


def detect_format(data: bytes, *, source_name: str = "<input>", encoding: str | None = None) -> str:
    """The name of the format `data` is in; IngestError when it is none of SUPPORTED_FORMATS."""
    return _detect(SourceDocument(source_name, decode_text(data, source_name, encoding=encoding)))


def _document(
    data: bytes, source_name: str, fmt: str, max_bytes: int | None, utterance_limit: int, encoding: str | None
) -> SourceDocument:
    """The decoded document, after the checks that need no parsing (size, format name, line count)."""
    limit = _size_limit(max_bytes)
    if len(data) > limit:
        raise _too_large(source_name, len(data), limit)
    if fmt != AUTO_FORMAT and fmt not in FORMATS_BY_NAME:
        raise IngestError(
            source_name, None, f"unknown format {fmt!r}; use {AUTO_FORMAT} or one of {_supported_list()}"
        )
    text, notes = decode_with_notes(data, source_name, encoding=encoding)
    doc = SourceDocument(source_name, text, max_utterances=utterance_limit, notes=notes)
    if not doc.looks_like_json:
        lines = doc.text.count("\n") + 1
        if doc.max_fragments is not None and lines > doc.max_fragments:
            raise doc.error(None, f"{lines:,} lines is more than a call within the limit of {utterance_limit:,} "
                            "utterances (POSTCALL_MAX_UTTERANCES_PER_CALL) can need")
    return doc


def _parse_document(
    doc: SourceDocument, fmt: str, agent_speaker: str | None, utterance_limit: int
) -> ParsedTranscript:
    """One call's document to its transcript; every error names the format it was read as."""
    name = _detect(doc) if fmt == AUTO_FORMAT else fmt
    detected = fmt == AUTO_FORMAT
    if not doc.text.strip():
        raise doc.error(None, "the file is empty")
    transcript_format = FORMATS_BY_NAME[name]
    try:
        call = transcript_format.parse(doc)
        doc.release()
        call.warnings[:0] = doc.notes
        return assemble(call, source=doc.name, detected_format=name, agent_speaker=agent_speaker,
                        max_utterances=utterance_limit, time_unit=transcript_format.time_unit)
    except IngestError as exc:
        raise FormatParseError.reading(exc, name, detected=detected) from exc
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        # A parser let a structural surprise through. Bad input must never surface as anything but
        # an IngestError, so report it as one, and log the traceback so the parser can be fixed.
        logger.exception("unexpected %s in the %s parser for %s", type(exc).__name__, name, doc.name)
        raise FormatParseError(doc.name, None, f"unexpected structure: {exc!r}", format=name,
                               detected=detected) from exc


# --------------------------------------------------------------------------- files of several calls


@dataclass(slots=True)
class _CallsInDocument:
    """The calls of a multi-call document: what it is ("a JSON array", "NDJSON") and, per call, its
    position and its document or the error that stops it before it is parsed."""

    kind: str
    calls: list[tuple[str, SourceDocument | IngestError]]


def _keys_of(value: dict[str, Any]) -> str:
    keys = ", ".join(repr(key) for key in list(value)[:_KEYS_NAMED])
    more = f" and {len(value) - _KEYS_NAMED} more" if len(value) > _KEYS_NAMED else ""
    return f"{keys or '(none)'}{more}"


# Keys of an utterance (not a call) in the JSON of a tool that writes one call as an array of them.
_UTTERANCE_KEYS = frozenset({"text", "transcript", "content", "utterance", "words"})


def _array_calls(doc: SourceDocument, elements: list[tuple[Any, str]], fmt: str) -> _CallsInDocument:
    """The calls of a JSON array of calls. Auto-detected, an array none of whose objects is a call in a
    known format is one error for the file (not one per element)."""
    if not elements:
        raise doc.error("(top level)", "an empty JSON array: it holds no call")
    calls: list[tuple[str, SourceDocument | IngestError]] = []
    for index, (element, text) in enumerate(elements):
        position = f"[{index}]"
        name = f"{doc.name}{position}"
        if isinstance(element, dict):
            calls.append((position, SourceDocument.of_json_value(
                name, element, text=text, max_utterances=doc.max_utterances, notes=doc.notes)))
        else:
            problem = f"expected a call (a JSON object), got {describe(element)}"
            calls.append((position, IngestError(name, None, problem)))
    if fmt == AUTO_FORMAT and not any(
        isinstance(call, SourceDocument) and any(f.reads_json and f.detect(call) for f in FORMATS)
        for _, call in calls
    ):
        objects = [element for element, _ in elements if isinstance(element, dict)]
        first = objects[0]
        if _UTTERANCE_KEYS & set(first):
            # [{"speaker": ..., "text": ...}, ...]: one call's utterances, not calls.
            raise doc.error("(top level)", f"a JSON array of {len(elements):,} objects with {_keys_of(first)}: "
                            "utterances, not calls, and no format Postcall knows; write one call as "
                            '{"utterances": [{"speaker": ..., "text": ...}]} (the native format)')
        marks = "; ".join(f"{name}: {mark}" for name, mark in DETECTION_MARKS.items())
        raise FormatParseError(
            doc.name, "(top level)", f"a JSON array of {len(elements):,} elements, none of them a call in a format "
            f"Postcall knows: the first object has the keys {_keys_of(first)} (keys looked for: {marks})",
            format=None, formats_tried=[f.name for f in FORMATS if f.reads_json],
        )
    return _CallsInDocument("a JSON array of calls", calls)


def _ndjson_calls(doc: SourceDocument) -> _CallsInDocument | None:
    """The lines of NDJSON (one JSON object per line), or None when the text is not NDJSON."""
    lines = doc.text.splitlines()
    filled = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if len(filled) < 2:
        return None
    first_number, first_line = filled[0]
    try:
        first = parse_json(first_line, doc.name, max_objects=doc.max_fragments)
    except IngestError:
        return None  # a JSON document spread over lines ("{" alone on the first): not NDJSON
    if not isinstance(first, dict):
        return None
    calls: list[tuple[str, SourceDocument | IngestError]] = []
    for number, line in filled:
        position = f"line {number}"
        call = SourceDocument(f"{doc.name} {position}", line, max_utterances=doc.max_utterances, notes=doc.notes)
        if number == first_number:
            call = SourceDocument.of_json_value(call.name, first, text=line, max_utterances=doc.max_utterances,
                                                notes=doc.notes)
        calls.append((position, call))
    return _CallsInDocument("NDJSON, one call per line", calls)


def _calls_in(doc: SourceDocument, fmt: str) -> _CallsInDocument | None:
    """The calls of a document holding several (a JSON array of calls, or NDJSON); None for one call.

    Unambiguous because no supported format has an array at its top level, and a JSON document that is
    not valid as a whole but whose first line is a complete object is a stream of objects."""
    if not doc.looks_like_json or (fmt != AUTO_FORMAT and not FORMATS_BY_NAME[fmt].reads_json):
        return None
    if doc.text.lstrip().startswith("["):
        # Element by element: each call of the array has its own object budget.
        elements = parse_json_array(doc.text, doc.name, max_objects_per_element=doc.max_fragments)
        if not elements or any(isinstance(element, dict) for element, _ in elements):
            return _array_calls(doc, elements, fmt)
        return None  # [1, 2, 3]: no call in it; detection says what it is
    try:
        doc.json()
    except UnstorableJsonError:
        raise  # valid JSON, one of its strings refused: said as it is
    except IngestError as exc:
        calls = _ndjson_calls(doc)
        if calls is None:
            raise _not_json(exc, fmt) from exc
        return calls
    return None


def _not_json(error: IngestError, fmt: str) -> FormatParseError:
    """Invalid JSON, named with the format(s) that needed it."""
    if fmt != AUTO_FORMAT:
        return FormatParseError.reading(error, fmt, detected=False)
    return FormatParseError(
        error.source, error.location, f"{error.problem}; no format detected: the JSON formats need valid JSON",
        format=None, formats_tried=[f.name for f in FORMATS if f.reads_json],
    )


def _parse_ndjson_line(doc: SourceDocument) -> None:
    """Parse one NDJSON line now, so that its syntax error is placed by column: its line is its position."""
    try:
        doc.json()
    except IngestError as exc:
        location = exc.location.removeprefix("line 1, ") if exc.location else None
        raise IngestError(exc.source, location, exc.problem) from exc


def parse_calls(
    data: bytes,
    *,
    source_name: str,
    fmt: str = AUTO_FORMAT,
    agent_speaker: str | None = None,
    max_bytes: int | None = None,
    max_utterances: int | None = None,
    encoding: str | None = None,
) -> list[CallInFile]:
    """Parse every call the bytes hold: one, or each of a JSON array of calls or of NDJSON lines, each with
    its own transcript or error (one bad call does not stop the others). A problem of the whole file (size,
    encoding, invalid JSON) raises IngestError, and so does a one-call file's error."""
    utterance_limit = _utterance_limit(max_utterances)
    doc = _document(data, source_name, fmt, max_bytes, utterance_limit, encoding)
    several = _calls_in(doc, fmt)
    if several is None:
        return [CallInFile(None, _parse_document(doc, fmt, agent_speaker, utterance_limit))]
    doc.release()
    results: list[CallInFile] = []
    for position, call in several.calls:
        if isinstance(call, IngestError):
            results.append(CallInFile(position, error=call))
            continue
        try:
            if position.startswith("line "):
                try:
                    _parse_ndjson_line(call)
                except IngestError as exc:
                    raise _not_json(exc, fmt) from exc
            results.append(CallInFile(position, _parse_document(call, fmt, agent_speaker, utterance_limit)))
        except IngestError as exc:
            results.append(CallInFile(position, error=exc))
    return results


def parse_bytes(
    data: bytes,
    *,
    source_name: str,
    fmt: str = AUTO_FORMAT,
    agent_speaker: str | None = None,
    max_bytes: int | None = None,
    max_utterances: int | None = None,
    encoding: str | None = None,
) -> ParsedTranscript:
    """Parse one transcript held in memory (an upload). `source_name` is used in error messages.
    `encoding` is a declared character set (an HTTP charset); without one the bytes must be UTF-8 (or carry
    a byte-order mark). A file of several calls is an error: `parse_calls` reads those.

    A call beyond `max_utterances` (default POSTCALL_MAX_UTTERANCES_PER_CALL) is refused as early as its
    size shows: before JSON is fully parsed, before text lines are split."""
    utterance_limit = _utterance_limit(max_utterances)
    doc = _document(data, source_name, fmt, max_bytes, utterance_limit, encoding)
    several = _calls_in(doc, fmt)
    if several is not None:
        raise doc.error(None, f"the file holds {len(several.calls)} calls ({several.kind}); send one call at a "
                        "time, or read the file with `postcall ingest`, which stores each call")
    return _parse_document(doc, fmt, agent_speaker, utterance_limit)


def _read_file(path: Path, limit: int) -> bytes:
    source = str(path)
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
            return handle.read(limit + 1)  # the file may have grown since stat()
    except FileNotFoundError as exc:
        raise IngestError(source, None, "file not found") from exc
    except OSError as exc:
        raise IngestError(source, None, f"cannot read the file: {exc.strerror or exc}") from exc


def load_transcript(
    path: Path,
    *,
    fmt: str = AUTO_FORMAT,
    agent_speaker: str | None = None,
    max_bytes: int | None = None,
    max_utterances: int | None = None,
    encoding: str | None = None,
) -> ParsedTranscript:
    """Read and parse one transcript file. The size limit is checked before the file is read."""
    limit = _size_limit(max_bytes)
    return parse_bytes(_read_file(path, limit), source_name=str(path), fmt=fmt, agent_speaker=agent_speaker,
                       max_bytes=limit, max_utterances=max_utterances, encoding=encoding)


def load_calls(
    path: Path,
    *,
    fmt: str = AUTO_FORMAT,
    agent_speaker: str | None = None,
    max_bytes: int | None = None,
    max_utterances: int | None = None,
    encoding: str | None = None,
) -> list[CallInFile]:
    """Read and parse every call of one file (see `parse_calls`)."""
    limit = _size_limit(max_bytes)
    return parse_calls(_read_file(path, limit), source_name=str(path), fmt=fmt, agent_speaker=agent_speaker,
                       max_bytes=limit, max_utterances=max_utterances, encoding=encoding)
