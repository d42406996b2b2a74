"""Native JSON: the schema documented in docs/formats.md, and its rejections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.schemas.transcript import Role
from tests.ingest.helpers import ingest_error, parse_json_value


def native(*utterances: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {**metadata, "utterances": list(utterances)}


GREETING = {"speaker": "A", "role": "agent", "start": 0.0, "end": 2.0, "text": "Thanks for calling Acme."}
PROBLEM = {"speaker": "B", "role": "customer", "start": 2.5, "end": 5.0, "text": "My card was declined."}


def test_full_native_file_keeps_metadata_roles_and_times() -> None:
    parsed = parse_json_value(
        native(
            GREETING,
            PROBLEM,
            external_id="CALL-7",
            agent_id="agent-3",
            started_at="2024-05-01T09:30:00Z",
            language="en",
        )
    )
    transcript = parsed.transcript
    assert parsed.detected_format == "native"
    assert transcript.source_format == "native"
    assert transcript.metadata.external_id == "CALL-7"
    assert transcript.metadata.agent_id == "agent-3"
    assert transcript.metadata.started_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert transcript.metadata.language == "en"
    assert [(u.index, u.speaker, u.role, u.role_confidence) for u in transcript.utterances] == [
        (0, "A", Role.agent, 1.0),
        (1, "B", Role.customer, 1.0),
    ]
    assert (transcript.utterances[1].start, transcript.utterances[1].end) == (2.5, 5.0)
    assert parsed.warnings == []


def test_minimal_native_file_has_no_external_id_and_infers_roles() -> None:
    parsed = parse_json_value(
        native(
            {"speaker": "Jo", "text": "Thank you for calling Acme, how can I help you today?"},
            {"speaker": "Sam", "text": "Hi, I lost my card and I need to report it."},
        )
    )
    transcript = parsed.transcript
    assert transcript.metadata.external_id is None
    roles = {u.speaker: u.role for u in transcript.utterances}
    assert roles == {"Jo": Role.agent, "Sam": Role.customer}
    confidence = transcript.utterances[0].role_confidence
    assert confidence is not None
    assert 0.5 < confidence < 1.0


def test_index_is_optional_but_must_match_position_when_given() -> None:
    parsed = parse_json_value(native({**GREETING, "index": 0}, {**PROBLEM, "index": 1}))
    assert [u.index for u in parsed.transcript.utterances] == [0, 1]
    error = ingest_error(native({**GREETING, "index": 0}, {**PROBLEM, "index": 5}))
    assert error.location == "utterances[1].index"
    assert "position 1" in error.problem


def test_role_without_speaker_uses_the_role_as_label() -> None:
    parsed = parse_json_value(native({"role": "agent", "text": "Hello."}, {"role": "customer", "text": "Hi."}))
    assert [u.speaker for u in parsed.transcript.utterances] == ["agent", "customer"]


@pytest.mark.parametrize(
    ("document", "location", "fragment"),
    [
        (native({**GREETING, "txt": "typo"}), "utterances[0].txt", "unknown field"),
        (native({"speaker": "A"}), "utterances[0].text", "missing"),
        (native({**GREETING, "text": "   "}), "utterances[0].text", "empty"),
        (native({**GREETING, "text": "\u200b\u200b\u2060"}), "utterances[0].text", "empty"),  # shows nothing
        (native({**GREETING, "start": "soon"}), "utterances[0].start", "number"),
        (native({**GREETING, "start": True}), "utterances[0].start", "number"),
        (native({**GREETING, "role": "boss"}), "utterances[0].role", "agent"),
        (native({"text": "who said this?"}), "utterances[0]", "speaker"),
        (native(GREETING, started_at="yesterday"), "started_at", "iso 8601 date-time"),
        # Lax parsing read numbers as seconds since 1970: a start in 1970 or 2023, stored without a word.
        (native(GREETING, started_at=1700000000), "started_at", "iso 8601 date-time string"),
        (native(GREETING, started_at="1700000000"), "started_at", "iso 8601 date-time"),
        (native(GREETING, started_at="1714555800000"), "started_at", "iso 8601 date-time"),
        ({"utterances": "hello"}, "utterances", "list"),
        (native(GREETING, colour="blue"), "colour", "unknown field"),
    ],
)
def test_invalid_native_fields_name_the_field(document: dict[str, Any], location: str, fragment: str) -> None:
    error = ingest_error(document)
    assert error.location == location
    assert fragment in error.problem.lower()


def test_a_basic_form_iso_date_is_that_date() -> None:
    parsed = parse_json_value(native(GREETING, started_at="20240501"))
    assert parsed.transcript.metadata.started_at == datetime(2024, 5, 1)  # not 1970-08-23


def test_no_utterances_is_an_error() -> None:
    error = ingest_error({"external_id": "x", "utterances": []})
    assert "no utterances" in error.problem


def test_several_problems_are_counted() -> None:
    error = ingest_error(native({"speaker": "A"}, {"speaker": "B"}))
    assert "1 more problem" in error.problem


def test_an_explicit_unknown_role_is_kept_and_the_others_are_inferred() -> None:
    # "unknown" given says neither party (an IVR, a third party): it was inferred over, and complement
    # inference made such a speaker a customer.
    parsed = parse_json_value(
        native(
            {"speaker": "Menu", "role": "unknown", "text": "Press one for billing, two for support."},
            {"speaker": "A", "text": "Good morning, you've reached Acme support. How can I help you?"},
            {"speaker": "B", "text": "I was charged twice on my bill."},
        )
    )
    assert next((u.role, u.role_confidence) for u in parsed.transcript.utterances) == (Role.unknown, 1.0)
    assert [u.role for u in parsed.transcript.utterances][1:] == [Role.agent, Role.customer]
    named = parse_json_value(
        native(
            {"speaker": "Menu", "role": "unknown", "text": "Your call may be recorded."},
            {"speaker": "A", "role": "agent", "text": "Good morning, you've reached Acme support."},
            {"speaker": "B", "text": "I was charged twice on my bill."},
        )
    )
    assert [u.role for u in named.transcript.utterances] == [Role.unknown, Role.agent, Role.customer]


def test_every_role_unknown_is_kept_with_a_warning() -> None:
    parsed = parse_json_value(
        native(
            {"speaker": "A", "role": "unknown", "text": "Good morning, you've reached Acme support."},
            {"speaker": "B", "role": "unknown", "text": "I was charged twice on my bill."},
        )
    )
    assert [u.role for u in parsed.transcript.utterances] == [Role.unknown, Role.unknown]
    assert any("no speaker is the agent or the customer" in warning for warning in parsed.warnings)


def test_a_start_without_a_time_zone_is_taken_as_utc_with_a_warning() -> None:
    # A contact center's local time written without its offset was stored hours off without a word.
    naive = parse_json_value(native(GREETING, PROBLEM, started_at="2026-03-02T14:05:00"))
    assert any("has no time zone: taken as UTC" in warning for warning in naive.warnings)
    zoned = parse_json_value(native(GREETING, PROBLEM, started_at="2026-03-02T14:05:00+02:00"))
    assert not any("time zone" in warning for warning in zoned.warnings)
