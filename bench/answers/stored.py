"""Dump every stored result of a set of calls to canonical JSON, to compare two versions of the pipeline.

What is dumped: the calls, their runs (minus timings and clock times), claims, evidence and outbox events
(payloads included). Database ids differ between two databases, so every id is replaced by a reference
built from content: `call:<external id>`, `run:<external id>:<n>` (n-th run of the call),
`claim:<run ref>:<position>`. Clock times (when a row was written) and stage timings are left out; times
that are content (a call's start, a claim's due moment) stay.

    python -m bench.answers.stored DATABASE_URL OUT.json [--tenant SLUG]
    python -m bench.answers.stored --compare A.json B.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.session import create_db_engine, make_session_factory
from app.models import Call, Claim, Evidence, ExtractionRun, OutboxEvent, Tenant
from app.pipeline.persist import idempotency_key

# Columns that say when a row was written or how long a stage took: they differ on every run.
CLOCK_COLUMNS = {
    "calls": {"state_changed_at", "enqueued_at", "created_at"},
    "extraction_runs": {"started_at", "finished_at"},
    "claims": {"created_at"},
    "evidence": set(),
    "outbox_events": {"created_at", "event_id"},
}
# Timing columns of a run (wall and CPU): measurements, not results.
TIMING_SUFFIXES = ("_ms",)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 9)
    return value


def _row(obj: Any, table: str, refs: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in obj.__table__.columns:
        name = column.key
        if name in CLOCK_COLUMNS[table] or name.endswith(TIMING_SUFFIXES) or name.startswith("cpu_"):
            continue
        if name in refs:
            row[name] = refs[name]
            continue
        row[name] = _plain(getattr(obj, name))
    return row


def _canonical_payload(value: Any, claim_refs: dict[int, str], run_refs: dict[int, str],
                       call_refs: dict[str, str]) -> Any:
    """An outbox payload with its ids replaced by references and its timestamps left out."""
    if isinstance(value, list):
        return [_canonical_payload(item, claim_refs, run_refs, call_refs) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in {"timestamp", "at", "decided_at"}:
            continue
        if key in {"id", "claim_id"} and isinstance(item, int):
            out[key] = claim_refs.get(item, f"claim:?{item}")
        elif key == "run_id" and isinstance(item, int):
            out[key] = run_refs.get(item, f"run:?{item}")
        elif key == "call_id" and isinstance(item, str):
            out[key] = call_refs.get(item, item)
        else:
            out[key] = _canonical_payload(item, claim_refs, run_refs, call_refs)
    return out


def dump_calls(session: Session, call_ids: Sequence[str] | None = None, tenant: str | None = None) -> dict[str, Any]:
    """The canonical dump of the given calls (all calls, or a tenant's, when none are given)."""
    query = select(Call).order_by(Call.external_id, Call.id)
    if call_ids is not None:
        query = query.where(Call.id.in_(list(call_ids)))
    if tenant is not None:
        query = query.join(Tenant, Tenant.id == Call.tenant_id).where(Tenant.slug == tenant)
    calls = list(session.scalars(query))
    call_refs = {call.id: f"call:{call.external_id}" for call in calls}
    run_refs: dict[int, str] = {}
    claim_refs: dict[int, str] = {}
    dumped: dict[str, Any] = {}
    for call in calls:
        call_ref = call_refs[call.id]
        runs = list(session.scalars(select(ExtractionRun).where(ExtractionRun.call_id == call.id)
                                    .order_by(ExtractionRun.id)))
        for number, run in enumerate(runs):
            run_refs[run.id] = f"run:{call.external_id}:{number}"
        run_rows = []
        for run in runs:
            claims = list(session.scalars(select(Claim).where(Claim.run_id == run.id)
                                          .order_by(Claim.position, Claim.id)))
            claim_rows = []
            for claim in claims:
                claim_refs[claim.id] = f"claim:{run_refs[run.id]}:{claim.position}"
                evidence = session.scalars(select(Evidence).where(Evidence.claim_id == claim.id)
                                           .order_by(Evidence.position, Evidence.id))
                claim_row = _row(claim, "claims", {"id": claim_refs[claim.id], "run_id": run_refs[run.id],
                                                   "call_id": call_ref, "tenant_id": None})
                claim_row["evidence"] = [_row(ev, "evidence", {"id": None, "claim_id": claim_refs[claim.id]})
                                         for ev in evidence]
                claim_rows.append(claim_row)
            # The key hashes the (random) call id: what is comparable is that it is the key of this work.
            expected_key = idempotency_key(call.id, run.transcript_hash, run.prompt_version, run.provider, run.model)
            run_row = _row(run, "extraction_runs", {"id": run_refs[run.id], "call_id": call_ref,
                                                    "idempotency_key": run.idempotency_key == expected_key})
            run_row["claims"] = claim_rows
            run_rows.append(run_row)
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.call_id == call.id).order_by(OutboxEvent.id))
        event_rows = [
            {**_row(event, "outbox_events", {"id": None, "call_id": call_ref, "tenant_id": None}),
             "payload": _canonical_payload(event.payload, claim_refs, run_refs, call_refs)}
            for event in events
        ]
        call_row = _row(call, "calls", {"id": call_ref, "tenant_id": None,
                                        "current_run_id": run_refs.get(call.current_run_id or -1)})
        dumped[call_ref] = {"call": call_row, "runs": run_rows, "outbox": event_rows}
    return dumped


def restricted(dump: Any, expected: Any) -> Any:
    """`dump` cut down to the keys `expected` has, so columns added later do not break an old expectation."""
    if isinstance(expected, dict) and isinstance(dump, dict):
        return {key: restricted(dump[key], value) if key in dump else "<missing>" for key, value in expected.items()}
    if isinstance(expected, list) and isinstance(dump, list) and len(expected) == len(dump):
        return [restricted(item, want) for item, want in zip(dump, expected, strict=True)]
    return dump


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two dumps differ, one line per differing value."""
    if isinstance(left, dict) and isinstance(right, dict):
        found: list[str] = []
        for key in sorted(set(left) | set(right)):
            if key not in left or key not in right:
                found.append(f"{path}/{key}: only in {'right' if key not in left else 'left'}")
            else:
                found.extend(differences(left[key], right[key], f"{path}/{key}"))
        return found
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return [f"{path}: {len(left)} items vs {len(right)}"]
        pairs = enumerate(zip(left, right, strict=True))
        return [line for i, (a, b) in pairs for line in differences(a, b, f"{path}[{i}]")]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


def write_dump(dump: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(dump, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs=2, help="DATABASE_URL OUT.json, or with --compare two dump files")
    parser.add_argument("--tenant")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)
    if args.compare:
        left, right = (json.loads(Path(p).read_text(encoding="utf-8")) for p in args.paths)
        found = differences(left, right)
        for line in found[:50]:
            print(line)
        print(f"{len(left)} calls vs {len(right)}: {'identical' if not found else f'{len(found)} differences'}")
        return 1 if found else 0
    engine = create_db_engine(args.paths[0])
    try:
        with make_session_factory(engine)() as session:
            dump = dump_calls(session, tenant=args.tenant)
    finally:
        engine.dispose()
    write_dump(dump, Path(args.paths[1]))
    print(f"{len(dump)} calls written to {args.paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
