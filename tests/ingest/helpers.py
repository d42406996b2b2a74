"""Small helpers shared by the ingestion tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import IngestError
from app.ingest import ParsedTranscript, parse_bytes

SOURCE = "call-42.json"


def parse_json_value(value: Any, **options: Any) -> ParsedTranscript:
    return parse_bytes(json.dumps(value).encode(), source_name=SOURCE, **options)


def parse_text(text: str, **options: Any) -> ParsedTranscript:
    return parse_bytes(text.encode(), source_name=SOURCE, **options)


def ingest_error(data: bytes | str | dict[str, Any] | list[Any], **options: Any) -> IngestError:
    """Parse input that must fail, and return the IngestError (no other exception type is allowed)."""
    if isinstance(data, dict | list):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    with pytest.raises(IngestError) as caught:
        parse_bytes(data, source_name=SOURCE, **options)
    error = caught.value
    assert error.source == SOURCE
    assert SOURCE in str(error)
    return error
