"""Raw input handling shared by every parser: bytes to text, text to JSON (vendor fields are then read
through Pydantic models, app/ingest/vendor_json.py).

Every problem becomes an `IngestError` naming the file, the place and the problem, so a parser
never lets a `KeyError`, `TypeError`, `UnicodeDecodeError` or `JSONDecodeError` escape.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from email.message import Message
from typing import Any

from pydantic import ValidationError

from app.errors import NUL_CHARACTER_PROBLEM, IngestError
from app.schemas.transcript import CallMetadata
from app.text.storable import unstorable_problem

# Byte-order marks we honour. Windows tools (Teams, Excel exports) often write UTF-16 with a BOM;
# anything else must be UTF-8 (a UTF-8 BOM is tolerated and dropped). UTF-32's marks come first: FF FE 00 00
# (UTF-32LE) begins with FF FE, UTF-16LE's mark.
_BOM_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# A declared "utf-16" or "utf-32" without a byte-order mark is big-endian (RFC 2781 section 4.3; the Unicode
# standard says the same of UTF-32), where Python's codecs would take the machine's order.
_NO_BOM_ORDER = {"utf-16": "utf-16-be", "utf-32": "utf-32-be"}
# Media types whose body is JSON: RFC 8259 defines no charset for them (JSON is UTF-8), so a declared one is
# ignored.
_JSON_MEDIA_TYPE = re.compile(r"^application/(?:json|[\w.+-]*\+json|(?:x-)?ndjson|jsonl|x-jsonlines)$")
# The bytes of a JSON document's opening (the same test as SourceDocument.looks_like_json), in ASCII.
_JSON_BYTES = re.compile(rb"\s*(?:\{|\[\s*(?:[\[{\]\"]|$))")


# Python codecs that are no character set any sender declares: they would read the bytes as escape
# sequences or host names, not as text.
_NOT_CHARSETS = frozenset({"unicode_escape", "raw_unicode_escape", "escape", "idna", "punycode", "undefined"})
ENCODING_HINT = ("declare the encoding: the upload's Content-Type charset (text/plain; charset=windows-1252) "
                 "or --encoding on the command line")


class UnknownEncodingError(ValueError):
    """A declared character set that Python has no text codec for (or one that is no character set)."""


def _decodes_bytes_to_text(codec_name: str) -> None:
    """LookupError for a codec that is not bytes -> text (base64, rot13, zlib)."""
    # A text codec that cannot read this one byte (utf-16) is still a text codec.
    with contextlib.suppress(UnicodeError):
        b"a".decode(codec_name)


def text_encoding(declared: str) -> str:
    """The Python codec name of a declared character set (`latin-1`, `ISO-8859-1`, `windows-1252`...);
    UnknownEncodingError when there is none."""
    name = declared.strip().strip('"').strip()
    if not name:
        raise UnknownEncodingError("the declared encoding is empty")
    try:
        codec = codecs.lookup(name)
        _decodes_bytes_to_text(codec.name)
    except LookupError:
        raise UnknownEncodingError(
            f"unknown encoding {declared!r}; use a character set name such as utf-8, latin-1 or windows-1252"
        ) from None
    if codec.name.replace("-", "_") in _NOT_CHARSETS:
        raise UnknownEncodingError(f"{declared!r} is not a character set; use one such as utf-8 or windows-1252")
    if codec.name == "utf-7":
        # Its plain ASCII spells other characters ("+ADw-" is "<"): text a filter upstream passed as harmless
        # is not what is stored. The WHATWG Encoding Standard, which browsers follow, dropped it for that.
        raise UnknownEncodingError(f"{declared!r} is refused (UTF-7 hides characters in plain ASCII); send the "
                                   f"text as utf-8")
    return codec.name


def declared_charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type header (`text/plain; charset="latin-1"`), or None: also for
    an empty one (`charset=`), and for a JSON media type (application/json, +json, NDJSON), for which RFC 8259
    defines no charset ("no effect on compliant recipients")."""
    if not content_type:
        return None
    header = Message()
    header["content-type"] = content_type
    if _JSON_MEDIA_TYPE.match(header.get_content_type()):
        return None
    charset = header.get_param("charset")
    if charset is None:
        return None
    # RFC 2231 continuations come back as a tuple; a plain parameter as a string.
    value = str(charset[2] if isinstance(charset, tuple) else charset)
    return value if value.strip().strip('"').strip() else None


