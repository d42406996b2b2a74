"""`load_transcript` passes stored values straight to the models (the role as its stored string): the result
must be the model built from the typed values (values, their types, the fields set), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import unit_of_work
from app.ingest import load_transcript as ingest_file
from app.models import Call
from app.models import Utterance as UtteranceRow
from app.pipeline.calls import load_transcript, lock_call, lock_call_row
from app.pipeline.store import store_transcript
from app.schemas.transcript import CallMetadata, Role, Transcript, Utterance
from tests.support.transcripts import make_transcript


def _validated(session: Session, call_id: str) -> Transcript:
    """The transcript as `load_transcript` built it before: the role made an enum member before validation."""
    call = session.get(Call, call_id)
    assert call is not None
    rows = session.execute(select(UtteranceRow).where(UtteranceRow.call_id == call_id).order_by(UtteranceRow.index))
    return Transcript(
        metadata=CallMetadata(external_id=call.external_id, agent_id=call.agent_id, team=call.team,
                              started_at=call.started_at, language=call.language),
        utterances=[
            Utterance(index=row.index, speaker=row.speaker, role=Role(row.role), role_confidence=row.role_confidence,
                      start=row.start_s, end=row.end_s, text=row.text)
            for row in rows.scalars()
        ],
        source_format=call.source_format,
    )


def _assert_same_model(built: BaseModel, validated: BaseModel) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    for name in type(validated).model_fields:
        mine, theirs = getattr(built, name), getattr(validated, name)
        assert type(mine) is type(theirs), name  # 5 and 5.0 compare equal; the JSON sent to the model does not
        if isinstance(theirs, BaseModel):
            _assert_same_model(mine, theirs)
        if isinstance(theirs, list):
            assert len(mine) == len(theirs)
            for mine_item, their_item in zip(mine, theirs, strict=True):
                if isinstance(their_item, BaseModel):
                    _assert_same_model(mine_item, their_item)


def _edge_transcript() -> Transcript:
    """Values whose stored form could differ from the validated one: whole-number times, no times, a
    confidence of exactly 0 and 1, a non-UTC start, non-ASCII text."""
    return Transcript(
        metadata=CallMetadata(external_id="edge-1", agent_id=None, team="Ops \u00e9quipe",
                              started_at=datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
                              language="fr"),
        utterances=[
            Utterance(index=0, speaker="Agent", role=Role.agent, role_confidence=1, start=0, end=3, text="Bonjour."),
            Utterance(index=1, speaker="B", role=Role.customer, role_confidence=0.0, text="Oui \u2014 \u00e7a va"),
            Utterance(index=2, speaker="?", text="  mixed  spacing\nand lines  ", start=3.25, end=3.25),
        ],
        source_format="text",
    )


@pytest.mark.parametrize("source", ["edge", "card", "samples"])
def test_loaded_transcript_equals_the_validated_one(
    session_factory: sessionmaker[Session], samples_dir: Path, source: str
) -> None:
    if source == "edge":
        transcripts = [_edge_transcript()]
    elif source == "card":
        transcripts = [make_transcript()]
    else:
        transcripts = [ingest_file(path).transcript for path in sorted(samples_dir.iterdir())
                       if path.suffix in {".json", ".txt"}]
    for number, transcript in enumerate(transcripts):
        with unit_of_work(session_factory) as session:
            call_id = store_transcript(session, transcript, tenant="acme", external_id=f"{source}-{number}").call_id
        with unit_of_work(session_factory) as session:
            validated = _validated(session, call_id)
            row = lock_call_row(session, call_id)
            assert row is not None
            from_row = load_transcript(session, row)
            call = lock_call(session, call_id)
            assert call is not None
            from_call = load_transcript(session, call)
        _assert_same_model(from_row, validated)
        _assert_same_model(from_call, validated)
        assert from_row.model_dump_json() == validated.model_dump_json()
        assert from_row.content_hash() == transcript.content_hash()


def test_a_call_without_utterances_still_fails_validation(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, make_transcript(), tenant="acme", external_id="emptied").call_id
    with unit_of_work(session_factory) as session:
        session.execute(delete(UtteranceRow).where(UtteranceRow.call_id == call_id))
    with unit_of_work(session_factory) as session:
        row = lock_call_row(session, call_id)
        assert row is not None
        with pytest.raises(ValidationError, match="utterances"):
            load_transcript(session, row)


def test_stored_start_times_come_back_as_utc_instants(session_factory: sessionmaker[Session]) -> None:
    with unit_of_work(session_factory) as session:
        call_id = store_transcript(session, _edge_transcript(), tenant="acme", external_id="tz").call_id
    with unit_of_work(session_factory) as session:
        row = lock_call_row(session, call_id)
        assert row is not None
        started: Any = load_transcript(session, row).metadata.started_at
    assert started == datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
