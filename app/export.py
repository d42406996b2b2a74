"""Export a tenant's current extraction as CSV, JSON Lines or Parquet, streamed with bounded memory.

One record per claim of each call's current run (calls without one appear once, with empty claim
fields), carrying the call, the run's provider/model/prompt version, the claim with its resolved due date
and owner name, its evidence spans, and the review decisions on it and on its call.

Claim texts and evidence quotes are their masked copies (`claims.text_masked`, `evidence.quote_masked`:
card numbers, SSNs and accounts with the last four kept, as analysts see them in the views) unless the
caller asks for the stored text (`masked=False`: `postcall export --unmasked`, operator tooling). In CSV,
a text cell that a spreadsheet would read as a formula (starting with = + - @, a tab or a carriage
return) is written with a leading apostrophe: the text comes from calls and reviewers.

Memory stays bounded whatever the size: the rows come through a server-side cursor (PostgreSQL) in
batches of `batch_size`; each batch fetches its evidence and review events with one query each, is
encoded and handed on, and is dropped before the next. Parquet is written one row group per batch.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, select
from sqlalchemy.orm import Session

from app.errors import PostcallError
from app.models import Call, Claim, Evidence, ExtractionRun, ReviewEvent, Tenant
from app.privacy.mask import masked_copy

DEFAULT_BATCH_SIZE = 2000


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.jsonl: "application/x-ndjson",
    ExportFormat.parquet: "application/vnd.apache.parquet",
}


class ExportError(PostcallError):
    """The export cannot be made as asked (a bad time window, Parquet support not installed)."""


@dataclass(frozen=True)
class ExportWindow:
    """Calls whose start lies in [since, until); either end open. Calls without a start are left out
    whenever an end is given."""

    since: datetime | None = None
    until: datetime | None = None


def parse_instant(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are UTC."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ExportError(f"{name}: not an ISO 8601 date or date-time: {value!r}") from exc
    try:  # in UTC, which must exist: 0001-01-01T00:00+14:00 is before the first representable moment
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:
        raise ExportError(f"{name}: out of the representable range in UTC: {value!r}") from exc


CALL_COLUMNS = ["call_id", "external_id", "tenant", "agent_id", "team", "started_at", "call_state",
                "source_format"]
CLAIM_COLUMNS = ["run_id", "provider", "model", "prompt_version", "claim_id", "position", "kind", "text", "owner",
                 "owner_name", "due", "due_date", "due_at", "grounding_status", "grounding_reason", "review_status",
                 "origin"]
NESTED_COLUMNS = ["evidence", "review_decisions", "call_decisions"]
COLUMNS = CALL_COLUMNS + CLAIM_COLUMNS + NESTED_COLUMNS


def _rows_statement(tenant_id: int, window: ExportWindow) -> Any:
    conditions = [Call.tenant_id == tenant_id]
    if window.since is not None:
        conditions.append(Call.started_at >= window.since)
    if window.until is not None:
        conditions.append(Call.started_at < window.until)
    return (
        select(
            Call.id.label("call_id"), Call.external_id, Tenant.slug.label("tenant"), Call.agent_id, Call.team,
            Call.started_at, Call.state.label("call_state"), Call.source_format,
            ExtractionRun.id.label("run_id"), ExtractionRun.provider, ExtractionRun.model,
            ExtractionRun.prompt_version, Claim.id.label("claim_id"), Claim.position, Claim.kind, Claim.text,
            Claim.owner, Claim.owner_name, Claim.due, Claim.due_date, Claim.due_at, Claim.grounding_status,
            Claim.grounding_reason, Claim.review_status, Claim.origin,
            Claim.text_masked,  # last: not a column of the record (`_records` shows it in place of the text)
        )
        .join(Tenant, Tenant.id == Call.tenant_id)
        .outerjoin(ExtractionRun, ExtractionRun.id == Call.current_run_id)
        .outerjoin(Claim, Claim.run_id == Call.current_run_id)  # a run belongs to one call
        .where(*conditions)
        .order_by(Call.id, Claim.position, Claim.id)
    )


def iter_record_batches(
    session: Session, tenant_id: int, window: ExportWindow = ExportWindow(), batch_size: int = DEFAULT_BATCH_SIZE,
    *, masked: bool = True,
) -> Iterator[list[dict[str, Any]]]:
    """The export's records, `batch_size` at a time, in call then claim order; texts masked unless not
    `masked`."""
    # Core rather than ORM execution, and a server-side cursor (stream_results) on PostgreSQL: rows arrive
    # batch by batch, whatever the size of the tenant.
    connection = session.connection()
    result = connection.execution_options(stream_results=True, max_row_buffer=batch_size).execute(
        _rows_statement(tenant_id, window)
    )
    for rows in result.partitions(batch_size):
        yield _records(connection, rows, masked=masked)


_DATETIME_COLUMNS = {"started_at", "due_at"}
_ENUM_COLUMNS = {"call_state", "review_status"}


def _records(connection: Connection, rows: Sequence[Row[Any]], *, masked: bool) -> list[dict[str, Any]]:
    claim_ids = [row.claim_id for row in rows if row.claim_id is not None]
    call_ids = sorted({row.call_id for row in rows})
    evidence: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if claim_ids:
        for ev in connection.execute(
            select(Evidence.claim_id, Evidence.utterance_index, Evidence.cited_utterance, Evidence.char_start,
                   Evidence.char_end, Evidence.quote, Evidence.quote_masked, Evidence.status, Evidence.score)
            .where(Evidence.claim_id.in_(claim_ids))
            .order_by(Evidence.claim_id, Evidence.position)
        ):
            evidence[ev.claim_id].append({
                "utterance": ev.utterance_index, "cited_utterance": ev.cited_utterance,
                "char_start": ev.char_start, "char_end": ev.char_end,
                "quote": _shown(ev.quote, ev.quote_masked, masked), "status": ev.status,
                "score": ev.score,
            })  # fmt: skip
    claim_events: dict[int, list[dict[str, Any]]] = defaultdict(list)
    call_events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in connection.execute(
        select(ReviewEvent.call_id, ReviewEvent.claim_id, ReviewEvent.action, ReviewEvent.actor_name,
               ReviewEvent.created_at)
        .where(ReviewEvent.call_id.in_(call_ids))
        .order_by(ReviewEvent.id)
    ):
        decision = {"action": event.action, "actor": event.actor_name, "at": _iso(event.created_at)}
        if event.claim_id is None:
            call_events[event.call_id].append(decision)
        else:
            claim_events[event.claim_id].append(decision)
    flat = CALL_COLUMNS + CLAIM_COLUMNS
    records = []
    for row in rows:
        columns: list[Any] = list(row[:-1])
        text_masked = row[-1]
        record = dict(zip(flat, columns, strict=True))
        if record["text"] is not None:
            record["text"] = _shown(record["text"], text_masked, masked)
        for column in _DATETIME_COLUMNS:
            record[column] = _iso(record[column])
        for column in _ENUM_COLUMNS:
            value = record[column]
            record[column] = value.value if isinstance(value, StrEnum) else value
        due_date = record["due_date"]
        record["due_date"] = due_date.isoformat() if isinstance(due_date, date) else due_date
        claim_id = record["claim_id"]
        record["evidence"] = evidence.get(claim_id, []) if claim_id is not None else []
        record["review_decisions"] = claim_events.get(claim_id, []) if claim_id is not None else []
        record["call_decisions"] = call_events.get(record["call_id"], [])
        records.append(record)
    return records


def _shown(text: str, stored_masked: str | None, masked: bool) -> str:
    """The text as exported: its stored masked copy (masked now where a row holds none), or as stored."""
    return masked_copy(stored_masked, text) if masked else text


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


# --- encoders: each turns record batches into byte chunks ------------------------------------------


def encode(batches: Iterator[list[dict[str, Any]]], fmt: ExportFormat) -> Iterator[bytes]:
    if fmt is ExportFormat.csv:
        return _csv_chunks(batches)
    if fmt is ExportFormat.jsonl:
        return _jsonl_chunks(batches)
    return _parquet_chunks(batches)


def _csv_chunks(batches: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for batch in batches:
        for record in batch:
            writer.writerow(
                [_csv_cell(record[column], nested=column in NESTED_COLUMNS) for column in COLUMNS]
            )
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


# What a spreadsheet reads as the start of a formula (OWASP, "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A signed number (an E.164 phone-style id such as +15551234567) evaluates to itself: left as it is, so
# joins on such ids still work.
_PLAIN_NUMBER = re.compile(r"[+-]\d+(?:\.\d+)?")


def _csv_cell(value: Any, *, nested: bool) -> Any:
    if nested:
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value  # shown as text, never evaluated; the JSON Lines and Parquet exports keep it as is
    return value


def _jsonl_chunks(batches: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    for batch in batches:
        yield "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in batch).encode()


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


class _DrainableSink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come: Parquet without a seekable file."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _parquet_schema() -> Any:
    import pyarrow as pa

    evidence = pa.struct([
        ("utterance", pa.int32()), ("cited_utterance", pa.int32()), ("char_start", pa.int32()),
        ("char_end", pa.int32()), ("quote", pa.string()), ("status", pa.string()), ("score", pa.float64()),
    ])  # fmt: skip
    decision = pa.struct([("action", pa.string()), ("actor", pa.string()), ("at", pa.string())])
    integer_columns = {"run_id", "claim_id", "position"}
    fields = []
    for column in CALL_COLUMNS + CLAIM_COLUMNS:
        if column in integer_columns:
            fields.append(pa.field(column, pa.int64()))
        elif column in {"started_at", "due_at"}:
            fields.append(pa.field(column, pa.timestamp("us", tz="UTC")))
        elif column == "due_date":
            fields.append(pa.field(column, pa.date32()))
        else:
            fields.append(pa.field(column, pa.string()))
    fields += [pa.field("evidence", pa.list_(evidence)), pa.field("review_decisions", pa.list_(decision)),
               pa.field("call_decisions", pa.list_(decision))]
    return pa.schema(fields)


def _parquet_chunks(batches: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    if not parquet_available():
        raise ExportError("Parquet export needs pyarrow: pip install 'postcall[parquet]'")
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    sink = _DrainableSink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    try:
        for batch in batches:
            columns = {name: [record[name] for record in batch] for name in COLUMNS}
            for name in ("started_at", "due_at"):
                columns[name] = [datetime.fromisoformat(v) if v else None for v in columns[name]]
            columns["due_date"] = [date.fromisoformat(v) if v else None for v in columns["due_date"]]
            writer.write_table(pa.table(columns, schema=schema))  # one row group per batch
            yield sink.drain()
    finally:
        writer.close()
    yield sink.drain()


def export_bytes(
    session: Session,
    tenant_id: int,
    fmt: ExportFormat,
    window: ExportWindow = ExportWindow(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    masked: bool = True,
) -> Iterator[bytes]:
    """The whole export as byte chunks, one (or a few) per batch of records; texts masked unless not
    `masked`."""
    if fmt is ExportFormat.parquet and not parquet_available():
        raise ExportError("Parquet export needs pyarrow: pip install 'postcall[parquet]'")
    return encode(iter_record_batches(session, tenant_id, window, batch_size, masked=masked), fmt)