@functools.cache
def is_single_byte_charset(codec_name: str) -> bool:
    """Whether a codec reads each byte as one character and ASCII as ASCII (latin-1, iso-8859-*, windows-125x,
    koi8-r, mac-roman, cp437...): such a codec reads any bytes, so a wrong declaration is never noticed."""
    try:
        if bytes(range(128)).decode(codec_name) != "".join(map(chr, range(128))):
            return False  # EBCDIC, UTF-16...
        if codec_name == "ascii":
            return True
        high = bytes(range(128, 256)).decode(codec_name, errors="replace")
        # One character per byte, most of them defined (windows-1252 leaves 5 undefined; UTF-8 and the
        # 7-bit ISO-2022 codecs define none alone).
        return len(high) == 128 and high.count("\ufffd") <= 32
    except (LookupError, UnicodeError):
        return False


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_unicode(codec_name: str) -> bool:
    return codec_name.startswith(("utf-8", "utf-16", "utf-32"))


def _reversed_byte_order(data: bytes, codec_name: str) -> str | None:
    """For big-endian UTF-16/32 without a byte-order mark: the little-endian codec when the bytes are plainly
    in that order (the NULs of ASCII characters fall where little-endian puts them), else None."""
    width = 2 if codec_name.startswith("utf-16") else 4
    if len(data) < width * 4:
        return None
    units = len(data) // width
    big_nuls = data[0 : units * width : width].count(0)  # the high byte first: ASCII's NUL at 0
    little_nuls = data[width - 1 : units * width : width].count(0)
    if little_nuls > units // 2 and big_nuls < units // 8:
        return codec_name.replace("-be", "-le")
    return None


def decode_text(data: bytes, source: str, *, encoding: str | None = None) -> str:
    """The text of transcript bytes (see `decode_with_notes`, whose warnings this drops)."""
    return decode_with_notes(data, source, encoding=encoding)[0]


def decode_with_notes(data: bytes, source: str, *, encoding: str | None = None) -> tuple[str, list[str]]:
    """Decode transcript bytes, with warnings about how. Without a declared `encoding`: UTF-8 (BOM optional)
    or BOM-marked UTF-16/32, nothing else. With one (a Content-Type charset, `--encoding`), that encoding,
    except that:

    - a byte-order mark wins (as browsers do): the mark cannot be there by accident, a declaration can be stale;
    - JSON is UTF-8 (RFC 8259): a declared charset that is not UTF-8/16/32 is ignored for it, with a warning;
    - bytes that are valid UTF-8 holding non-ASCII characters, declared in a single-byte charset (latin-1,
      windows-1252...), are read as UTF-8 with a warning: the single-byte reading would turn "é" into "Ã©"
      (clients commonly label raw UTF-8 files ISO-8859-1);
    - "utf-16" / "utf-32" without a byte-order mark is big-endian (RFC 2781); bytes plainly little-endian
      are an error saying to declare utf-16le.

    An unknown `encoding` is an IngestError."""
    notes: list[str] = []
    declared: str | None = None
    if encoding is not None:
        try:
            declared = text_encoding(encoding)
        except UnknownEncodingError as exc:
            raise IngestError(source, None, str(exc)) from None
    chosen = declared or "utf-8"
    json_ignores_declared = False
    bom = next((bom_encoding for mark, bom_encoding in _BOM_ENCODINGS if data.startswith(mark)), None)
    if bom is not None:
        chosen = bom
    elif declared is not None and not _is_unicode(declared) and _JSON_BYTES.match(data):
        chosen, json_ignores_declared = "utf-8", True
        if not data.isascii():
            notes.append(f"the declared charset {encoding!r} is ignored: JSON is UTF-8 (RFC 8259), so the file "
                         "was read as UTF-8")
    elif declared in _NO_BOM_ORDER:
        chosen = _NO_BOM_ORDER[declared]
        reversed_order = _reversed_byte_order(data, chosen)
        if reversed_order is not None:
            raise IngestError(
                source, None, f"declared {encoding!r} without a byte-order mark, which is big-endian (RFC 2781), "
                f"but the bytes are little-endian; declare {reversed_order} or add a byte-order mark")
    elif declared is not None and is_single_byte_charset(declared) and not data.isascii() and _valid_utf8(data):
        chosen = "utf-8"
        notes.append(f"the declared charset {encoding!r} was overridden: the bytes are valid UTF-8 with non-ASCII "
                     f"characters, which {encoding} would have misread ('é' as 'Ã©'), so they were read as UTF-8")
    try:
        text = data.decode(chosen)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        name = chosen.upper().removesuffix("-SIG")
        if json_ignores_declared:
            advice = (f"JSON is always UTF-8 (RFC 8259), so the declared {encoding!r} does not apply; convert the "
                      "file to UTF-8")
        elif encoding is not None:
            advice = f"the file is not {encoding!r} as declared; declare the encoding it is in"
        else:
            advice = "transcripts must be UTF-8, or " + ENCODING_HINT
        raise IngestError(
            source,
            f"line {line} (byte {exc.start})",
            f"not valid {name} text ({exc.reason}); {advice}",
        ) from exc
    nul = text.find("\x00")
    if nul >= 0:
        # UTF-16 without a byte-order mark decodes as UTF-8 full of NULs: say so.
        hint = " (UTF-16 without a byte-order mark?)" if text.count("\x00") > len(text) // 4 else ""
        raise IngestError(source, f"line {text.count(chr(10), 0, nul) + 1}", NUL_PROBLEM + hint)
    return text, notes


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


