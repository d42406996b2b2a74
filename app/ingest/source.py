"""Raw input handling shared by every parser: bytes to text, text to JSON (vendor fields are then read
through Pydantic models, app/ingest/vendor_json.py).

Every problem becomes an `IngestError` naming the file, the place and the problem, so a parser
never lets a `KeyError`, `TypeError`, `UnicodeDecodeError` or `JSONDecodeError` escape.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.errors import NUL_CHARACTER_PROBLEM, IngestError
from app.schemas.transcript import CallMetadata
from app.text.storable import unstorable_problem

# Byte-order marks we honour. Windows tools (Teams, Excel exports) often write UTF-16 with a BOM;
# anything else must be UTF-8 (a UTF-8 BOM is tolerated and dropped).
_BOM_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, source: str) -> str:
    """Decode transcript bytes: UTF-8 (BOM optional) or BOM-marked UTF-16, nothing else."""
    encoding = "utf-8"
    for bom, bom_encoding in _BOM_ENCODINGS:
        if data.startswith(bom):
            encoding = bom_encoding
            break
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise IngestError(
            source,
            f"line {line} (byte {exc.start})",
            f"not valid {encoding.upper().removesuffix('-SIG')} text ({exc.reason}); "
            "transcripts must be UTF-8",
        ) from exc
    nul = text.find("\x00")
    if nul >= 0:
        # UTF-16 without a byte-order mark decodes as UTF-8 full of NULs: say so.
        hint = " (UTF-16 without a byte-order mark?)" if text.count("\x00") > len(text) // 4 else ""
        raise IngestError(source, f"line {text.count(chr(10), 0, nul) + 1}", NUL_PROBLEM + hint)
    return text


NUL_PROBLEM = NUL_CHARACTER_PROBLEM
# JSON escapes that decode to what a transcript cannot hold: U+0000, and UTF-16 surrogate halves (valid
# only in pairs, which the check below confirms). Only when one occurs is the parsed document walked.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


class TooManyObjectsError(ValueError):
    """The JSON document holds more objects than any call within the utterance limit needs."""


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice (parsers would silently keep the last one)."""


def _reject_json_constant(name: str) -> float:
    # Python's json module accepts NaN and Infinity by default; no transcript means either.
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(text: str, source: str, *, max_objects: int | None = None) -> Any:
    """Parse JSON text; a syntax error becomes an IngestError pointing at line and column.

    A key repeated within one object is an error (the last value would win silently), and parsing stops
    once `max_objects` objects are built, so an oversized document never becomes a full object graph."""
    built = 0

    def object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal built
        built += 1
        if max_objects is not None and built > max_objects:
            raise TooManyObjectsError(max_objects)
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise DuplicateKeyError(key)
                seen.add(key)
        return obj

    try:
        value = json.loads(text, parse_constant=_reject_json_constant, object_pairs_hook=object_from_pairs)
    except TooManyObjectsError:
        raise IngestError(
            source, None, f"the document holds more than {max_objects:,} JSON objects, more than a call within "
            "the utterance limit (POSTCALL_MAX_UTTERANCES_PER_CALL) can need"
        ) from None
    except DuplicateKeyError as exc:
        raise IngestError(
            source, None, f"key {exc.args[0]!r} appears twice in one object; each key may appear once"
        ) from None
    except json.JSONDecodeError as exc:
        truncated = not text[exc.pos :].strip()
        hint = " (the file looks truncated)" if truncated else ""
        raise IngestError(
            source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}{hint}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise IngestError(source, None, f"invalid JSON: {exc}") from exc
    if _SUSPECT_ESCAPE.search(text):
        _check_strings(value, "", source)
    return value


def _check_strings(value: Any, path: str, source: str) -> None:
    """Refuse a string (key or value) holding U+0000 or a lone surrogate, naming its field path."""
    if isinstance(value, str):
        problem = unstorable_problem(value)
        if problem:
            raise IngestError(source, path or "(top level)", problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable_problem(key)
            if problem:
                raise IngestError(source, join_path(path, ascii(key)), f"the key {problem}")
            _check_strings(item, join_path(path, key), source)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _check_strings(item, join_path(path, position), source)


def root_object(doc: SourceDocument) -> dict[str, Any]:
    """The document's top-level JSON object; anything else is an IngestError."""
    value = doc.json()
    if not isinstance(value, dict):
        raise IngestError(doc.name, "(top level)", f"expected an object, got {describe(value)}")
    return value


def join_path(path: str, key: str | int) -> str:
    """Extend a JSON field path: `results` + `channels` -> `results.channels`, + 0 -> `...[0]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """Name a JSON value's type the way a JSON author would."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_NOT_PARSED = object()
# Word-level formats (AWS, Deepgram...) give several JSON objects per word and many words per
# utterance; this bounds fragments, objects and lines per utterance allowed before grouping.
FRAGMENTS_PER_UTTERANCE = 10
_JSON_OPENING = re.compile(r"\s*(?:\{|\[\s*(?:[\[{\]\"]|$))")


class SourceDocument:
    """One input file: its name (for messages), its text, and its JSON value when it is JSON."""

    def __init__(self, name: str, text: str, *, max_utterances: int | None = None) -> None:
        self.name = name
        self.text = text
        self._json: Any = _NOT_PARSED
        # The per-call utterance limit; word-level formats may carry FRAGMENTS_PER_UTTERANCE times as
        # many fragments (words, JSON objects, lines) before they are grouped into utterances.
        self.max_utterances = max_utterances

    @property
    def max_fragments(self) -> int | None:
        return None if self.max_utterances is None else self.max_utterances * FRAGMENTS_PER_UTTERANCE

    def release(self) -> None:
        """Drop the parsed JSON once a parser has taken what it needs (one object graph at a time)."""
        self._json = _NOT_PARSED

    @property
    def looks_like_json(self) -> bool:
        # "[" alone is not enough: a plain-text transcript may open with a "[00:01]" stamp.
        return _JSON_OPENING.match(self.text) is not None

    def json(self) -> Any:
        """The parsed JSON value (parsed once); raises IngestError when the text is not JSON."""
        if self._json is _NOT_PARSED:
            self._json = parse_json(self.text, self.name, max_objects=self.max_fragments)
        return self._json

    def error(self, location: str | None, problem: str) -> IngestError:
        return IngestError(self.name, location, problem)


def call_metadata(source: str, fields: Mapping[str, tuple[str, Any]]) -> CallMetadata:
    """Build CallMetadata from `{field: (source location, value)}`; a bad value names its location."""
    values = {name: value for name, (_, value) in fields.items() if value is not None}
    try:
        return CallMetadata.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        location = fields[name][0] if name in fields else None
        raise IngestError(source, location, f"{name}: {error['msg']}") from exc
