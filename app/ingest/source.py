"""Raw input handling shared by every parser: bytes to text, text to JSON, typed JSON field access.

Every problem becomes an `IngestError` naming the file, the place and the problem, so a parser
never lets a `KeyError`, `TypeError`, `UnicodeDecodeError` or `JSONDecodeError` escape.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.errors import IngestError
from app.schemas.transcript import CallMetadata

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
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise IngestError(
            source,
            f"line {line} (byte {exc.start})",
            f"not valid {encoding.upper().removesuffix('-SIG')} text ({exc.reason}); "
            "transcripts must be UTF-8",
        ) from exc


def _reject_json_constant(name: str) -> float:
    # Python's json module accepts NaN and Infinity by default; no transcript means either.
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(text: str, source: str) -> Any:
    """Parse JSON text; a syntax error becomes an IngestError pointing at line and column."""
    try:
        return json.loads(text, parse_constant=_reject_json_constant)
    except json.JSONDecodeError as exc:
        truncated = not text[exc.pos :].strip()
        hint = " (the file looks truncated)" if truncated else ""
        raise IngestError(
            source, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}{hint}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise IngestError(source, None, f"invalid JSON: {exc}") from exc


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


class JsonReader:
    """Typed access to a parsed JSON document; every mismatch names the field path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, problem: str) -> IngestError:
        return IngestError(self.source, path or "(top level)", problem)

    def object(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected an object, got {describe(value)}")
        return value

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(path, f"expected an array, got {describe(value)}")
        return value

    def field(self, obj: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise self.error(join_path(path, key), "required field is missing")
        return obj[key]

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {describe(value)}")
        return value

    def optional_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def label(self, value: Any, path: str) -> str | None:
        """A speaker label or id: vendors use strings ("A", "spk_0") or integers (0, 1)."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        label = self.string(value, path).strip()
        return label or None

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(path, f"expected a number, got {describe(value)}")
        if not math.isfinite(value):
            raise self.error(path, f"expected a finite number, got {value}")
        return float(value)

    def optional_number(self, value: Any, path: str) -> float | None:
        return None if value is None else self.number(value, path)

    def seconds(self, value: Any, path: str, *, per_second: float = 1.0) -> float | None:
        """A time offset converted to seconds; `per_second` is 1000 for millisecond fields.

        Numeric strings are accepted because some vendors (AWS Transcribe) write times as strings.
        """
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(path, f"expected a time in seconds, got {value!r}") from None
        return self.number(value, path) / per_second


_NOT_PARSED = object()
_JSON_OPENING = re.compile(r"\s*(?:\{|\[\s*(?:[\[{\]\"]|$))")


class SourceDocument:
    """One input file: its name (for messages), its text, and its JSON value when it is JSON."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.reader = JsonReader(name)
        self._json: Any = _NOT_PARSED

    @property
    def looks_like_json(self) -> bool:
        # "[" alone is not enough: a plain-text transcript may open with a "[00:01]" stamp.
        return _JSON_OPENING.match(self.text) is not None

    def json(self) -> Any:
        """The parsed JSON value (parsed once); raises IngestError when the text is not JSON."""
        if self._json is _NOT_PARSED:
            self._json = parse_json(self.text, self.name)
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