class _JsonReader:
    """A JSON decoder that refuses repeated keys and NaN, and counts the objects it builds (`limit`)."""

    def __init__(self, max_objects: int | None) -> None:
        self.max_objects = max_objects
        self.built = 0
        self.decoder = json.JSONDecoder(parse_constant=_reject_json_constant, object_pairs_hook=self._object)

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self.built += 1
        if self.max_objects is not None and self.built > self.max_objects:
            raise TooManyObjectsError(self.max_objects)
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise DuplicateKeyError(key)
                seen.add(key)
        return obj


@contextlib.contextmanager
def _json_errors(text: str, source: str, too_many: str) -> Iterator[None]:
    """JSON parsing errors as IngestErrors; `too_many` says what held more objects than allowed."""
    try:
        yield
    except TooManyObjectsError as exc:
        raise IngestError(
            source, None, f"{too_many} holds more than {exc.args[0]:,} JSON objects, more than a call within "
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


def parse_json(text: str, source: str, *, max_objects: int | None = None) -> Any:
    """Parse JSON text; a syntax error becomes an IngestError pointing at line and column.

    A key repeated within one object is an error (the last value would win silently), and parsing stops
    once `max_objects` objects are built, so an oversized document never becomes a full object graph."""
    reader = _JsonReader(max_objects)
    with _json_errors(text, source, "the document"):
        value = reader.decoder.decode(text)
    if _SUSPECT_ESCAPE.search(text):
        _check_strings(value, "", source)
    return value


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def parse_json_array(text: str, source: str, *, max_objects_per_element: int | None = None) -> list[tuple[Any, str]]:
    """Parse a JSON text whose top level is an array, element by element: each element's value and its text.
    The object budget is per element (a file of many calls is not held to one call's budget); the same
    errors as `parse_json` otherwise. The text must start (after whitespace) with "["."""
    reader = _JsonReader(max_objects_per_element)
    elements: list[tuple[Any, str]] = []
    position = _WHITESPACE.match(text).end()  # type: ignore[union-attr]  # always matches
    if text[position : position + 1] != "[":
        return [(parse_json(text, source, max_objects=max_objects_per_element), text)]
    position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    while True:
        if text[position : position + 1] == "]" and not elements:
            position += 1
            break
        reader.built = 0
        with _json_errors(text, source, f"element [{len(elements)}]"):
            value, end = reader.decoder.raw_decode(text, position)
        elements.append((value, text[position:end]))
        position = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
        delimiter = text[position : position + 1]
        if delimiter == "]":
            position += 1
            break
        if delimiter != ",":
            with _json_errors(text, source, "the document"):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
        position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
    if text[position:].strip(" \t\n\r"):
        with _json_errors(text, source, "the document"):
            raise json.JSONDecodeError("Extra data", text, _WHITESPACE.match(text, position).end())  # type: ignore[union-attr]
    if _SUSPECT_ESCAPE.search(text):
        for index, (value, _) in enumerate(elements):
            _check_strings(value, f"[{index}]", source)
    return elements


class UnstorableJsonError(IngestError):
    """Valid JSON holding a string Postcall does not store (U+0000, a lone surrogate): not a syntax error, so
    not reported as "the JSON formats need valid JSON"."""


def _check_strings(value: Any, path: str, source: str) -> None:
    """Refuse a string (key or value) holding U+0000 or a lone surrogate, naming its field path."""
    if isinstance(value, str):
        problem = unstorable_problem(value)
        if problem:
            raise UnstorableJsonError(source, path or "(top level)", problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = unstorable_problem(key)
            if problem:
                raise UnstorableJsonError(source, join_path(path, ascii(key)), f"the key {problem}")
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

    def __init__(
        self, name: str, text: str, *, max_utterances: int | None = None, notes: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.text = text
        self._json: Any = _NOT_PARSED
        # Warnings about the file as a whole (how it was decoded), given with each of its calls.
        self.notes = list(notes)
        # The per-call utterance limit; word-level formats may carry FRAGMENTS_PER_UTTERANCE times as
        # many fragments (words, JSON objects, lines) before they are grouped into utterances.
        self.max_utterances = max_utterances

    @classmethod
    def of_json_value(
        cls, name: str, value: Any, *, text: str | None = None, max_utterances: int | None = None,
        notes: Sequence[str] = (),
    ) -> SourceDocument:
        """A document already parsed: one call of a multi-call file (an element of a JSON array of calls).
        Its text is `text` (the element as written), or the value written back as JSON, for the checks that
        look at the text."""
        doc = cls(name, json.dumps(value, ensure_ascii=False) if text is None else text,
                  max_utterances=max_utterances, notes=notes)
        doc._json = value
        return doc

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
