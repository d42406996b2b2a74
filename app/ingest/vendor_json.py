"""Vendor JSON read through Pydantic models: each parser declares the fields it uses (`extra="ignore"`
drops the rest) and `read` validates the whole document at once.

A validation failure becomes the same `IngestError` the parsers always gave: the file, the field path
(`results.items[2].alternatives`) and the problem in a JSON author's words ("expected an array, got
null", "required field is missing"). Strict mode: a number is never taken for a string or the reverse,
except the two leniencies vendors need (speaker labels may be integers, times may be numeric strings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from app.errors import IngestError
from app.ingest.source import SourceDocument, describe, join_path


class VendorModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, frozen=True)


Model = TypeVar("Model", bound=VendorModel)

# The problem of each Pydantic error type, worded as the hand-written reader worded it.
_EXPECTED = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "an array",
    "string_type": "a string",
    "float_type": "a number",
    "int_type": "a number",
    "bool_type": "a boolean",
}
_PROBLEM = "problem"  # the error type of this module's own validators: their message is the problem


def _problem(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe(error['input'])}"
    if kind == "finite_number":
        return f"expected a finite number, got {error['input']}"
    return error["msg"]


def field_path(loc: Sequence[int | str]) -> str:
    path = ""
    for key in loc:
        path = join_path(path, key)
    return path or "(top level)"


def read(doc: SourceDocument, model: type[Model]) -> Model:
    """The document as `model`; the first problem found is an IngestError naming its place."""
    return read_part(doc, TypeAdapter(model), doc.json(), ())


Part = TypeVar("Part")


def read_part(doc: SourceDocument, shape: TypeAdapter[Part], value: Any, at: Sequence[int | str]) -> Part:
    """`value`, found at `at` in the document, as `shape`: for a part read only when the parser uses it
    (a vendor's word list beside the utterances it also gives, say)."""
    try:
        return shape.validate_python(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise IngestError(doc.name, field_path([*at, *error["loc"]]), _problem(error)) from None


def label_at(doc: SourceDocument, value: Any, at: Sequence[int | str]) -> str | None:
    """A speaker label found at `at` (see `Label`), for parsers that choose between label fields."""
    return read_part(doc, _LABEL, value, at)


def _fail(message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(_PROBLEM, message, context)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("expected a number, got {kind}", kind=describe(value))
    if not math.isfinite(value):
        raise _fail("expected a finite number, got {value}", value=value)
    return float(value)


def _label(value: Any) -> str | None:
    """A speaker label or id: vendors use strings ("A", "spk_0") or integers (0, 1)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _fail("expected a string, got {kind}", kind=describe(value))
    return value.strip() or None


def _time(value: Any) -> float | None:
    """A time offset in the field's own unit; AWS Transcribe writes times as strings of seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail("expected a time in seconds, got {value}", value=repr(value)) from None
    return _number(value)


# For an optional part that vendors sometimes fill with another shape: anything but an object is ignored.
ignored_unless_object = BeforeValidator(lambda value: value if isinstance(value, dict) else None)

Label = Annotated[str | None, BeforeValidator(_label)]
Time = Annotated[float | None, BeforeValidator(_time)]
Number = Annotated[float, BeforeValidator(_number)]
OptionalNumber = Annotated[float | None, BeforeValidator(lambda value: None if value is None else _number(value))]
_LABEL: TypeAdapter[str | None] = TypeAdapter(Label)
